using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Prewarm;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Tests.Operator.Prewarm;

public class WarmPoolTests
{
    private const string Hash = "current";
    private static readonly DateTime T0 = new(2026, 11, 23, 8, 0, 0, DateTimeKind.Utc);

    private static V1Pod Pod(string name, string role, bool ready = true, string hash = Hash, int age = 0) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            CreationTimestamp = T0.AddSeconds(-age),
            Labels = new Dictionary<string, string> { [FunctionLabels.TemplateHash] = hash, [FunctionLabels.Role] = role },
        },
        Status = new V1PodStatus
        {
            Phase = "Running",
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
        },
    };

    private static GpuFunctionSpec Spec(PrewarmPolicy? prewarm, int maxReplicas = 10, InvocationSchedule? schedule = null) => new()
    {
        Image = "m:1",
        Prewarm = prewarm,
        Scaling = new ScalingPolicy { MaxReplicas = maxReplicas },
        Schedule = schedule,
    };

    [Test]
    public void Missing_serving_replicas_claim_the_oldest_ready_warm_pods_and_the_pool_is_refilled()
    {
        var warm = new[] { Pod("w-new", "warm", age: 1), Pod("w-old", "warm", age: 30), Pod("w-mid", "warm", age: 10) };

        var plan = WarmPool.Plan([], warm, desiredServing: 2, target: 2, Hash, []);

        Assert.That(plan.Claim.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "w-old", "w-mid" }));
        Assert.That(plan.Create, Is.EqualTo(1), "two claimed from three leaves one; the target is two");
        Assert.That(plan.Delete, Is.Empty);
    }

    [Test]
    public void A_warm_pod_the_gateways_report_busy_is_claimed_before_older_idle_ones()
    {
        var warm = new[] { Pod("w-old", "warm", age: 30), Pod("w-busy", "warm", age: 1), Pod("w-mid", "warm", age: 10) };

        var plan = WarmPool.Plan([], warm, desiredServing: 1, target: 2, Hash, [], p => p.Metadata.Name == "w-busy" ? 1 : 0);

        Assert.That(plan.Claim.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "w-busy" }), "the pod already serving is the one to relabel");
        Assert.That(plan.Delete, Is.Empty);
        Assert.That(plan.Create, Is.Zero);
    }

    [Test]
    public void A_busy_warm_pod_is_never_deleted_as_surplus_nor_as_an_old_template()
    {
        var warm = new[] { Pod("busy-new", "warm", age: 1), Pod("idle-old", "warm", age: 30), Pod("busy-stale", "warm", hash: "old", age: 99), Pod("idle-stale", "warm", hash: "old", age: 98) };
        int Load(V1Pod p) => p.Metadata.Name.StartsWith("busy", StringComparison.Ordinal) ? 1 : 0;

        var plan = WarmPool.Plan([], warm, desiredServing: 0, target: 0, Hash, [], Load);

        Assert.That(plan.Delete.Select(p => p.Metadata.Name), Is.EquivalentTo(new[] { "idle-old", "idle-stale" }),
            "surplus and stale go only when idle; the busy ones finish what they serve");
        Assert.That(plan.Claim, Is.Empty);

        var claim = WarmPool.Plan([], warm, desiredServing: 2, target: 0, Hash, [], Load);
        Assert.That(claim.Claim.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "busy-new", "idle-old" }), "a stale pod is never claimed, busy or not");
    }

    [Test]
    public void A_busy_serving_pod_is_never_demoted()
    {
        var busy = Pod("s-busy", "serving");
        var idle = Pod("s-idle", "serving");

        var plan = WarmPool.Plan([busy, idle], [], desiredServing: 0, target: 2, Hash, [busy, idle], p => p == busy ? 1 : 0);

        Assert.That(plan.Demote.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "s-idle" }));
        Assert.That(plan.Create, Is.EqualTo(1));
    }

    [Test]
    public void Only_ready_warm_pods_of_the_current_template_are_claimed_and_stale_ones_go()
    {
        var warm = new[] { Pod("starting", "warm", ready: false), Pod("stale", "warm", hash: "old", age: 99) };

        var plan = WarmPool.Plan([], warm, desiredServing: 1, target: 1, Hash, []);

        Assert.That(plan.Claim, Is.Empty, "a starting warm pod would not serve sooner than a new one");
        Assert.That(plan.Delete.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "stale" }));
        Assert.That(plan.Create, Is.Zero, "the starting one fills the pool");
    }

    [Test]
    public void No_claim_when_serving_replicas_suffice()
    {
        var plan = WarmPool.Plan([Pod("s", "serving")], [Pod("w", "warm")], desiredServing: 1, target: 1, Hash, []);
        Assert.That((plan.Claim.Count, plan.Demote.Count, plan.Create, plan.Delete.Count), Is.EqualTo((0, 0, 0, 0)));
    }

    [Test]
    public void A_ready_pod_leaving_on_scale_down_becomes_warm_while_the_pool_is_short()
    {
        var leaving = Pod("s2", "serving");
        var plan = WarmPool.Plan([Pod("s1", "serving"), leaving], [], desiredServing: 1, target: 1, Hash, [leaving]);

        Assert.That(plan.Demote, Is.EqualTo(new[] { leaving }));
        Assert.That(plan.Create, Is.Zero);
    }

    [Test]
    public void A_surplus_goes_not_ready_first_then_newest()
    {
        var warm = new[] { Pod("ready-old", "warm", age: 50), Pod("ready-new", "warm", age: 1), Pod("starting", "warm", ready: false) };

        var plan = WarmPool.Plan([], warm, desiredServing: 0, target: 1, Hash, []);

        Assert.That(plan.Delete.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "starting", "ready-new" }));
    }

    [Test]
    public void Nothing_is_warm_for_a_function_that_asks_for_none()
    {
        var target = WarmPool.Target(Spec(null), 0, T0, lastRequest: T0.AddSeconds(-5), null);
        Assert.That(target.Count, Is.Zero, "recent traffic keeps pods warm only for functions with a prewarm block");
        Assert.That(target.NextChange, Is.Null);
    }

    [Test]
    public void Recent_traffic_keeps_one_warm_pod_for_keepWarmFor()
    {
        var spec = Spec(new PrewarmPolicy { KeepWarmFor = "10m" });

        var recent = WarmPool.Target(spec, 0, T0, lastRequest: T0.AddMinutes(-4), null);
        Assert.That((recent.Count, recent.Reason), Is.EqualTo((1, "RecentTraffic")));
        Assert.That(recent.NextChange, Is.EqualTo(new DateTimeOffset(T0.AddMinutes(6))));

        var old = WarmPool.Target(spec, 0, T0, lastRequest: T0.AddMinutes(-11), null);
        Assert.That(old.Count, Is.Zero);

        var off = WarmPool.Target(Spec(new PrewarmPolicy { KeepWarmFor = "0s" }), 0, T0, T0.AddSeconds(-1), null);
        Assert.That(off.Count, Is.Zero);
    }

    [Test]
    public void Warm_pods_are_bounded_by_maxReplicas_beside_the_serving_ones()
    {
        var target = WarmPool.Target(Spec(new PrewarmPolicy { WarmReplicas = 3 }, maxReplicas: 4), desiredServing: 2, T0, null, null);
        Assert.That((target.Count, target.Reason), Is.EqualTo((2, "Configured")));
    }

    [Test]
    public void A_schedule_warms_from_leadTime_before_each_tick_until_a_minute_after()
    {
        Assert.That(FunctionSchedule.TryCreate(new InvocationSchedule { Cron = "0 9 * * *" }, out var cron, out _), Is.True);
        var spec = Spec(new PrewarmPolicy { LeadTime = "2m", KeepWarmFor = "0s" }, schedule: new InvocationSchedule { Cron = "0 9 * * *" });
        WarmTarget At(int hour, int minute, int second = 0) =>
            WarmPool.Target(spec, 0, new DateTimeOffset(T0.Date.AddHours(hour).AddMinutes(minute).AddSeconds(second)), null, cron);

        var before = At(8, 57);
        Assert.That(before.Count, Is.Zero);
        Assert.That(before.NextChange, Is.EqualTo(new DateTimeOffset(T0.Date.AddHours(8).AddMinutes(58))), "wake when the lead window opens");
        Assert.That((At(8, 58, 30).Count, At(8, 58, 30).Reason), Is.EqualTo((1, "Schedule")));
        Assert.That(At(9, 0, 30).Count, Is.EqualTo(1), "the tick's own request finds it");
        Assert.That(At(9, 1, 30).Count, Is.Zero);
    }

    [Test]
    public void Bad_schedules_and_durations_are_problems_not_exceptions()
    {
        var spec = new GpuFunctionSpec
        {
            Image = "m:1",
            Prewarm = new PrewarmPolicy { ReservedReplicas = 1 },
            Scaling = new ScalingPolicy { MaxReplicas = 5 },
            Schedule = new InvocationSchedule { Cron = "61 * * * *", TimeZone = "Mars/Olympus_Mons" },
        };

        var (schedule, problems) = PrewarmSpec.Validate(spec);

        Assert.That(schedule, Is.Null);
        Assert.That(problems, Has.Some.Contains("reservedReplicas reserves GPUs"));
        Assert.That(problems, Has.Some.Contains("Mars/Olympus_Mons"));
        Assert.That(problems, Has.Some.StartsWith("schedule.cron"));
    }
}
