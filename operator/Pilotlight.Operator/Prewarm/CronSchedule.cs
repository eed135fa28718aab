using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;

namespace Pilotlight.Operator.Prewarm;

/// <summary>
/// A standard five-field cron expression (minute, hour, day-of-month, month,
/// day-of-week), used to warm functions up before their scheduled invocations.
/// </summary>
/// <remarks>
/// <para>
/// Each field takes <c>*</c>, a number, a range <c>a-b</c>, a step (<c>*/n</c>,
/// <c>a-b/n</c>, or <c>a/n</c> meaning <c>a</c> through the field's maximum), or a
/// comma list of those. Months may be named <c>JAN</c>-<c>DEC</c> and weekdays
/// <c>SUN</c>-<c>SAT</c> (case-insensitive); weekday 0 and 7 are both Sunday. The
/// macros <c>@yearly</c>, <c>@annually</c>, <c>@monthly</c>, <c>@weekly</c>,
/// <c>@daily</c>, <c>@midnight</c> and <c>@hourly</c> are accepted.
/// </para>
/// <para>
/// Days match as in Vixie cron: when both day-of-month and day-of-week are
/// restricted (neither field starts with <c>*</c>), a day matches if either one
/// does; otherwise both must.
/// </para>
/// <para>
/// Ticks are evaluated in the wall-clock time of a time zone: a local time that
/// does not exist (a spring-forward gap) never fires, and a local time that occurs
/// twice (a fall-back overlap) fires once, at its first occurrence.
/// </para>
/// </remarks>
public sealed class CronSchedule
{
    private const int SearchYears = 5;

    private static readonly string[] MonthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    private static readonly string[] DayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

    private static readonly Field Minute = new("minute", 0, 59, 59, null, 0);
    private static readonly Field Hour = new("hour", 0, 23, 23, null, 0);
    private static readonly Field DayOfMonth = new("day-of-month", 1, 31, 31, null, 0);
    private static readonly Field Month = new("month", 1, 12, 12, MonthNames, 1);
    private static readonly Field DayOfWeek = new("day-of-week", 0, 7, 6, DayNames, 0);

    private static readonly Dictionary<string, string> Macros = new(StringComparer.OrdinalIgnoreCase)
    {
        ["@yearly"] = "0 0 1 1 *",
        ["@annually"] = "0 0 1 1 *",
        ["@monthly"] = "0 0 1 * *",
        ["@weekly"] = "0 0 * * 0",
        ["@daily"] = "0 0 * * *",
        ["@midnight"] = "0 0 * * *",
        ["@hourly"] = "0 * * * *",
    };

    // Search bounds, in wall-clock time, that keep all date arithmetic in range.
    private static readonly DateTime Earliest = new(2, 1, 1);
    private static readonly DateTime Latest = new(9998, 12, 31, 23, 59, 0);

    private readonly string expression;
    private readonly ulong minutes;
    private readonly ulong hours;
    private readonly ulong daysOfMonth;
    private readonly ulong months;
    private readonly ulong daysOfWeek;
    private readonly bool domStar;
    private readonly bool dowStar;

    private CronSchedule(string expression, ulong minutes, ulong hours, ulong daysOfMonth, ulong months, ulong daysOfWeek, bool domStar, bool dowStar)
    {
        this.expression = expression;
        this.minutes = minutes;
        this.hours = hours;
        this.daysOfMonth = daysOfMonth;
        this.months = months;
        this.daysOfWeek = daysOfWeek;
        this.domStar = domStar;
        this.dowStar = dowStar;
    }

