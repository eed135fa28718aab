using System.Globalization;
using k8s;
using k8s.Autorest;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Usage;

/// <summary>
/// Answers "how much did this function use between these times", at 1 s
/// resolution: closed pods from the journal, open ones from the function's
/// status (billed up to now).
/// </summary>
public sealed class UsageApi(IKubernetes client, UsageJournal journal, TimeProvider time)
{
    /// <summary>The report, or null with an error and the HTTP status that fits it (400 bad input, 503 API server unreachable).</summary>
    public async Task<(UsageReport? Report, string? Error, int Status)> QueryAsync(string? ns, string? function, string? from, string? to, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(ns) || string.IsNullOrEmpty(function))
        {
            return (null, "namespace and function are required", 400);
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

        var intervals = journal.Of(ns, function, start, end).Select(p => (p.Start, p.End, p.Gpus)).ToList();
        try
        {
            var fn = await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", function, cancellationToken: ct).ConfigureAwait(false);
            intervals.AddRange((fn.Status?.Usage?.OpenPods ?? []).Select(p => (p.Start, now, p.Gpus)));
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // A deleted function's history is still in the journal.
        }
        catch (Exception e) when (e is HttpRequestException or HttpOperationException)
        {
            // Without the function's open pods the answer would be short: say so rather than under-report.
            return (null, $"the API server could not be asked for {ns}/{function}'s running pods: {e.Message}", 503);
        }

        return (UsageQuery.Build(ns, function, start, end, intervals), null, 200);
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
