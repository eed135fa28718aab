using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Operator.Usage;

/// <summary>
/// Computes a function's or a sandbox's usage totals from its pods' lifetimes, purely. A pod
/// is billed for its GPUs, CPU and memory requests from its start until it is gone from the API (a
/// terminating pod still holds its GPUs while it drains): the time of its
/// Deleted watch event when that was seen, else (or when later) the last time the ledger saw it. Totals never go backwards: closed
/// pods only add, open ones only grow.
/// </summary>
public static class UsageLedger
{
    /// <summary>The totals at <paramref name="now"/>.</summary>
    /// <param name="previous">Totals as last written to status (null for a new function or sandbox).</param>
    /// <param name="pods">The owner's pods now, terminating ones included.</param>
    /// <param name="deletedAt">Deletion times of pods seen deleted, by UID.</param>
    /// <param name="now">The current time.</param>
    /// <param name="closed">Told of each pod that closes, with its billing end.</param>
    /// <param name="notBefore">
    /// No pod is billed before this (a sandbox's creation: a warm pod it claimed ran before it, on the pool's account).
    /// </param>
    public static UsageTotals Update(UsageTotals? previous, IEnumerable<V1Pod> pods, IReadOnlyDictionary<string, DateTime> deletedAt, DateTime now,
        Action<BilledPod, DateTime>? closed = null, DateTime? notBefore = null)
    {
        ArgumentNullException.ThrowIfNull(pods);
        ArgumentNullException.ThrowIfNull(deletedAt);
        var asOf = previous?.AsOf ?? now;
        var open = (previous?.OpenPods ?? []).ToDictionary(p => p.Uid);
        var present = new HashSet<string>();
        foreach (var pod in pods)
        {
            var uid = pod.Metadata.Uid;
            if (uid is null || Start(pod) is not { } podStart)
            {
                continue;
            }

            var start = notBefore is { } floor && floor > podStart ? floor : podStart;
            present.Add(uid);
            open[uid] = new BilledPod
            {
                Uid = uid, Gpus = Gpus(pod), Cpu = Requested(pod, "cpu"), MemoryBytes = Requested(pod, "memory"),
                Start = open.GetValueOrDefault(uid)?.Start ?? start,
            };
        }

        var (closedGpu, closedCpu, closedMemory) = (previous?.ClosedGpuSeconds ?? 0, previous?.ClosedCpuSeconds ?? 0, previous?.ClosedMemoryByteSeconds ?? 0);
        foreach (var gone in open.Values.Where(p => !present.Contains(p.Uid)).ToList())
        {
            // Billed to its deletion, but never to less than the previous totals
            // already counted (a reconcile can read the pod from the cache just
            // after the API deleted it): closed and running then agree.
            var end = deletedAt.TryGetValue(gone.Uid, out var seen) && seen > asOf ? seen : asOf;
            closedGpu += Billed(gone, end);
            closedCpu += Seconds(gone, end) * gone.Cpu;
            closedMemory += Seconds(gone, end) * gone.MemoryBytes;
            open.Remove(gone.Uid);
            closed?.Invoke(gone, end);
        }

        var running = open.Values.ToList();
        return (previous ?? new UsageTotals()) with
        {
            ClosedGpuSeconds = closedGpu,
            GpuSeconds = Math.Round(Math.Max(previous?.GpuSeconds ?? 0, closedGpu + running.Sum(p => Billed(p, now))), 3),
            ClosedCpuSeconds = closedCpu,
            CpuSeconds = Math.Round(Math.Max(previous?.CpuSeconds ?? 0, closedCpu + running.Sum(p => Seconds(p, now) * p.Cpu)), 3),
            ClosedMemoryByteSeconds = closedMemory,
            MemoryByteSeconds = Math.Round(Math.Max(previous?.MemoryByteSeconds ?? 0, closedMemory + running.Sum(p => Seconds(p, now) * p.MemoryBytes))),
            AsOf = now,
            OpenPods = running.OrderBy(p => p.Start).ThenBy(p => p.Uid, StringComparer.Ordinal).ToList(),
        };
    }

    /// <summary>
    /// Whether <paramref name="fresh"/> totals are worth a status write over the <paramref name="written"/> ones: a pod
    /// opened or closed (the set of open pods or the closed totals changed), or the written ones are at least
    /// <paramref name="interval"/> old. Between those the running totals only grow with time, which anyone can compute
    /// from <c>openPods</c> and <c>asOf</c>.
    /// </summary>
    public static bool Worth(UsageTotals? written, UsageTotals fresh, TimeSpan interval)
    {
        ArgumentNullException.ThrowIfNull(fresh);
        if (written?.AsOf is not { } asOf || fresh.AsOf is not { } now || now - asOf >= interval)
        {
            return true;
        }

        var (before, after) = (written.OpenPods ?? [], fresh.OpenPods ?? []);
        return before.Count != after.Count
            || !before.Select(p => p.Uid).Order(StringComparer.Ordinal).SequenceEqual(after.Select(p => p.Uid).Order(StringComparer.Ordinal))
            || written.ClosedGpuSeconds != fresh.ClosedGpuSeconds
            || written.ClosedCpuSeconds != fresh.ClosedCpuSeconds
            || written.ClosedMemoryByteSeconds != fresh.ClosedMemoryByteSeconds;
    }

    /// <summary>GPU-seconds of one pod up to <paramref name="end"/>.</summary>
    public static double Billed(BilledPod pod, DateTime end) => pod.Gpus * Seconds(pod, end);

    /// <summary>GPUs a pod holds: the sum of its containers' <c>nvidia.com/gpu</c> limits.</summary>
    public static int Gpus(V1Pod pod) => (pod.Spec?.Containers ?? [])
        .Sum(c => c.Resources?.Limits?.TryGetValue(FunctionPods.GpuResource, out var q) == true ? (int)q.ToDecimal() : 0);

    /// <summary>
    /// What a pod requests of <paramref name="resource"/> (cores, bytes): the sum over its containers of each one's
    /// request, else its limit (which the API server makes the request when none is given).
    /// </summary>
    public static double Requested(V1Pod pod, string resource) => (double)(pod.Spec?.Containers ?? [])
        .Sum(c => c.Resources?.Requests?.TryGetValue(resource, out var request) == true ? request.ToDecimal()
            : c.Resources?.Limits?.TryGetValue(resource, out var limit) == true ? limit.ToDecimal() : 0m);

    private static double Seconds(BilledPod pod, DateTime end) => Math.Max(0, (end - pod.Start).TotalSeconds);

    /// <summary>When billing of a pod starts: once it is bound to a node (GPUs are reserved), from its start or creation.</summary>
    private static DateTime? Start(V1Pod pod) =>
        string.IsNullOrEmpty(pod.Spec?.NodeName) ? null : pod.Status?.StartTime ?? pod.Metadata.CreationTimestamp;
}
