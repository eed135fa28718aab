using Pilotlight.Contracts;
using k8s.Models;

namespace Pilotlight.Operator.Functions;

/// <summary>What to do to a function's pods in one reconcile.</summary>
/// <param name="Create">How many pods of the current template to create.</param>
/// <param name="Delete">Which pods to delete.</param>
public sealed record RolloutPlan(int Create, IReadOnlyList<V1Pod> Delete)
{
    /// <summary>True when nothing needs to change.</summary>
    public bool IsSteady => Create == 0 && Delete.Count == 0;
}

/// <summary>
/// Decides pod creations and deletions. New pods come first (one above the
/// desired count during a rollout); a pod of an older template leaves only when
/// enough ready pods remain, so a function never drops below its ready count.
/// </summary>
public static class FunctionRollout
{
    /// <summary>Pods allowed above the desired count while old ones are replaced.</summary>
    public const int Surge = 1;

    /// <summary>
    /// Plans one step towards <paramref name="desired"/> pods of <paramref name="currentHash"/>.
    /// On scale-down, pods with the least <paramref name="load"/> (in-flight requests) leave first, and a
    /// pod with a request in flight is chosen only when fewer idle pods than the surplus remain.
    /// </summary>
    public static RolloutPlan Plan(IReadOnlyList<V1Pod> pods, int desired, string currentHash, Func<V1Pod, int>? load = null)
    {
        var live = pods.Where(p => p.Status?.Phase is not ("Failed" or "Succeeded")).ToList();
        var delete = pods.Except(live).ToList();

        var current = live.Where(p => HashOf(p) == currentHash).ToList();
        var old = live.Where(p => HashOf(p) != currentHash).ToList();
        var currentReady = current.Count(PodReadiness.IsReady);

        // Old pods that serve nothing go at once; ready ones only while enough ready pods stay.
        var oldReady = old.Where(PodReadiness.IsReady).ToList();
        delete.AddRange(old.Except(oldReady));
        var readyToSpare = desired == 0 ? oldReady.Count : Math.Max(0, currentReady + oldReady.Count - desired);
        delete.AddRange(oldReady.OrderBy(p => Busy(p, load)).ThenBy(p => p.Metadata.CreationTimestamp).Take(readyToSpare));
        var oldLeft = old.Count - old.Count(delete.Contains);

        if (current.Count > desired)
        {
            // Never a busy pod while idle ones remain (the autoscaler keeps desired at or above the
            // busy pods); then not-ready pods first, then the least loaded, then the newest (the least warmed up).
            delete.AddRange(current
                .OrderBy(p => Busy(p, load))
                .ThenBy(PodReadiness.IsReady)
                .ThenBy(p => load?.Invoke(p) ?? 0)
                .ThenByDescending(p => p.Metadata.CreationTimestamp)
                .Take(current.Count - desired));
            return new RolloutPlan(0, delete);
        }

        var missing = desired - current.Count;
        var room = oldLeft == 0 ? missing : Math.Max(0, desired + Surge - (current.Count + oldLeft));
        return new RolloutPlan(Math.Min(missing, room), delete);
    }

    private static bool Busy(V1Pod pod, Func<V1Pod, int>? load) => load?.Invoke(pod) > 0;

    private static string? HashOf(V1Pod pod) =>
        pod.Metadata.Labels is { } labels && labels.TryGetValue(FunctionLabels.TemplateHash, out var hash) ? hash : null;
}
