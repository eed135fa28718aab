using k8s.Models;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Operator.Prewarm;

/// <summary>Checks of the prewarm and schedule fields that a schema cannot make.</summary>
public static class PrewarmSpec
{
    /// <summary>The parsed schedule (null when there is none or it is invalid) and the problems (for an InvalidSpec condition).</summary>
    public static (FunctionSchedule? Schedule, IReadOnlyList<string> Problems) Validate(GpuFunctionSpec spec)
    {
        var problems = new List<string>();
        foreach (var (field, value) in new[] { ("leadTime", spec.Prewarm?.LeadTime), ("keepWarmFor", spec.Prewarm?.KeepWarmFor) })
        {
            if (value is not null && !DurationString.TryParse(value, out _))
            {
                problems.Add($"prewarm.{field} '{value}' is not a duration such as 90s or 2m");
            }
        }

        if (spec.Prewarm is { ReservedReplicas: > 0 } && spec.Gpu is not { Count: > 0 })
        {
            problems.Add("prewarm.reservedReplicas reserves GPUs, but the function asks for none");
        }

        if (spec.Schedule is not { } schedule)
        {
            return (null, problems);
        }

        FunctionSchedule.TryCreate(schedule, out var parsed, out var scheduleProblems);
        problems.AddRange(scheduleProblems);
        return (parsed, problems);
    }
}

/// <summary>The prewarm part of a function's status: counts and one condition per mechanism asked for.</summary>
public static class PrewarmStatus
{
    /// <summary><paramref name="status"/> with warm, reserved and pre-pull counts and conditions added.</summary>
    public static GpuFunctionStatus With(GpuFunctionStatus status, GpuFunction function, WarmTarget target, (int Ready, int All) warm, int reserved,
        (int Ready, int Eligible, bool Settled) prePull, string? quotaProblem, DateTime now)
    {
        var previous = function.Status;
        var generation = function.Metadata.Generation;
        var conditions = (status.Conditions ?? []).ToList();
        var prewarm = function.Spec.Prewarm;

        if (prewarm is not null || function.Spec.Schedule is not null)
        {
            var (state, reason, message) = quotaProblem is not null && warm.All < target.Count
                ? ("False", FunctionConditions.Reasons.QuotaExceeded, quotaProblem)
                : target.Count == 0
                    ? ("True", FunctionConditions.Reasons.NoneWanted, "no warm pods wanted now")
                    : warm.Ready >= target.Count
                        ? ("True", FunctionConditions.Reasons.PoolReady, $"{warm.Ready}/{target.Count} warm pods ready ({target.Reason})")
                        : ("False", FunctionConditions.Reasons.PoolFilling, $"{warm.Ready}/{target.Count} warm pods ready ({target.Reason})");
            conditions.Add(FunctionStatusBuilder.Condition(previous, FunctionConditions.Warm, state, reason, message, generation, now));
        }

        if (prewarm is { ReservedReplicas: > 0 } r)
        {
            var (state, reason, message) = quotaProblem is not null && reserved < r.ReservedReplicas
                ? ("False", FunctionConditions.Reasons.QuotaExceeded, quotaProblem)
                : reserved >= r.ReservedReplicas
                    ? ("True", FunctionConditions.Reasons.ReservationsHeld, $"{reserved}/{r.ReservedReplicas} reservations hold GPUs")
                    : ("False", FunctionConditions.Reasons.ReservationsPending, $"{reserved}/{r.ReservedReplicas} reservations hold GPUs; the rest wait for capacity");
            conditions.Add(FunctionStatusBuilder.Condition(previous, FunctionConditions.Reserved, state, reason, message, generation, now));
        }

        if (prewarm is { PrePull: true })
        {
            var (state, reason, message) = !prePull.Settled
                ? ("False", FunctionConditions.Reasons.ImagePulling, "the pre-pull DaemonSet is starting")
                : prePull.Eligible == 0
                ? ("False", FunctionConditions.Reasons.NoEligibleNodes, "no node has a GPU type the function can use")
                : prePull.Ready >= prePull.Eligible
                    ? ("True", FunctionConditions.Reasons.ImagePresent, $"image present on {prePull.Ready}/{prePull.Eligible} eligible nodes")
                    : ("False", FunctionConditions.Reasons.ImagePulling, $"image present on {prePull.Ready}/{prePull.Eligible} eligible nodes");
            conditions.Add(FunctionStatusBuilder.Condition(previous, FunctionConditions.PrePulled, state, reason, message, generation, now));
        }

        return status with
        {
            Conditions = conditions,
            WarmReplicas = warm.Ready,
            ReservedReplicas = reserved,
            PrePulledNodes = prePull.Ready,
            PrePullEligibleNodes = prePull.Eligible,
        };
    }
}