    /// <summary>Parses a standard five-field cron expression or one of the <c>@</c> macros.</summary>
    /// <param name="expression">The expression, e.g. <c>*/5 9-17 * * MON-FRI</c>.</param>
    /// <param name="schedule">The parsed schedule, when the expression is valid.</param>
    /// <param name="error">A one-line description of what is wrong, naming the bad field and value, when it is not.</param>
    /// <returns>Whether the expression is valid.</returns>
    public static bool TryParse(string? expression, [NotNullWhen(true)] out CronSchedule? schedule, [NotNullWhen(false)] out string? error)
    {
        schedule = null;
        if (string.IsNullOrWhiteSpace(expression))
        {
            error = "cron expression is empty";
            return false;
        }

        var text = expression.Trim();
        if (text.StartsWith('@'))
        {
            if (!Macros.TryGetValue(text, out var expanded))
            {
                error = $"unknown cron macro '{text}'; expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly";
                return false;
            }

            text = expanded;
        }

        var fields = text.Split([' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length != 5)
        {
            error = fields.Length == 6
                ? "cron expression has 6 fields, but seconds are not supported; expected 5: minute hour day-of-month month day-of-week"
                : $"cron expression has {fields.Length} field(s); expected 5: minute hour day-of-month month day-of-week";
            return false;
        }

        if (!TryParseField(fields[0], Minute, out var minutes, out error)
            || !TryParseField(fields[1], Hour, out var hours, out error)
            || !TryParseField(fields[2], DayOfMonth, out var daysOfMonth, out error)
            || !TryParseField(fields[3], Month, out var months, out error)
            || !TryParseField(fields[4], DayOfWeek, out var daysOfWeek, out error))
        {
            return false;
        }

        // Sunday is both 0 and 7; keep it as bit 0 only.
        if ((daysOfWeek & (1UL << 7)) != 0)
        {
            daysOfWeek = (daysOfWeek & ~(1UL << 7)) | 1UL;
        }

        schedule = new CronSchedule(expression, minutes, hours, daysOfMonth, months, daysOfWeek,
            domStar: fields[2].StartsWith('*'), dowStar: fields[4].StartsWith('*'));
        return true;
    }

    /// <summary>The first tick strictly after <paramref name="after"/>.</summary>
    /// <param name="after">The instant to search from (exclusive).</param>
    /// <param name="zone">The time zone whose wall-clock time the expression is evaluated in.</param>
    /// <returns>The tick as a UTC <see cref="DateTimeOffset"/> (offset zero), or null if there is none within five years.</returns>
    public DateTimeOffset? NextAfter(DateTimeOffset after, TimeZoneInfo zone)
    {
        ArgumentNullException.ThrowIfNull(zone);
        var afterUtc = after.UtcDateTime;
        var local = TimeZoneInfo.ConvertTime(after, zone).DateTime;
        var t = TruncateToMinute(local);
        if (t >= Latest)
        {
            return null;
        }

        if (t < Earliest)
        {
            t = Earliest;
        }

        t = t.AddMinutes(1);
        var limit = t.Year + SearchYears > Latest.Year ? Latest : t.AddYears(SearchYears);

        while (t <= limit)
        {
            var month = NextBit(months, t.Month);
            if (month < 0)
            {
                t = new DateTime(t.Year + 1, 1, 1);
                continue;
            }

            if (month != t.Month)
            {
                t = new DateTime(t.Year, month, 1);
                continue;
            }

            if (!DayMatches(t))
            {
                t = t.Date.AddDays(1);
                continue;
            }

            var hour = NextBit(hours, t.Hour);
            if (hour < 0)
            {
                t = t.Date.AddDays(1);
                continue;
            }

            if (hour != t.Hour)
            {
                t = t.Date.AddHours(hour);
                continue;
            }

            var minute = NextBit(minutes, t.Minute);
            if (minute < 0)
            {
                t = t.Date.AddHours(hour + 1);
                continue;
            }

            t = t.Date.AddHours(hour).AddMinutes(minute);
            if (t > limit)
            {
                break;
            }

            if (TryResolve(t, zone, out var utc) && utc > afterUtc)
            {
                return new DateTimeOffset(utc, TimeSpan.Zero);
            }

            // A skipped local time (gap), or the repeat of an overlap already passed.
            t = t.AddMinutes(1);
        }

        return null;
    }

    /// <summary>The most recent tick at or before <paramref name="at"/>.</summary>
    /// <param name="at">The instant to search back from (inclusive).</param>
    /// <param name="zone">The time zone whose wall-clock time the expression is evaluated in.</param>
    /// <returns>The tick as a UTC <see cref="DateTimeOffset"/> (offset zero), or null if there is none within the last five years.</returns>
    public DateTimeOffset? PreviousAtOrBefore(DateTimeOffset at, TimeZoneInfo zone)
    {
        ArgumentNullException.ThrowIfNull(zone);
        var atUtc = at.UtcDateTime;
        var converted = TimeZoneInfo.ConvertTime(at, zone);
        var t = TruncateToMinute(converted.DateTime);

        // In the second pass of an overlap, ticks fire at their first occurrence, so
        // local times later than now's wall clock may already have fired: start the
        // search from the end of what the first pass has covered.
        if (zone.IsAmbiguousTime(at))
        {
            var first = zone.GetAmbiguousTimeOffsets(at).Max();
            if (first > converted.Offset)
            {
                t = t.Add(first - converted.Offset);
            }
        }

        if (t > Latest)
        {
            t = Latest;
        }

        if (t < Earliest)
        {
            return null;
        }

        var limit = t.Year - SearchYears < Earliest.Year ? Earliest : t.AddYears(-SearchYears);

        while (t >= limit)
        {
            var month = PreviousBit(months, t.Month);
            if (month < 0)
            {
                t = new DateTime(t.Year - 1, 12, 31, 23, 59, 0);
                continue;
            }

            if (month != t.Month)
            {
                t = new DateTime(t.Year, month, DateTime.DaysInMonth(t.Year, month), 23, 59, 0);
                continue;
            }

            if (!DayMatches(t))
            {
                t = t.Date.AddMinutes(-1);
                continue;
            }

            var hour = PreviousBit(hours, t.Hour);
            if (hour < 0)
            {
                t = t.Date.AddMinutes(-1);
                continue;
            }

            if (hour != t.Hour)
            {
                t = t.Date.AddHours(hour).AddMinutes(59);
                continue;
            }

            var minute = PreviousBit(minutes, t.Minute);
            if (minute < 0)
            {
                t = t.Date.AddHours(hour).AddMinutes(-1);
                continue;
            }

            t = t.Date.AddHours(hour).AddMinutes(minute);
            if (t < limit)
            {
                break;
            }

            if (TryResolve(t, zone, out var utc) && utc <= atUtc)
            {
                return new DateTimeOffset(utc, TimeSpan.Zero);
            }

            t = t.AddMinutes(-1);
        }

        return null;
    }

    /// <summary>The expression as it was given to <see cref="TryParse"/>.</summary>
    /// <returns>The original expression.</returns>
    public override string ToString() => expression;

    private bool DayMatches(DateTime day)
    {
        var domHit = (daysOfMonth & (1UL << day.Day)) != 0;
        var dowHit = (daysOfWeek & (1UL << (int)day.DayOfWeek)) != 0;
        return domStar || dowStar ? domHit && dowHit : domHit || dowHit;
    }

    /// <summary>The UTC instant of a local wall-clock time; false if the zone skips it.</summary>
    private static bool TryResolve(DateTime wall, TimeZoneInfo zone, out DateTime utc)
    {
        if (zone.IsInvalidTime(wall))
        {
            utc = default;
            return false;
        }

        // An ambiguous time fires at its first occurrence: the larger offset.
        var offset = zone.IsAmbiguousTime(wall) ? zone.GetAmbiguousTimeOffsets(wall).Max() : zone.GetUtcOffset(wall);
        utc = DateTime.SpecifyKind(wall - offset, DateTimeKind.Utc);
        return true;
    }

    private static DateTime TruncateToMinute(DateTime value) =>
        new(value.Ticks - (value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Unspecified);

    /// <summary>The lowest set bit at or above <paramref name="from"/>, or -1.</summary>
    private static int NextBit(ulong bits, int from)
    {
        var masked = bits & (ulong.MaxValue << from);
        return masked == 0 ? -1 : BitOperations.TrailingZeroCount(masked);
    }

    /// <summary>The highest set bit at or below <paramref name="from"/>, or -1.</summary>
    private static int PreviousBit(ulong bits, int from)
    {
        var masked = from >= 63 ? bits : bits & ((1UL << (from + 1)) - 1);
        return masked == 0 ? -1 : 63 - BitOperations.LeadingZeroCount(masked);
    }

    private static bool TryParseField(string text, Field field, out ulong bits, [NotNullWhen(false)] out string? error)
    {
        bits = 0;
        foreach (var item in text.Split(','))
        {
            if (!TryParseItem(item, field, ref bits, out var problem))
            {
                error = $"invalid {field.Name} field '{text}': {problem}";
                return false;
            }
        }

        error = null;
        return true;
    }

    private static bool TryParseItem(string item, Field field, ref ulong bits, [NotNullWhen(false)] out string? problem)
    {
        if (item.Length == 0)
        {
            problem = "empty list item";
            return false;
        }

        var slash = item.IndexOf('/');
        var range = slash < 0 ? item : item[..slash];
        var step = 1;
        if (slash >= 0)
        {
            var stepText = item[(slash + 1)..];
            if (!TryParseNumber(stepText, out step))
            {
                problem = stepText.Length == 0 ? $"missing step after '/' in '{item}'" : $"step '{stepText}' is not a number";
                return false;
            }

            var span = field.Max - field.Min + 1;
            if (step < 1 || step > span)
            {
                problem = $"step {step} is out of range 1-{span}";
                return false;
            }
        }

        int low, high;
        if (range == "*")
        {
            low = field.Min;
            high = field.StarMax;
        }
        else
        {
            var dash = range.IndexOf('-');
            if (dash < 0)
            {
                if (!TryParseValue(range, field, out low, out problem))
                {
                    return false;
                }

                // "a/n" runs from a through the field's maximum.
                high = slash < 0 ? low : Math.Max(low, field.StarMax);
            }
            else
            {
                if (!TryParseValue(range[..dash], field, out low, out problem)
                    || !TryParseValue(range[(dash + 1)..], field, out high, out problem))
                {
                    return false;
                }

                if (low > high)
                {
                    problem = $"range {range} is reversed";
                    return false;
                }
            }
        }

        for (var v = low; v <= high; v += step)
        {
            bits |= 1UL << v;
        }

        problem = null;
        return true;
    }

    private static bool TryParseValue(string token, Field field, out int value, [NotNullWhen(false)] out string? problem)
    {
        problem = null;
        if (token.Length == 0)
        {
            value = 0;
            problem = "missing value";
            return false;
        }

        if (field.Names is { } names && char.IsAsciiLetter(token[0]))
        {
            var index = Array.FindIndex(names, n => string.Equals(n, token, StringComparison.OrdinalIgnoreCase));
            if (index < 0)
            {
                value = 0;
                problem = $"'{token}' is not a valid {field.Name} name";
                return false;
            }

            value = index + field.NameBase;
            return true;
        }

        if (!TryParseNumber(token, out value))
        {
            problem = $"'{token}' is not a valid value";
            return false;
        }

        if (value < field.Min || value > field.Max)
        {
            problem = $"value {token} is out of range {field.Min}-{field.Max}";
            return false;
        }

        return true;
    }

    /// <summary>Plain ASCII digits only (no sign, no whitespace); large numbers saturate so range checks reject them.</summary>
    private static bool TryParseNumber(string token, out int value)
    {
        value = 0;
        if (token.Length == 0)
        {
            return false;
        }

        foreach (var c in token)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        value = token.Length > 6 ? int.MaxValue : int.Parse(token, NumberStyles.None, CultureInfo.InvariantCulture);
        return true;
    }

    /// <summary>A field's name, accepted range, the top of <c>*</c>, and optional names (numbered from <paramref name="NameBase"/>).</summary>
    private sealed record Field(string Name, int Min, int Max, int StarMax, string[]? Names, int NameBase);
}
