using System.Diagnostics.CodeAnalysis;
using Cronos;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Schedules;

/// <summary>
/// A function's <c>spec.schedule</c> read with Cronos: the five-field cron
/// expression (or an <c>@</c> macro) evaluated in the wall-clock time of its
/// IANA time zone. The scheduled invocations and the pre-warm lead time both
/// use these ticks.
/// </summary>
/// <remarks>
/// Daylight saving, as Cronos does it: a wall-clock time skipped at spring
/// forward fires once, at the end of the gap (the first instant after it); a
/// wall-clock time repeated at fall back fires once, at its first occurrence,
/// unless the expression repeats within the hour (<c>*/15 * * * *</c>), which
/// keeps firing through both copies of the hour.
/// </remarks>
/// <param name="Cron">The parsed expression.</param>
/// <param name="Zone">The time zone the expression is read in.</param>
public sealed record FunctionSchedule(CronExpression Cron, TimeZoneInfo Zone)
{
    /// <summary>Parses a schedule; a wrong expression or an unknown time zone is a problem, never an exception.</summary>
    /// <param name="schedule">The spec's schedule.</param>
    /// <param name="parsed">The schedule, when both parts are valid.</param>
    /// <param name="problems">What is wrong, one line each, naming the field (for an InvalidSpec condition).</param>
    public static bool TryCreate(InvocationSchedule schedule, [NotNullWhen(true)] out FunctionSchedule? parsed, out IReadOnlyList<string> problems)
    {
        var found = new List<string>();
        TimeZoneInfo? zone = null;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(schedule.TimeZone);
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException or ArgumentException)
        {
            found.Add($"schedule.timeZone '{schedule.TimeZone}' is not a known IANA time zone");
        }

        CronExpression? cron = null;
        try
        {
            cron = CronExpression.Parse(schedule.Cron, CronFormat.Standard);
        }
        catch (Exception e) when (e is CronFormatException or MissingSeedException or ArgumentException)
        {
            found.Add($"schedule.cron '{schedule.Cron}' is not a valid five-field cron expression: {e.Message}");
        }

        problems = found;
        parsed = cron is not null && zone is not null ? new FunctionSchedule(cron, zone) : null;
        return parsed is not null;
    }

    /// <summary>The first tick strictly after <paramref name="after"/>, in UTC; null when the expression never fires again.</summary>
    public DateTimeOffset? NextAfter(DateTimeOffset after) =>
        Cron.GetNextOccurrence(after.ToUniversalTime(), Zone) is { } next ? next.ToUniversalTime() : null;

    /// <summary>The latest tick at or before <paramref name="at"/>, in UTC; null when there is none.</summary>
    public DateTimeOffset? LatestAtOrBefore(DateTimeOffset at) =>
        Cron.GetPreviousOccurrence(at.ToUniversalTime(), Zone, inclusive: true) is { } previous ? previous.ToUniversalTime() : null;
}
