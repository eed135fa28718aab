using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Functions;

/// <summary>
/// <c>status.coldStarts</c> from the gateways' counts. Each gateway process counts from zero (its epoch names it);
/// status keeps, next to the total, the count it last took from each process, and the total grows by what a process's
/// count grew past that. Both are written in one status write, so the result depends only on the status it starts
/// from and the counts: the same report read twice, by a new leader, or applied to a stale cached status gives the
/// same total again, never a double count; a restarted gateway's new epoch starts from zero and only adds.
/// </summary>
public static class ColdStartTally
{
    /// <summary>
    /// Processes whose counts status keeps beyond those reporting now, the most recent first: a gateway out of the
    /// Endpoints for a while (draining, unready) reports the same epoch again when it is back and must find its
    /// count; one of the processes older than that is gone for good.
    /// </summary>
    public const int KeptSources = 32;

    /// <summary>
    /// The total and sources after taking <paramref name="reported"/> (each gateway process's count now) into the
    /// <paramref name="total"/> and <paramref name="sources"/> written before.
    /// </summary>
    public static (long Total, IReadOnlyList<ColdStartSource> Sources) Take(long total, IReadOnlyList<ColdStartSource>? sources,
        IReadOnlyList<ColdStartSource> reported)
    {
        ArgumentNullException.ThrowIfNull(reported);
        var taken = new Dictionary<string, long>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var source in sources ?? [])
        {
            if (taken.TryAdd(source.Gateway, source.Count))
            {
                order.Add(source.Gateway);
            }
        }

        var now = new HashSet<string>(StringComparer.Ordinal);
        foreach (var report in reported)
        {
            now.Add(report.Gateway);
            if (!taken.TryGetValue(report.Gateway, out var before))
            {
                order.Add(report.Gateway);
                before = 0;
            }

            // A count below the one taken is a gateway that dropped it (its bound): nothing to add until it passes.
            total += Math.Max(0, report.Count - before);
            taken[report.Gateway] = Math.Max(before, report.Count);
        }

        // Reporting processes all stay; of the others, the latest added stay up to the bound.
        var absent = order.Where(g => !now.Contains(g)).ToList();
        var dropped = absent.Take(Math.Max(0, absent.Count - KeptSources)).ToHashSet(StringComparer.Ordinal);
        var kept = order.Where(g => !dropped.Contains(g)).Select(g => new ColdStartSource { Gateway = g, Count = taken[g] }).ToList();
        return (total, kept);
    }

    /// <summary>
    /// Whether a changed total is written now: at once when none was written by this process for
    /// <paramref name="interval"/>, else it waits (the next write of status for any reason carries it too).
    /// </summary>
    public static bool Due(DateTimeOffset? lastWritten, DateTimeOffset now, TimeSpan interval) =>
        lastWritten is not { } last || now - last >= interval;
}
