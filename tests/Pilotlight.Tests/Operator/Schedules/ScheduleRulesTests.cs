using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Tests.Operator.Schedules;

public class ScheduleRulesTests
{
    private static readonly DateTimeOffset Created = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    internal static GpuFunction Function(string cron, DateTimeOffset? lastScheduleTime = null, string zone = "UTC", DateTimeOffset? created = null) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = "fn", NamespaceProperty = "team", CreationTimestamp = (created ?? Created).UtcDateTime, ResourceVersion = "1", Uid = "u-1",
        },
        Spec = new GpuFunctionSpec { Image = "m:1", Schedule = new InvocationSchedule { Cron = cron, TimeZone = zone, Path = "/run" } },
        Status = lastScheduleTime is { } t ? new GpuFunctionStatus { LastScheduleTime = t.UtcDateTime } : null,
    };

    private static FunctionSchedule Schedule(GpuFunction f)
    {
        Assert.That(FunctionSchedule.TryCreate(f.Spec.Schedule!, out var s, out var problems), Is.True, string.Join("; ", problems));
        return s!;
    }

    private static ScheduleDecision Decide(GpuFunction f, DateTimeOffset now, DateTimeOffset? claimed = null) =>
        ScheduleRules.Decide(f, Schedule(f), now, claimed);

    private static DateTimeOffset At(int hour, int minute, int second = 0, int day = 23) => new(2026, 11, day, hour, minute, second, TimeSpan.Zero);

    [Test]
    public void The_latest_tick_runs_once_it_has_come()
    {
        var f = Function("* * * * *", lastScheduleTime: At(10, 0));

        Assert.That(Decide(f, At(10, 0, 30)), Is.EqualTo(new ScheduleDecision(ScheduleAction.None, null, At(10, 1))), "10:00 is taken; wait for 10:01");
        Assert.That(Decide(f, At(10, 1)), Is.EqualTo(new ScheduleDecision(ScheduleAction.Run, At(10, 1), At(10, 2))));
        Assert.That(Decide(f, At(10, 1, 59)).Action, Is.EqualTo(ScheduleAction.Run));
    }

    [Test]
    public void A_tick_claimed_here_but_not_yet_in_the_cache_does_not_run_again()
    {
        var stale = Function("* * * * *", lastScheduleTime: At(10, 0));

        Assert.That(Decide(stale, At(10, 1, 5), claimed: At(10, 1)).Action, Is.EqualTo(ScheduleAction.None));
        Assert.That(Decide(stale, At(10, 2), claimed: At(10, 1)).Tick, Is.EqualTo(At(10, 2)));
    }

    [Test]
    public void After_an_outage_only_the_latest_missed_tick_runs_and_only_within_five_minutes()
    {
        var f = Function("* * * * *", lastScheduleTime: At(10, 0));

        // Down from 10:00:30 to 10:03:30: 10:01, 10:02 and 10:03 came; one request, for 10:03.
        Assert.That(Decide(f, At(10, 3, 30)), Is.EqualTo(new ScheduleDecision(ScheduleAction.Run, At(10, 3), At(10, 4))));

        var nightly = Function("0 2 * * *", lastScheduleTime: At(2, 0, day: 22));
        Assert.That(Decide(nightly, At(2, 5)).Action, Is.EqualTo(ScheduleAction.Run), "five minutes late still runs");
        Assert.That(Decide(nightly, At(2, 5, 1)), Is.EqualTo(new ScheduleDecision(ScheduleAction.Miss, At(2, 0), At(2, 0, day: 24))),
            "later is recorded as missed, not run");
        Assert.That(Decide(nightly, At(14, 0)).Action, Is.EqualTo(ScheduleAction.Miss));
    }

    [Test]
    public void Ticks_before_the_function_existed_never_run_and_a_first_tick_is_never_reported_missed()
    {
        var created = At(10, 0, 30);
        var fresh = Function("* * * * *", created: created);

        Assert.That(Decide(fresh, At(10, 0, 40)).Action, Is.EqualTo(ScheduleAction.None), "10:00 came before the function");
        Assert.That(Decide(fresh, At(10, 1)), Is.EqualTo(new ScheduleDecision(ScheduleAction.Run, At(10, 1), At(10, 2))));

        var neverRun = Function("0 2 * * *", created: At(0, 0, day: 20));
        Assert.That(Decide(neverRun, At(9, 0)).Action, Is.EqualTo(ScheduleAction.None), "no record to be behind of: nothing is reported");
        Assert.That(Decide(neverRun, At(2, 3)).Action, Is.EqualTo(ScheduleAction.Run));
    }

    [Test]
    public void A_tick_in_the_second_the_function_was_created_counts()
    {
        var f = Function("* * * * *", created: new DateTimeOffset(2026, 11, 23, 10, 1, 0, 400, TimeSpan.Zero));

        Assert.That(Decide(f, At(10, 1, 2)).Tick, Is.EqualTo(At(10, 1)));
    }

    [Test]
    public void Ticks_follow_the_time_zone()
    {
        // 09:00 in Berlin is 08:00Z in November.
        var f = Function("0 9 * * *", lastScheduleTime: At(8, 0, day: 22), zone: "Europe/Berlin");

        Assert.That(Decide(f, At(7, 59)).Action, Is.EqualTo(ScheduleAction.None));
        Assert.That(Decide(f, At(8, 0)), Is.EqualTo(new ScheduleDecision(ScheduleAction.Run, At(8, 0), At(8, 0, day: 24))));
    }

    [Test]
    public void The_reconciler_status_patch_carries_no_schedule_fields()
    {
        var status = new GpuFunctionStatus
        {
            ReadyReplicas = 1,
            LastScheduleTime = At(10, 0).UtcDateTime,
            LastScheduleResult = new ScheduleResult { ScheduleTime = At(10, 0).UtcDateTime, Outcome = "Pending" },
        };

        var body = KubernetesJson.Serialize(new { status = ScheduleRules.WithoutScheduleFields(status) });

        Assert.That(body, Does.Not.Contain("lastSchedule"), "a merge patch that omits them leaves the schedule loop's values alone");
        Assert.That(body, Does.Contain("\"readyReplicas\":1"));
        Assert.That(ScheduleRules.WithoutScheduleFields(null), Is.Null);
    }

    [Test]
    public void The_claim_is_conditional_on_the_resourceVersion_and_replaces_the_whole_previous_result()
    {
        var body = KubernetesScheduleStore.PatchBody("42", At(10, 1),
            new ScheduleResult { ScheduleTime = At(10, 1).UtcDateTime, Outcome = "Pending", StartTime = At(10, 1, 0).UtcDateTime });

        Assert.That(body, Does.Contain("\"metadata\":{\"resourceVersion\":\"42\"}"));
        Assert.That(body, Does.Contain("\"lastScheduleTime\":\"2026-11-23T10:01:00Z\""));
        Assert.That(body, Does.Contain("\"statusCode\":null").And.Contain("\"message\":null").And.Contain("\"finishTime\":null"),
            "nulls remove the last tick's answer");
    }
}
