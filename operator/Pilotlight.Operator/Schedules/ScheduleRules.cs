using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Schedules;

/// <summary>What to do about a function's schedule now.</summary>
public enum ScheduleAction
{
    /// <summary>No tick is due.</summary>
    None,

    /// <summary>Claim <see cref="ScheduleDecision.Tick"/> and send its request.</summary>
    Run,

    /// <summary>Claim <see cref="ScheduleDecision.Tick"/> and record it as missed: it is too old to run.</summary>
    Miss,
}

/// <summary>The decision for one function at one instant.</summary>
/// <param name="Action">What to do.</param>
/// <param name="Tick">The tick acted on (its scheduled time), for <see cref="ScheduleAction.Run"/> and <see cref="ScheduleAction.Miss"/>.</param>
/// <param name="Next">The next tick after now, when there is one: when to look again.</param>
public sealed record ScheduleDecision(ScheduleAction Action, DateTimeOffset? Tick, DateTimeOffset? Next);

/// <summary>
/// When a scheduled invocation is due, purely. The rules, in full:
/// <list type="number">
/// <item>Only the latest tick at or before now is ever considered; older ticks
/// that nobody ran are dropped (at most one catch-up, like a CronJob).</item>
/// <item>It is due when it is later than <c>status.lastScheduleTime</c> (the last
/// tick claimed), and not earlier than the function's creation.</item>
/// <item>A due tick runs if it is at most <see cref="StartingDeadline"/> old;
/// an older one (no operator led at the time) is recorded as missed instead,
/// and only if an earlier tick is on record (a function's first tick is never
/// reported missed).</item>
/// <item>A tick is claimed in status before its request is sent, by a write
/// conditional on the resourceVersion: whoever loses the race re-reads and
/// finds it claimed. So each tick is sent at most once, across restarts and
/// leader changes; an operator that dies between claiming and sending loses
/// that tick (its result stays <c>Pending</c>).</item>
/// </list>
/// </summary>
public static class ScheduleRules
{
    /// <summary>How late a tick may still run after an outage: five minutes.</summary>
    public static readonly TimeSpan StartingDeadline = TimeSpan.FromMinutes(5);

    /// <summary>The decision for <paramref name="function"/> at <paramref name="now"/>.</summary>
    /// <param name="function">The function, with the status last read.</param>
    /// <param name="schedule">Its parsed schedule.</param>
    /// <param name="now">The current time.</param>
    /// <param name="claimed">A tick this process already claimed for it, which the status read may not show yet.</param>
    public static ScheduleDecision Decide(GpuFunction function, FunctionSchedule schedule, DateTimeOffset now, DateTimeOffset? claimed = null)
    {
        var next = schedule.NextAfter(now);
        if (schedule.LatestAtOrBefore(now) is not { } tick)
        {
            return new ScheduleDecision(ScheduleAction.None, null, next);
        }

        DateTimeOffset? last = function.Status?.LastScheduleTime is { } recorded ? Utc(recorded) : null;
        if (claimed is { } c && (last is null || c > last))
        {
            last = c;
        }

        var created = function.Metadata.CreationTimestamp is { } at ? Utc(at) : (DateTimeOffset?)null;
        if ((last is { } l && tick <= l) || (created is { } since && tick < Truncate(since)))
        {
            return new ScheduleDecision(ScheduleAction.None, null, next);
        }

        if (now - tick <= StartingDeadline)
        {
            return new ScheduleDecision(ScheduleAction.Run, tick, next);
        }

        return last is null ? new ScheduleDecision(ScheduleAction.None, null, next) : new ScheduleDecision(ScheduleAction.Miss, tick, next);
    }

    /// <summary>
    /// <paramref name="status"/> without the fields the schedule loop owns, so a
    /// status built from a cached copy never writes back a stale claim (a merge
    /// patch leaves omitted fields as they are).
    /// </summary>
    public static GpuFunctionStatus? WithoutScheduleFields(GpuFunctionStatus? status) =>
        status is null ? null : status with { LastScheduleTime = null, LastScheduleResult = null };

    /// <summary>A time read from the API (UTC, whatever its Kind says) as an instant.</summary>
    internal static DateTimeOffset Utc(DateTime t) =>
        new(t.Kind == DateTimeKind.Local ? t.ToUniversalTime() : DateTime.SpecifyKind(t, DateTimeKind.Utc));

    // creationTimestamp has whole seconds; a tick in the second the function was created counts.
    private static DateTimeOffset Truncate(DateTimeOffset t) => new(t.Ticks - t.Ticks % TimeSpan.TicksPerSecond, t.Offset);
}
