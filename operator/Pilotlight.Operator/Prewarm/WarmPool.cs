using k8s.Models;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Operator.Prewarm;

/// <summary>How many warm standby pods a function should have now, and why.</summary>
/// <param name="Count">Warm pods wanted (already bounded by maxReplicas).</param>
/// <param name="Reason">What asked for them: <c>Configured</c>, <c>RecentTraffic</c>, <c>Schedule</c> or <c>None</c>.</param>
/// <param name="NextChange">When the answer may change without any event (a lead window opening, a keep-warm period ending).</param>
public sealed record WarmTarget(int Count, string Reason, DateTimeOffset? NextChange);

/// <summary>One reconcile's steps for the warm pool.</summary>
/// <param name="Claim">Ready warm pods to relabel as serving: those the gateways report busy first, then the oldest.</param>
/// <param name="Demote">Serving pods the rollout would delete, kept as warm pods instead.</param>
/// <param name="Create">Warm pods to create.</param>
/// <param name="Delete">Warm pods to delete (old template, failed, or surplus).</param>
public sealed record WarmPoolPlan(IReadOnlyList<V1Pod> Claim, IReadOnlyList<V1Pod> Demote, int Create, IReadOnlyList<V1Pod> Delete)
{
    /// <summary>Nothing to do.</summary>
    public static WarmPoolPlan None { get; } = new([], [], 0, []);
}

/// <summary>
/// The warm pool, purely: how big it should be, which warm pods to claim when
/// the autoscaler wants more serving replicas (so no pod is created on the
/// request path), and how to refill it. A gateway may already be routing
/// requests to a warm pod (it does not wait for the claim): such a pod is
/// claimed first, and never deleted or demoted while the gateways report it busy.
/// </summary>
public static class WarmPool
{
    /// <summary>How long after a scheduled tick its warm capacity is kept, so the tick's request finds it.</summary>
    public static readonly TimeSpan AfterTick = TimeSpan.FromMinutes(1);

    /// <summary>Lead time for functions with a schedule and no prewarm block.</summary>
    public static readonly TimeSpan DefaultLeadTime = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Warm pods wanted at <paramref name="now"/>: <c>prewarm.warmReplicas</c>; at least one
    /// while a request came within <c>prewarm.keepWarmFor</c>; at least one from
    /// <c>leadTime</c> before each scheduled tick until <see cref="AfterTick"/> after it.
    /// Never more than leaves room under <c>maxReplicas</c> beside <paramref name="desiredServing"/>.
    /// </summary>
    public static WarmTarget Target(GpuFunctionSpec spec, int desiredServing, DateTimeOffset now, DateTimeOffset? lastRequest,
        FunctionSchedule? schedule)
    {
        var prewarm = spec.Prewarm;
        var count = prewarm?.WarmReplicas ?? 0;
        var reason = count > 0 ? "Configured" : "None";
        DateTimeOffset? next = null;

        if (prewarm is not null && lastRequest is { } last && DurationString.Parse(prewarm.KeepWarmFor) is { } keep && keep > TimeSpan.Zero)
        {
            var until = last + keep;
            if (now < until)
            {
                (count, reason) = count >= 1 ? (count, reason) : (1, "RecentTraffic");
                next = Earliest(next, until);
            }
        }

        if (schedule is not null)
        {
            var lead = prewarm is null ? DefaultLeadTime : DurationString.Parse(prewarm.LeadTime);
            var previous = schedule.LatestAtOrBefore(now);
            var upcoming = schedule.NextAfter(now);
            var inWindow = (previous is { } p && now < p + AfterTick) || (upcoming is { } u && now >= u - lead);
            if (inWindow)
            {
                (count, reason) = count >= 1 ? (count, reason) : (1, "Schedule");
            }

            if (previous is { } prev && now < prev + AfterTick)
            {
                next = Earliest(next, prev + AfterTick);
            }

            if (upcoming is { } up)
            {
                next = Earliest(next, now < up - lead ? up - lead : up + AfterTick);
            }
        }

        var room = Math.Max(0, spec.Scaling.MaxReplicas - desiredServing);
        return new WarmTarget(Math.Min(count, room), count == 0 ? "None" : reason, next);
    }

