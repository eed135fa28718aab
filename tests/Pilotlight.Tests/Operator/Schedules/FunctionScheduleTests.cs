using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Tests.Operator.Schedules;

/// <summary>
/// What the operator relies on from Cronos: the next and the latest tick of a
/// schedule in its time zone, through daylight saving changes, and a clear
/// refusal of what it cannot read. The parser itself is Cronos's to test.
/// </summary>
public class FunctionScheduleTests
{
    private static FunctionSchedule Parse(string cron, string zone = "UTC")
    {
        Assert.That(FunctionSchedule.TryCreate(new InvocationSchedule { Cron = cron, TimeZone = zone }, out var schedule, out var problems), Is.True,
            string.Join("; ", problems));
        return schedule!;
    }

    private static DateTimeOffset Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) =>
        new(year, month, day, hour, minute, second, TimeSpan.Zero);

    private static List<DateTimeOffset> Ticks(FunctionSchedule schedule, DateTimeOffset after, int count)
    {
        var ticks = new List<DateTimeOffset>();
        var t = after;
        for (var i = 0; i < count; i++)
        {
            t = schedule.NextAfter(t) ?? throw new AssertionException($"no tick after {t:O}");
            ticks.Add(t);
        }

        return ticks;
    }

    [Test]
    public void Every_minute_fires_at_the_start_of_each_minute_strictly_after()
    {
        var cron = Parse("* * * * *");

        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 2, 30)), Is.EqualTo(Utc(2026, 11, 23, 8, 3)));
        Assert.That(cron.NextAfter(Utc(2026, 11, 23, 8, 3)), Is.EqualTo(Utc(2026, 11, 23, 8, 4)));
        Assert.That(cron.LatestAtOrBefore(Utc(2026, 11, 23, 8, 3)), Is.EqualTo(Utc(2026, 11, 23, 8, 3)), "an exact tick is the latest at that instant");
        Assert.That(cron.LatestAtOrBefore(Utc(2026, 11, 23, 8, 3, 59)), Is.EqualTo(Utc(2026, 11, 23, 8, 3)));
    }

    [Test]
    public void Ticks_are_UTC_instants_whatever_the_input_offset()
    {
        var cron = Parse("0 9 * * *", "Europe/Berlin");

        // 12:00 at UTC+5 is 07:00Z, an hour before 09:00 in Berlin.
        var next = cron.NextAfter(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.FromHours(5)));

        Assert.That(next, Is.EqualTo(Utc(2026, 11, 23, 8)));
        Assert.That(next!.Value.Offset, Is.EqualTo(TimeSpan.Zero));
        Assert.That(cron.LatestAtOrBefore(Utc(2026, 11, 23, 12))!.Value.Offset, Is.EqualTo(TimeSpan.Zero));
    }

    [Test]
    public void Daily_at_nine_in_Berlin_follows_the_wall_clock_across_both_changes()
    {
        var cron = Parse("0 9 * * *", "Europe/Berlin");

        // 09:00 CET (UTC+1), then 09:00 CEST (UTC+2) from Sunday 29 March 2026, and back on 25 October.
        Assert.That(Ticks(cron, Utc(2026, 3, 27, 12), 3), Is.EqualTo(new[] { Utc(2026, 3, 28, 8), Utc(2026, 3, 29, 7), Utc(2026, 3, 30, 7) }));
        Assert.That(Ticks(cron, Utc(2026, 10, 23, 12), 3), Is.EqualTo(new[] { Utc(2026, 10, 24, 7), Utc(2026, 10, 25, 8), Utc(2026, 10, 26, 8) }));
        Assert.That(cron.LatestAtOrBefore(Utc(2026, 3, 29, 6, 59)), Is.EqualTo(Utc(2026, 3, 28, 8)));
    }

    [Test]
    public void A_wall_time_skipped_at_spring_forward_fires_once_at_the_end_of_the_gap()
    {
        var cron = Parse("30 2 * * *", "Europe/Berlin");

        // 2026-03-29 has no 02:30 in Berlin (02:00 CET jumps to 03:00 CEST = 01:00Z): the night's run is not lost.
        Assert.That(Ticks(cron, Utc(2026, 3, 28, 12), 2), Is.EqualTo(new[] { Utc(2026, 3, 29, 1), Utc(2026, 3, 30, 0, 30) }));
    }

    [Test]
    public void A_wall_time_repeated_at_fall_back_fires_once_at_its_first_occurrence()
    {
        var cron = Parse("30 2 * * *", "Europe/Berlin");

        // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens at 00:30Z and again at 01:30Z.
        Assert.That(Ticks(cron, Utc(2026, 10, 24, 12), 2), Is.EqualTo(new[] { Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 26, 1, 30) }));
        Assert.That(cron.LatestAtOrBefore(Utc(2026, 10, 25, 1, 45)), Is.EqualTo(Utc(2026, 10, 25, 0, 30)), "the second 02:30 is no tick");
    }

    [Test]
    public void An_interval_schedule_keeps_its_interval_through_the_repeated_hour()
    {
        var cron = Parse("*/30 * * * *", "Europe/Berlin");

        // Every 30 minutes of real time: both copies of 02:00-03:00 fire.
        Assert.That(Ticks(cron, Utc(2026, 10, 25, 0, 0), 4),
            Is.EqualTo(new[] { Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 25, 1, 0), Utc(2026, 10, 25, 1, 30), Utc(2026, 10, 25, 2, 0) }));
    }

    [Test]
    public void Zones_are_IANA_names_and_the_sample_runs_at_two_in_the_night_in_Berlin()
    {
        var nightly = Parse("0 2 * * *", "Europe/Berlin");
        var newYork = Parse("0 2 * * *", "America/New_York");

        Assert.That(nightly.NextAfter(Utc(2026, 7, 1, 12)), Is.EqualTo(Utc(2026, 7, 2, 0)));
        Assert.That(newYork.NextAfter(Utc(2026, 7, 1, 12)), Is.EqualTo(Utc(2026, 7, 2, 6)));
        Assert.That(newYork.NextAfter(Utc(2026, 12, 1, 12)), Is.EqualTo(Utc(2026, 12, 2, 7)));
    }

    [TestCase("0 9 * * MON-FRI", "2026-11-27T09:00:00Z")]
    [TestCase("@hourly", "2026-11-26T13:00:00Z")]
    [TestCase("@daily", "2026-11-27T00:00:00Z")]
    [TestCase("@weekly", "2026-11-29T00:00:00Z")]
    [TestCase("0 0 * * 7", "2026-11-29T00:00:00Z")]
    public void Standard_forms_and_macros_give_the_expected_next_tick(string cron, string expected)
    {
        // Thursday 26 November 2026, 12:10 UTC.
        Assert.That(Parse(cron).NextAfter(Utc(2026, 11, 26, 12, 10)),
            Is.EqualTo(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Test]
    public void When_both_day_fields_are_restricted_both_must_match_unlike_Vixie_cron()
    {
        // Cronos ANDs day-of-month and day-of-week: Friday the 13th, not every Friday and every 13th.
        Assert.That(Parse("0 0 13 * 5").NextAfter(Utc(2026, 11, 26)), Is.EqualTo(Utc(2027, 8, 13)));
    }

    [Test]
    public void An_impossible_date_has_no_tick_either_way()
    {
        var cron = Parse("0 0 30 2 *");

        Assert.That(cron.NextAfter(Utc(2026, 11, 23)), Is.Null);
        Assert.That(cron.LatestAtOrBefore(Utc(2026, 11, 23)), Is.Null);
    }

    [TestCase("60 * * * *")]
    [TestCase("* 24 * * *")]
    [TestCase("* * 0 * *")]
    [TestCase("* * * 13 *")]
    [TestCase("* * * * FUN")]
    [TestCase("*/0 * * * *")]
    [TestCase("0 0 * * * *")]
    [TestCase("* * * *")]
    [TestCase("@reboot")]
    [TestCase("H * * * *")]
    public void An_invalid_expression_is_one_problem_naming_the_field_and_value(string cron)
    {
        Assert.That(FunctionSchedule.TryCreate(new InvocationSchedule { Cron = cron }, out var schedule, out var problems), Is.False);

        Assert.That(schedule, Is.Null);
        Assert.That(problems, Has.Count.EqualTo(1));
        Assert.That(problems[0], Does.StartWith($"schedule.cron '{cron}' is not a valid five-field cron expression"));
        Assert.That(problems[0], Does.Not.Contain("\n"));
    }

    [TestCase("Mars/Olympus_Mons")]
    [TestCase("")]
    public void An_unknown_time_zone_is_a_problem(string zone)
    {
        Assert.That(FunctionSchedule.TryCreate(new InvocationSchedule { Cron = "0 9 * * *", TimeZone = zone }, out var schedule, out var problems), Is.False);

        Assert.That(schedule, Is.Null);
        Assert.That(problems, Is.EqualTo(new[] { $"schedule.timeZone '{zone}' is not a known IANA time zone" }));
    }
}
