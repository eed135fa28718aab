using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Operator.Usage;

/// <summary>
/// Computes a function's usage totals from its pods' lifetimes, purely. A pod
/// is billed for its GPUs from its start until it is gone from the API (a
/// terminating pod still holds its GPUs while it drains): the time of its
/// Deleted watch event when that was seen, else (or when later) the last time the ledger saw it. Totals never go backwards: closed
/// pods only add, open ones only grow.
/// </summary>
public static class UsageLedger
{
    /// <summary>The totals at <paramref name="now"/>.</summary>
    /// <param name="previous">Totals as last written to status (null for a new function).</param>
    /// <param name="pods">The function's pods now, terminating ones included.</param>
    /// <param name="deletedAt">Deletion times of pods seen deleted, by UID.</param>
    /// <param name="now">The current time.</param>
    /// <param name="closed">Told of each pod that closes, with its billing end.</param>
    public static UsageTotals Update(UsageTotals? previous, IEnumerable<V1Pod> pods, IReadOnlyDictionary<string, DateTime> deletedAt, DateTime now,
        Action<BilledPod, DateTime>? closed = null)
    {
        var asOf = previous?.AsOf ?? now;
        var open = (previous?.OpenPods ?? []).ToDictionary(p => p.Uid);
        var present = new HashSet<string>();
        foreach (var pod in pods)
        {
            var uid = pod.Metadata.Uid;
            if (uid is null || Start(pod) is not { } start)
            {
                continue;
            }

            present.Add(uid);
            open[uid] = new BilledPod { Uid = uid, Gpus = Gpus(pod), Start = open.GetValueOrDefault(uid)?.Start ?? start };
        }

        var closedSeconds = previous?.ClosedGpuSeconds ?? 0;
        foreach (var gone in open.Values.Where(p => !present.Contains(p.Uid)).ToList())
        {
            // Billed to its deletion, but never to less than the previous totals
            // already counted (a reconcile can read the pod from the cache just
            // after the API deleted it): closed and running then agree.
            var end = deletedAt.TryGetValue(gone.Uid, out var seen) && seen > asOf ? seen : asOf;
            closedSeconds += Billed(gone, end);
            open.Remove(gone.Uid);
            closed?.Invoke(gone, end);
        }

        var running = open.Values.Sum(p => Billed(p, now));
        var total = Math.Max(previous?.GpuSeconds ?? 0, closedSeconds + running);
        return (previous ?? new UsageTotals()) with
        {
            ClosedGpuSeconds = closedSeconds,
            GpuSeconds = Math.Round(total, 3),
            AsOf = now,
            OpenPods = open.Values.OrderBy(p => p.Start).ThenBy(p => p.Uid, StringComparer.Ordinal).ToList(),
        };
    }

    /// <summary>GPU-seconds of one pod up to <paramref name="end"/>.</summary>
    public static double Billed(BilledPod pod, DateTime end) => pod.Gpus * Math.Max(0, (end - pod.Start).TotalSeconds);

    /// <summary>GPUs a pod holds: the sum of its containers' <c>nvidia.com/gpu</c> limits.</summary>
    public static int Gpus(V1Pod pod) => (pod.Spec?.Containers ?? [])
        .Sum(c => c.Resources?.Limits?.TryGetValue(FunctionPods.GpuResource, out var q) == true ? (int)q.ToDecimal() : 0);

    /// <summary>When billing of a pod starts: once it is bound to a node (GPUs are reserved), from its start or creation.</summary>
    private static DateTime? Start(V1Pod pod) =>
        string.IsNullOrEmpty(pod.Spec?.NodeName) ? null : pod.Status?.StartTime ?? pod.Metadata.CreationTimestamp;
}
