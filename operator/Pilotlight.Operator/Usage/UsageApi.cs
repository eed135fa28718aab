using System.Globalization;
using k8s;
using k8s.Autorest;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Usage;

/// <summary>
/// Answers "how much did this function (or sandbox) use between these times", at 1 s
/// resolution: closed pods from the journal, open ones from the owner's
/// status (billed up to now).
/// </summary>
public sealed class UsageApi(IKubernetes client, UsageJournal journal, TimeProvider time)
{
    /// <summary>A function's report, or null with an error and the HTTP status that fits it (400 bad input, 503 API server unreachable).</summary>
    public Task<(UsageReport? Report, string? Error, int Status)> QueryAsync(string? ns, string? function, string? from, string? to, CancellationToken ct) =>
        QueryAsync(GpuFunction.KindName, ns, function, from, to, ct);

    /// <summary>
    /// The report of the <paramref name="kind"/> (<c>GpuFunction</c> or <c>Sandbox</c>) named <paramref name="name"/>,
    /// or null with an error and the HTTP status that fits it (400 bad input, 503 API server unreachable).
    /// </summary>
    public async Task<(UsageReport? Report, string? Error, int Status)> QueryAsync(string kind, string? ns, string? name, string? from, string? to,
        CancellationToken ct)
    {
        var sandbox = kind == Sandbox.KindName;
        if (!sandbox && kind != GpuFunction.KindName)
        {
            return (null, $"usage is kept for GpuFunctions and Sandboxes, not {kind}", 400);
        }

        if (string.IsNullOrEmpty(ns) || string.IsNullOrEmpty(name))
        {
            return (null, sandbox ? "namespace and sandbox are required" : "namespace and function are required", 400);
        }

        var now = time.GetUtcNow().UtcDateTime;
        if (!TryTime(to, now, out var end) || !TryTime(from, end.AddMinutes(-5), out var start))
        {
            return (null, "from and to must be RFC 3339 times (or omitted: the last 5 minutes)", 400);
        }

        if (end <= start || end - start > UsageQuery.MaxWindow)
        {
            return (null, $"the window must be positive and at most {UsageQuery.MaxWindow.TotalHours:F0} h", 400);
        }

        var intervals = journal.Of(ns, name, start, end, kind).Select(p => (p.Start, p.End, p.Gpus)).ToList();
        try
        {
            var usage = sandbox
                ? (await client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", name, cancellationToken: ct)
                    .ConfigureAwait(false)).Status?.Usage
                : (await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name, cancellationToken: ct)
                    .ConfigureAwait(false)).Status?.Usage;
            intervals.AddRange((usage?.OpenPods ?? []).Select(p => (p.Start, now, p.Gpus)));
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // A deleted function's or sandbox's history is still in the journal.
        }
        catch (Exception e) when (e is HttpRequestException or HttpOperationException)
        {
            // Without the open pods the answer would be short: say so rather than under-report.
            return (null, $"the API server could not be asked for {ns}/{name}'s running pods: {e.Message}", 503);
        }

        return sandbox
            ? (UsageQuery.Build(ns, null, start, end, intervals) with { Sandbox = name }, null, 200)
            : (UsageQuery.Build(ns, name, start, end, intervals), null, 200);
    }

    private static bool TryTime(string? text, DateTime fallback, out DateTime value)
    {
        if (string.IsNullOrEmpty(text))
        {
            value = fallback;
            return true;
        }

        var ok = DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed);
        value = parsed.UtcDateTime;
        return ok;
    }
}
