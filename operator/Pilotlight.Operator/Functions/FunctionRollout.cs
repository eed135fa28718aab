using System.Globalization;
using Pilotlight.Api.V1Alpha1;
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

/// <summary>A rollout's bounds for one desired count, in pods.</summary>
/// <param name="MaxSurge">Pods allowed above the desired count while old ones are replaced.</param>
/// <param name="MaxUnavailable">Ready pods allowed below the desired count while old ones are replaced.</param>
public sealed record RolloutBudget(int MaxSurge, int MaxUnavailable)
{
    /// <summary>One new pod first, no ready pod taken away: the default of <see cref="RolloutPolicy"/>.</summary>
    public static RolloutBudget Default { get; } = new(1, 0);

    /// <summary>
    /// The policy's bounds for <paramref name="desired"/> replicas, as a Deployment resolves them: a percentage of
    /// maxSurge rounds up, of maxUnavailable down, and when both come to 0 one pod may be unavailable (else the
    /// rollout could never move).
    /// </summary>
    public static RolloutBudget For(RolloutPolicy? policy, int desired)
    {
        if (policy is null)
        {
            return Default;
        }

        var surge = Scaled(policy.MaxSurge, desired, roundUp: true) ?? 1;
        var unavailable = Scaled(policy.MaxUnavailable, desired, roundUp: false) ?? 0;
        return surge == 0 && unavailable == 0 ? new RolloutBudget(0, 1) : new RolloutBudget(surge, unavailable);
    }

    /// <summary>What is wrong with an int-or-percent value, or null: a whole number or percentage, not negative.</summary>
    public static string? Problem(IntOrString? value) =>
        value?.Value is not { } text || Scaled(value, 100, roundUp: false) is not null
            ? null
            : $"\"{text}\" is neither a whole number of pods (0 or more) nor a percentage such as 25%";

    private static int? Scaled(IntOrString? value, int total, bool roundUp)
    {
        if (value?.Value is not { } text)
        {
            return null;
        }

        if (text.EndsWith('%') && int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var percent))
        {
            var share = (long)percent * total;
            return (int)(roundUp ? (share + 99) / 100 : share / 100);
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var count) ? count : null;
    }
}

/// <summary>
/// Decides pod creations and deletions. During a rollout new pods come first, up to
/// <see cref="RolloutBudget.MaxSurge"/> above the desired count, and a ready pod of an older template leaves only
/// while at least the desired count less <see cref="RolloutBudget.MaxUnavailable"/> ready pods remain: by default
/// (surge 1, unavailable 0) a function never drops below its ready count, and with surge 0 a pool with no spare GPU
/// still rolls, that many pods at a time.
/// </summary>
public static class FunctionRollout
{
    /// <summary>
    /// Plans one step towards <paramref name="desired"/> pods of <paramref name="currentHash"/>, within
    /// <paramref name="budget"/> (<see cref="RolloutBudget.Default"/> when null). Pods already terminating are
    /// neither counted nor deleted again. On scale-down, pods with the least <paramref name="load"/> (in-flight
    /// requests) leave first, and a pod with a request in flight is chosen only when fewer idle pods than the
    /// surplus remain; a rollout, too, replaces idle old pods before busy ones.
    /// </summary>
    public static RolloutPlan Plan(IReadOnlyList<V1Pod> pods, int desired, string currentHash, Func<V1Pod, int>? load = null, RolloutBudget? budget = null)
    {
        budget ??= RolloutBudget.Default;

        // A terminating pod is draining: it serves nothing new, and counting it as ready would let a second old pod
        // go in its place (its Ready condition lags its deletion).
        var staying = pods.Where(p => p.Metadata.DeletionTimestamp is null).ToList();
        var live = staying.Where(p => p.Status?.Phase is not ("Failed" or "Succeeded")).ToList();
        var delete = staying.Except(live).ToList();

        var current = live.Where(p => HashOf(p) == currentHash).ToList();
        var old = live.Where(p => HashOf(p) != currentHash).ToList();
        var currentReady = current.Count(PodReadiness.IsReady);

        // Old pods that serve nothing go at once; ready ones only while enough ready pods stay.
        var oldReady = old.Where(PodReadiness.IsReady).ToList();
        delete.AddRange(old.Except(oldReady));
        var keepReady = Math.Max(0, desired - budget.MaxUnavailable);
        var readyToSpare = desired == 0 ? oldReady.Count : Math.Max(0, currentReady + oldReady.Count - keepReady);
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
        var room = oldLeft == 0 ? missing : Math.Max(0, desired + budget.MaxSurge - (current.Count + oldLeft));
        return new RolloutPlan(Math.Min(missing, room), delete);
    }

    private static bool Busy(V1Pod pod, Func<V1Pod, int>? load) => load?.Invoke(pod) > 0;

    private static string? HashOf(V1Pod pod) =>
        pod.Metadata.Labels is { } labels && labels.TryGetValue(FunctionLabels.TemplateHash, out var hash) ? hash : null;
}
