using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Schedules;

/// <summary>Where the schedule loop reads functions fresh and records ticks.</summary>
public interface IScheduleStore
{
    /// <summary>The function as the API server has it now (not a cache), or null when it is gone.</summary>
    Task<GpuFunction?> GetAsync(ObjectKey key, CancellationToken ct);

    /// <summary>
    /// Writes <c>status.lastScheduleTime</c> and <c>status.lastScheduleResult</c>
    /// if the function is still at <paramref name="resourceVersion"/>.
    /// </summary>
    /// <returns>False on a conflict (someone else wrote it since) or when the function is gone.</returns>
    Task<bool> TryWriteAsync(ObjectKey key, string resourceVersion, DateTimeOffset tick, ScheduleResult result, CancellationToken ct);
}

/// <summary>The API server as the schedule store: a GET, and a status merge patch that carries the resourceVersion as a precondition.</summary>
public sealed class KubernetesScheduleStore(IKubernetes client) : IScheduleStore
{
    /// <inheritdoc />
    public async Task<GpuFunction?> GetAsync(ObjectKey key, CancellationToken ct)
    {
        try
        {
            return await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, key.Namespace, "gpufunctions", key.Name,
                cancellationToken: ct).ConfigureAwait(false);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async Task<bool> TryWriteAsync(ObjectKey key, string resourceVersion, DateTimeOffset tick, ScheduleResult result, CancellationToken ct)
    {
        try
        {
            await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch(PatchBody(resourceVersion, tick, result), V1Patch.PatchType.MergePatch),
                Group.Name, Group.Version, key.Namespace, "gpufunctions", key.Name, cancellationToken: ct).ConfigureAwait(false);
            return true;
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>
    /// The merge patch: the resourceVersion makes it conditional, and every
    /// field of the result is written (null removes it), so nothing of the
    /// previous tick's result survives into this one's.
    /// </summary>
    public static string PatchBody(string resourceVersion, DateTimeOffset tick, ScheduleResult result) => new JsonObject
    {
        ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
        ["status"] = new JsonObject
        {
            ["lastScheduleTime"] = Time(tick),
            ["lastScheduleResult"] = new JsonObject
            {
                ["scheduleTime"] = Time(result.ScheduleTime),
                ["outcome"] = result.Outcome,
                ["statusCode"] = result.StatusCode,
                ["message"] = result.Message,
                ["startTime"] = Time(result.StartTime),
                ["finishTime"] = Time(result.FinishTime),
            },
        },
    }.ToJsonString();

    private static string? Time(DateTimeOffset? t) =>
        t?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string? Time(DateTime? t) =>
        t is { } v ? Time(ScheduleRules.Utc(v)) : null;
}
