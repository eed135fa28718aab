using Pilotlight.Operator.Prewarm;

namespace Pilotlight.Tests.Operator.Prewarm;

public class CronScheduleTests
{
    private static readonly TimeZoneInfo Berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");

    private static CronSchedule Parse(string expression)
    {
        Assert.That(CronSchedule.TryParse(expression, out var schedule, out var error), Is.True, error);
        return schedule!;
    }

    private static DateTimeOffset Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) =>
        new(year, month, day, hour, minute, second, TimeSpan.Zero);

    private static List<DateTimeOffset> Ticks(CronSchedule schedule, DateTimeOffset after, int count, TimeZoneInfo zone)
    {
        var ticks = new List<DateTimeOffset>();
        var t = after;
        for (var i = 0; i < count; i++)
        {
            t = schedule.NextAfter(t, zone) ?? throw new AssertionException($"no tick after {t:O}");
            ticks.Add(t);
        }

        return ticks;
    }

    [Test]
    public void Every_five_minutes_fires_on_the_next_multiple_of_five_strictly_after()
    {
        var cron = Parse("*/5 * * * *");

        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 2, 30), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 8, 5)));
        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 5), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 8, 10)));
        Assert.That(cron.NextAfter(Utc(2026, 12, 31, 23, 57), TimeZoneInfo.Utc), Is.EqualTo(Utc(2027, 1, 1, 0, 0)));
    }

    [Test]
    public void Hourly_at_half_past_fires_once_an_hour()
    {
        var cron = Parse("30 * * * *");

        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 29, 59), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 8, 30)));
        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 30), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 9, 30)));
        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 23, 45), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 24, 0, 30)));
    }

    [Test]
    public void Daily_at_nine_in_Berlin_follows_the_wall_clock_across_the_spring_change()
    {
        var cron = Parse("0 9 * * *");

        // 09:00 CET (UTC+1) on Saturday, then 09:00 CEST (UTC+2) from Sunday 29 March 2026.
        var ticks = Ticks(cron, Utc(2026, 3, 27, 12), 3, Berlin);

        Assert.That(ticks, Is.EqualTo(new[] { Utc(2026, 3, 28, 8), Utc(2026, 3, 29, 7), Utc(2026, 3, 30, 7) }));
        Assert.That(ticks.Select(t => t.Offset), Is.All.EqualTo(TimeSpan.Zero));
    }

    [Test]
    public void A_local_time_inside_the_spring_forward_gap_is_skipped()
    {
        var cron = Parse("30 2 * * *");

        // 2026-03-29 has no 02:30 in Berlin (02:00 CET jumps to 03:00 CEST).
        Assert.That(cron.NextAfter(Utc(2026, 3, 28, 2), Berlin), Is.EqualTo(Utc(2026, 3, 30, 0, 30)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 3, 29, 12), Berlin), Is.EqualTo(Utc(2026, 3, 28, 1, 30)));
    }

    [Test]
    public void An_ambiguous_local_time_fires_once_at_its_first_occurrence()
    {
        var cron = Parse("30 2 * * *");

        // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens at 00:30Z and again at 01:30Z.
        Assert.That(cron.NextAfter(Utc(2026, 10, 24, 12), Berlin), Is.EqualTo(Utc(2026, 10, 25, 0, 30)));
        Assert.That(cron.NextAfter(Utc(2026, 10, 25, 0, 30), Berlin), Is.EqualTo(Utc(2026, 10, 26, 1, 30)));
        Assert.That(cron.NextAfter(Utc(2026, 10, 25, 1, 10), Berlin), Is.EqualTo(Utc(2026, 10, 26, 1, 30)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 10, 25, 1, 45), Berlin), Is.EqualTo(Utc(2026, 10, 25, 0, 30)));
        // At 02:10 CET (replayed hour) the wall clock reads earlier than the 02:30 CEST tick that already fired.
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 10, 25, 1, 10), Berlin), Is.EqualTo(Utc(2026, 10, 25, 0, 30)));
    }

    [Test]
    public void A_frequent_schedule_does_not_repeat_the_hour_that_is_replayed_at_fall_back()
    {
        var cron = Parse("*/30 * * * *");

        Assert.That(Ticks(cron, Utc(2026, 10, 25, 0, 0), 3, Berlin),
            Is.EqualTo(new[] { Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 25, 2, 0), Utc(2026, 10, 25, 2, 30) }));
        // From inside the replayed hour, the last tick was the first pass's 02:30 local, even at 02:10 CET.
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 10, 25, 1, 45), Berlin), Is.EqualTo(Utc(2026, 10, 25, 0, 30)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 10, 25, 1, 10), Berlin), Is.EqualTo(Utc(2026, 10, 25, 0, 30)));
    }

    [Test]
    public void When_both_day_fields_are_restricted_either_one_matching_is_enough()
    {
        // 2026-05-08 and 2026-05-15 are Fridays; 2026-05-13 is a Wednesday.
        Assert.That(Ticks(Parse("0 0 13 * 5"), Utc(2026, 5, 2), 3, TimeZoneInfo.Utc),
            Is.EqualTo(new[] { Utc(2026, 5, 8), Utc(2026, 5, 13), Utc(2026, 5, 15) }));
        Assert.That(Ticks(Parse("0 0 13 * *"), Utc(2026, 5, 2), 2, TimeZoneInfo.Utc),
            Is.EqualTo(new[] { Utc(2026, 5, 13), Utc(2026, 6, 13) }));
        Assert.That(Ticks(Parse("0 0 * * 5"), Utc(2026, 5, 2), 2, TimeZoneInfo.Utc),
            Is.EqualTo(new[] { Utc(2026, 5, 8), Utc(2026, 5, 15) }));
    }

    [Test]
    public void A_day_field_starting_with_a_star_counts_as_unrestricted_as_in_Vixie_cron()
    {
        // "*/2" marks day-of-month as unrestricted, so both fields must match: odd-numbered Fridays.
        Assert.That(Ticks(Parse("0 0 */2 * 5"), Utc(2026, 5, 2), 2, TimeZoneInfo.Utc),
            Is.EqualTo(new[] { Utc(2026, 5, 15), Utc(2026, 5, 29) }));
    }

    [TestCase("0 9 * JAN MON-FRI")]
    [TestCase("0 9 * jan mon-fri")]
    [TestCase("0 9 * 1 1-5")]
    public void Month_and_weekday_names_are_accepted(string expression)
    {
        // 2027-01-01 is a Friday; the 2nd and 3rd are a weekend.
        Assert.That(Ticks(Parse(expression), Utc(2026, 11, 23), 2, TimeZoneInfo.Utc),
            Is.EqualTo(new[] { Utc(2027, 1, 1, 9), Utc(2027, 1, 4, 9) }));
    }

    [Test]
    public void Seven_is_Sunday_as_well_as_zero()
    {
        // 2026-11-23 is a Monday.
        Assert.That(Parse("0 0 * * 7").NextAfter(Utc(2026, 11, 23), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 29)));
        Assert.That(Parse("0 0 * * 0").NextAfter(Utc(2026, 11, 23), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 29)));
        Assert.That(Ticks(Parse("0 0 * * 5-7"), Utc(2026, 11, 23), 4, TimeZoneInfo.Utc),
            Is.EqualTo(new[] { Utc(2026, 11, 27), Utc(2026, 11, 28), Utc(2026, 11, 29), Utc(2026, 12, 4) }));
    }

    [TestCase("@hourly", "2026-11-23T09:00:00Z")]
    [TestCase("@daily", "2026-11-24T00:00:00Z")]
    [TestCase("@midnight", "2026-11-24T00:00:00Z")]
    [TestCase("@DAILY", "2026-11-24T00:00:00Z")]
    [TestCase("@weekly", "2026-11-29T00:00:00Z")]
    [TestCase("@monthly", "2026-12-01T00:00:00Z")]
    [TestCase("@yearly", "2027-01-01T00:00:00Z")]
    [TestCase("@annually", "2027-01-01T00:00:00Z")]
    public void Macros_expand_to_their_schedules(string macro, string expected)
    {
        var cron = Parse(macro);

        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 10), TimeZoneInfo.Utc), Is.EqualTo(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(cron.ToString(), Is.EqualTo(macro));
    }

    [Test]
    public void An_impossible_date_has_no_tick_either_way()
    {
        var cron = Parse("0 0 30 2 *");

        Assert.That(cron.NextAfter(Utc(2026, 11, 23), Berlin), Is.Null);
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 11, 23), Berlin), Is.Null);
    }

    [Test]
    public void A_rare_date_is_found_years_ahead_and_behind()
    {
        var cron = Parse("0 0 29 2 *");

        Assert.That(cron.NextAfter(Utc(2026, 11, 23), TimeZoneInfo.Utc), Is.EqualTo(Utc(2028, 2, 29)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 11, 23), TimeZoneInfo.Utc), Is.EqualTo(Utc(2024, 2, 29)));
        // 2100 is not a leap year, so after 2096 the next 29 February is in 2104: over five years away.
        Assert.That(cron.NextAfter(Utc(2096, 3, 1), TimeZoneInfo.Utc), Is.Null);
    }

    [Test]
    public void Previous_at_or_before_includes_an_exact_tick()
    {
        var cron = Parse("*/5 * * * *");

        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 11, 23, 8, 5), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 8, 5)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 11, 23, 8, 9, 59), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 8, 5)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 11, 23, 8, 4, 59), TimeZoneInfo.Utc), Is.EqualTo(Utc(2026, 11, 23, 8, 0)));
    }

    [Test]
    public void Previous_at_or_before_follows_the_wall_clock_in_a_zone()
    {
        var cron = Parse("0 9 * * *");

        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 3, 29, 6, 59), Berlin), Is.EqualTo(Utc(2026, 3, 28, 8)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 3, 29, 7), Berlin), Is.EqualTo(Utc(2026, 3, 29, 7)));
        Assert.That(cron.PreviousAtOrBefore(Utc(2026, 3, 29, 7), Berlin)!.Value.Offset, Is.EqualTo(TimeSpan.Zero));
    }

    private static IEnumerable<TestCaseData> AgreementCases()
    {
        foreach (var (expression, matches) in new (string, Func<DateTime, bool>)[]
        {
            ("*/15 1-3 * * *", l => l.Minute % 15 == 0 && l.Hour is >= 1 and <= 3),
            ("30 2 * * SUN", l => l.Minute == 30 && l.Hour == 2 && l.DayOfWeek == DayOfWeek.Sunday),
            ("0 0 13 * 5", l => l.Minute == 0 && l.Hour == 0 && (l.Day == 13 || l.DayOfWeek == DayOfWeek.Friday)),
            ("0 0,12 1-7 * 1", l => l.Minute == 0 && l.Hour % 12 == 0 && (l.Day <= 7 || l.DayOfWeek == DayOfWeek.Monday)),
            ("59 23 * 3,10 *", l => l.Minute == 59 && l.Hour == 23 && l.Month is 3 or 10),
        })
        {
            foreach (var start in new[] { Utc(2026, 3, 20), Utc(2026, 10, 18) })
            {
                yield return new TestCaseData(expression, matches, start).SetArgDisplayNames(expression, start.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
            }
        }
    }

    [TestCaseSource(nameof(AgreementCases))]
    public void Agrees_with_a_minute_by_minute_scan_around_Berlin_DST_changes(string expression, Func<DateTime, bool> matches, DateTimeOffset start)
    {
        var cron = Parse(expression);
        var end = start.AddDays(16);

        // Reference: every UTC minute whose Berlin wall clock matches, counting a replayed wall time only once.
        var expected = new List<DateTimeOffset>();
        for (var t = start.AddMinutes(1); t <= end; t = t.AddMinutes(1))
        {
            var local = TimeZoneInfo.ConvertTime(t, Berlin);
            var first = !Berlin.IsAmbiguousTime(t) || local.Offset == Berlin.GetAmbiguousTimeOffsets(t).Max();
            if (first && matches(local.DateTime))
            {
                expected.Add(t);
            }
        }

        var forward = new List<DateTimeOffset>();
        for (var t = cron.NextAfter(start, Berlin); t is { } tick && tick <= end; t = cron.NextAfter(tick, Berlin))
        {
            forward.Add(tick);
        }

        var backward = new List<DateTimeOffset>();
        for (var t = cron.PreviousAtOrBefore(end, Berlin); t is { } tick && tick > start; t = cron.PreviousAtOrBefore(tick.AddSeconds(-1), Berlin))
        {
            backward.Insert(0, tick);
        }

        Assert.That(expected, Is.Not.Empty);
        Assert.That(forward, Is.EqualTo(expected));
        Assert.That(backward, Is.EqualTo(expected));
    }

    [Test]
    public void Searches_with_no_tick_in_five_years_end_with_null_from_any_start()
    {
        // Speed is for benchmarks, not tests: this asserts only what the searches return.
        var impossible = Parse("0 0 30 2 *");
        var weekdays = Parse("*/5 9-17 * * MON-FRI");
        for (var i = 0; i < 1000; i += 7)
        {
            Assert.That(impossible.NextAfter(Utc(2026, 1, 1).AddHours(i), Berlin), Is.Null);
            Assert.That(impossible.PreviousAtOrBefore(Utc(2026, 1, 1).AddHours(i), Berlin), Is.Null);
            Assert.That(weekdays.NextAfter(Utc(2026, 1, 1).AddHours(i), Berlin), Is.Not.Null);
        }
    }

    [Test]
    public void ToString_is_the_original_expression()
    {
        Assert.That(Parse("*/5  9-17 * * MON-FRI").ToString(), Is.EqualTo("*/5  9-17 * * MON-FRI"));
    }

    [TestCase("60 * * * *", "minute", "60")]
    [TestCase("-1 * * * *", "minute", "-1")]
    [TestCase("a * * * *", "minute", "a")]
    [TestCase("5-1 * * * *", "minute", "5-1")]
    [TestCase("*/0 * * * *", "minute", "*/0")]
    [TestCase("*/ * * * *", "minute", "*/")]
    [TestCase("1/2/3 * * * *", "minute", "1/2/3")]
    [TestCase("1,,2 * * * *", "minute", "1,,2")]
    [TestCase("1-2-3 * * * *", "minute", "1-2-3")]
    [TestCase("* 24 * * *", "hour", "24")]
    [TestCase("* 1.5 * * *", "hour", "1.5")]
    [TestCase("* */0 * * *", "hour", "*/0")]
    [TestCase("* * 0 * *", "day-of-month", "0")]
    [TestCase("* * 32 * *", "day-of-month", "32")]
    [TestCase("* * 20-10 * *", "day-of-month", "20-10")]
    [TestCase("* * * 13 *", "month", "13")]
    [TestCase("* * * FOO *", "month", "FOO")]
    [TestCase("* * * DEC-JAN *", "month", "DEC-JAN")]
    [TestCase("* * * MON *", "month", "MON")]
    [TestCase("* * * * 8", "day-of-week", "8")]
    [TestCase("* * * * FUN", "day-of-week", "FUN")]
    [TestCase("* * * * MON-", "day-of-week", "MON-")]
    [TestCase("* * * * JAN", "day-of-week", "JAN")]
    [TestCase("* * * * 99999999999", "day-of-week", "99999999999")]
    public void An_invalid_field_is_rejected_naming_the_field_and_value(string expression, string field, string value)
    {
        Assert.That(CronSchedule.TryParse(expression, out var schedule, out var error), Is.False);
        Assert.That(schedule, Is.Null);
        Assert.That(error, Does.Contain($" {field} field").And.Contain(value));
        Assert.That(error, Does.Not.Contain("\n"));
    }

    [TestCase(null, "empty")]
    [TestCase("", "empty")]
    [TestCase("   ", "empty")]
    [TestCase("* * * *", "4 field")]
    [TestCase("0 0 * * * *", "seconds")]
    [TestCase("0 0 0 * * * 2026", "7 field")]
    [TestCase("@reboot", "@reboot")]
    [TestCase("@every 5m", "@every 5m")]
    public void A_malformed_expression_is_rejected_saying_why(string? expression, string expected)
    {
        Assert.That(CronSchedule.TryParse(expression, out var schedule, out var error), Is.False);
        Assert.That(schedule, Is.Null);
        Assert.That(error, Does.Contain(expected));
        Assert.That(error, Does.Not.Contain("\n"));
    }
}