    /// <summary>
    /// Plans the pool: claims ready warm pods of the current template for the
    /// serving replicas missing, keeps serving pods a scale-down would delete as
    /// warm ones while the pool is short, and creates or deletes warm pods to
    /// reach <paramref name="target"/>.
    /// </summary>
    /// <param name="serving">The function's serving pods.</param>
    /// <param name="warm">Its warm pods.</param>
    /// <param name="desiredServing">Serving replicas wanted.</param>
    /// <param name="target">Warm pods wanted.</param>
    /// <param name="hash">The current template's hash.</param>
    /// <param name="scaleDown">Serving pods the rollout plans to delete.</param>
    /// <param name="load">In-flight requests per pod as the gateways report them (none known when null).</param>
    public static WarmPoolPlan Plan(IReadOnlyList<V1Pod> serving, IReadOnlyList<V1Pod> warm, int desiredServing, int target, string hash,
        IReadOnlyList<V1Pod> scaleDown, Func<V1Pod, int>? load = null)
    {
        bool Busy(V1Pod p) => load?.Invoke(p) > 0;

        // A busy pod of an old template is neither claimed nor counted in the pool: it finishes what it serves and goes once idle.
        var finishing = warm.Where(p => !Usable(p, hash) && Busy(p) && Live(p)).ToList();
        var delete = warm.Where(p => !Usable(p, hash)).Except(finishing).ToList();
        var usable = warm.Except(delete).Except(finishing).ToList();

        var servingNow = serving.Count(p => Usable(p, hash));
        var missing = Math.Max(0, desiredServing - servingNow);
        var claim = usable.Where(p => p.Metadata.DeletionTimestamp is null && PodReadiness.IsReady(p))
            .OrderByDescending(p => load?.Invoke(p) ?? 0)
            .ThenBy(p => p.Metadata.CreationTimestamp)
            .Take(missing)
            .ToList();
        var pool = usable.Except(claim).ToList();

        // A serving pod leaving on scale-down is already warm: keep it if the pool is short (an idle one only).
        var demote = scaleDown.Where(p => Usable(p, hash) && PodReadiness.IsReady(p) && !Busy(p))
            .Take(Math.Max(0, target - pool.Count))
            .ToList();
        var size = pool.Count + demote.Count;

        if (size > target)
        {
            // Surplus: not-ready ones first, then the newest; never one a gateway is sending requests to.
            delete.AddRange(pool.Where(p => !Busy(p)).OrderBy(PodReadiness.IsReady).ThenByDescending(p => p.Metadata.CreationTimestamp).Take(size - target));
        }

        return new WarmPoolPlan(claim, demote, Math.Max(0, target - size), delete);
    }

    /// <summary>Warm pods in the pool by readiness: (ready, all).</summary>
    public static (int Ready, int All) Count(IReadOnlyList<V1Pod> warm) =>
        (warm.Count(p => p.Metadata.DeletionTimestamp is null && PodReadiness.IsReady(p)), warm.Count(p => p.Metadata.DeletionTimestamp is null));

    private static bool Live(V1Pod pod) => pod.Status?.Phase is not ("Failed" or "Succeeded") && pod.Metadata.DeletionTimestamp is null;

    private static bool Usable(V1Pod pod, string hash) =>
        pod.Status?.Phase is not ("Failed" or "Succeeded")
        && pod.Metadata.DeletionTimestamp is null
        && pod.Metadata.Labels?.TryGetValue(FunctionLabels.TemplateHash, out var h) == true && h == hash;

    private static DateTimeOffset Earliest(DateTimeOffset? a, DateTimeOffset b) => a is { } x && x < b ? x : b;
}
