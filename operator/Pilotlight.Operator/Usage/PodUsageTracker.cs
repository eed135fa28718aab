using System.Collections.Concurrent;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Usage;

/// <summary>
/// What the <see cref="UsageLedger"/> needs between reconciles of one kind of owner (functions, sandboxes): when
/// pods were seen deleted, the pods each owner last had open, and the pods of owners deleted before them, which
/// are closed into the journal when they are gone (no status is left to close them in).
/// </summary>
public sealed class PodUsageTracker
{
    private static readonly TimeSpan KeepDeletions = TimeSpan.FromMinutes(10);
    private readonly Informer<V1Pod> _pods;
    private readonly TimeProvider _time;
    private readonly Action<ObjectKey, BilledPod, DateTime> _close;
    private readonly ConcurrentDictionary<string, DateTime> _deletedAt = new();
    private readonly ConcurrentDictionary<ObjectKey, IReadOnlyList<BilledPod>> _open = new();
    private readonly ConcurrentDictionary<ObjectKey, UsageTotals> _totals = new();
    private readonly ConcurrentDictionary<string, (ObjectKey Key, BilledPod Pod)> _orphans = new();

    /// <summary>A tracker watching <paramref name="pods"/> for deletions; <paramref name="close"/> records a closed pod.</summary>
    public PodUsageTracker(Informer<V1Pod> pods, TimeProvider time, Action<ObjectKey, BilledPod, DateTime> close)
    {
        ArgumentNullException.ThrowIfNull(pods);
        _pods = pods;
        _time = time;
        _close = close;
        pods.AddHandler(e =>
        {
            if (e.Type != k8s.WatchEventType.Deleted || e.Object.Metadata.Uid is not { } uid)
            {
                return;
            }

            // Gone now: a graceful deletion's deletionTimestamp is a deadline, not when the GPUs were freed.
            var now = _time.GetUtcNow().UtcDateTime;
            _deletedAt[uid] = now;
            if (_orphans.TryRemove(uid, out var orphan))
            {
                _close(orphan.Key, orphan.Pod, now);
            }

            foreach (var old in _deletedAt.Where(kv => now - kv.Value > KeepDeletions).Select(kv => kv.Key).ToList())
            {
                _deletedAt.TryRemove(old, out _);
            }
        });
    }

    /// <summary>
    /// The owner's totals at <paramref name="now"/> (see <see cref="UsageLedger.Update"/>); pods that closed since
    /// <paramref name="previous"/> are recorded.
    /// </summary>
    public UsageTotals Update(ObjectKey key, UsageTotals? previous, IEnumerable<V1Pod> pods, DateTime now, DateTime? notBefore = null)
    {
        var listed = pods as IReadOnlyCollection<V1Pod> ?? pods.ToList();
        if (_totals.TryGetValue(key, out var last) && last.OpenPods is { Count: > 0 } wasOpen)
        {
            // A pod this replica had open, now gone from the cache but not yet in _deletedAt: the informer removes it
            // from its cache before its handlers (ours among them) hear of the deletion, and a reconcile can run in
            // between. It is billed to now, as the handler would have (moments later) and as the live series already
            // counted it up to each scrape; the status's older asOf would bill less than was exported.
            var present = listed.Select(p => p.Metadata.Uid).ToHashSet(StringComparer.Ordinal);
            foreach (var pod in wasOpen)
            {
                if (!present.Contains(pod.Uid))
                {
                    _deletedAt.TryAdd(pod.Uid, now);
                }
            }
        }

        var usage = UsageLedger.Update(previous, listed, _deletedAt, now, (pod, end) => _close(key, pod, end), notBefore);
        _open[key] = usage.OpenPods ?? [];
        _totals[key] = usage;
        return usage;
    }

    /// <summary>
    /// Every owner's GPU-seconds carried from its last <see cref="Update"/> to <paramref name="now"/>: what it had then,
    /// plus its open pods' time since (no pod opens or closes between updates without an event that brings one).
    /// </summary>
    public IEnumerable<(ObjectKey Key, double GpuSeconds)> LiveGpuSeconds(DateTime now)
    {
        foreach (var (key, totals) in _totals)
        {
            var asOf = totals.AsOf ?? now;
            var added = 0.0;
            foreach (var pod in totals.OpenPods ?? [])
            {
                // A pod seen deleted since is billed to its deletion, as the next update will close it.
                var end = _deletedAt.TryGetValue(pod.Uid, out var gone) && gone < now ? gone : now;
                added += end > asOf ? pod.Gpus * (end - asOf).TotalSeconds : 0;
            }

            yield return (key, totals.GpuSeconds + added);
        }
    }

    /// <summary>
    /// The owner is gone; its pods outlive it until the garbage collector removes them, and each is billed to its
    /// own deletion (or now, if that was already seen or it is gone already).
    /// </summary>
    public void OwnerDeleted(ObjectKey key)
    {
        _totals.TryRemove(key, out _);
        if (!_open.TryRemove(key, out var open))
        {
            return;
        }

        var present = _pods.List().Select(p => p.Metadata.Uid).ToHashSet();
        var now = _time.GetUtcNow().UtcDateTime;
        foreach (var pod in open)
        {
            if (present.Contains(pod.Uid))
            {
                _orphans[pod.Uid] = (key, pod);
            }
            else
            {
                _close(key, pod, _deletedAt.TryGetValue(pod.Uid, out var seen) ? seen : now);
            }
        }
    }
}
