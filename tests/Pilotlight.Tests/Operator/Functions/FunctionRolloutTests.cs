using k8s.Models;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Operator.Functions;

public sealed class FunctionRolloutTests
{
    private static int serial;

    private static V1Pod Pod(string hash, bool ready, string? phase = "Running") => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = $"p{++serial}",
            CreationTimestamp = DateTime.UnixEpoch.AddSeconds(serial),
            Labels = new Dictionary<string, string> { [FunctionLabels.TemplateHash] = hash },
        },
        Status = new V1PodStatus
        {
            Phase = phase,
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
        },
    };

    [Test]
    public void CreatesUpToTheDesiredCount()
    {
        Assert.That(FunctionRollout.Plan([], 3, "new"), Is.EqualTo(new RolloutPlan(3, [])).Using<RolloutPlan>(Same));
        Assert.That(FunctionRollout.Plan([Pod("new", true)], 3, "new").Create, Is.EqualTo(2));
    }

    [Test]
    public void ScalesDownNotReadyPodsFirst()
    {
        var ready = Pod("new", true);
        var starting = Pod("new", false);

        var plan = FunctionRollout.Plan([ready, starting], 1, "new");

        Assert.That(plan.Delete, Is.EqualTo(new[] { starting }));
        Assert.That(plan.Create, Is.Zero);
    }

    [Test]
    public void RollsOutOnePodAboveDesiredAndNeverBelowTheReadyCount()
    {
        // Simulates the rollout of two ready pods to a new template, step by step,
        // with new pods turning ready between reconciles.
        var pods = new List<V1Pod> { Pod("old", true), Pod("old", true) };
        for (var step = 0; step < 10 && pods.Any(p => p.Metadata.Labels[FunctionLabels.TemplateHash] == "old"); step++)
        {
            var plan = FunctionRollout.Plan(pods, 2, "new");
            pods.RemoveAll(plan.Delete.Contains);
            Assert.That(pods.Count(PodReadiness.IsReady), Is.GreaterThanOrEqualTo(2), $"ready count dropped at step {step}");
            for (var i = 0; i < plan.Create; i++)
            {
                pods.Add(Pod("new", false));
            }

            Assert.That(pods, Has.Count.LessThanOrEqualTo(2 + RolloutBudget.Default.MaxSurge), $"surged past one at step {step}");

            // Pods become ready before the next reconcile.
            pods = pods.Select(p => PodReadiness.IsReady(p) ? p : Pod(p.Metadata.Labels[FunctionLabels.TemplateHash], true)).ToList();
        }

        Assert.That(pods.Select(p => p.Metadata.Labels[FunctionLabels.TemplateHash]), Is.EqualTo(new[] { "new", "new" }));
    }

    [Test]
    public void OldPodsThatServeNothingGoAtOnce()
    {
        var broken = Pod("old", false);

        var plan = FunctionRollout.Plan([broken], 1, "new");

        Assert.That(plan.Delete, Is.EqualTo(new[] { broken }));
        Assert.That(plan.Create, Is.EqualTo(1));
    }

    [Test]
    public void FinishedPodsAreReplaced()
    {
        var failed = Pod("new", false, "Failed");

        var plan = FunctionRollout.Plan([failed], 1, "new");

        Assert.That(plan.Delete, Is.EqualTo(new[] { failed }));
        Assert.That(plan.Create, Is.EqualTo(1));
    }

    [Test]
    public void ZeroDesiredRemovesEverything()
    {
        var pods = new[] { Pod("old", true), Pod("new", true) };

        Assert.That(FunctionRollout.Plan(pods, 0, "new").Delete, Is.EquivalentTo(pods));
    }

    [Test]
    public void WithNoSurgeAPoolWithoutASpareGpuRollsOnePodAtATime()
    {
        // Three replicas on three GPUs, none spare: maxSurge 0, maxUnavailable 1. A pod holds its GPU until deleted, and
        // a new pod starts only on a GPU an old one gave back.
        const int gpus = 3;
        var pods = new List<V1Pod> { Pod("old", true), Pod("old", true), Pod("old", true) };
        var budget = RolloutBudget.For(new Pilotlight.Api.V1Alpha1.RolloutPolicy { MaxSurge = 0, MaxUnavailable = 1 }, 3);
        var steps = 0;
        for (; steps < 20 && pods.Any(p => p.Metadata.Labels[FunctionLabels.TemplateHash] == "old"); steps++)
        {
            var plan = FunctionRollout.Plan(pods, 3, "new", budget: budget);
            Assert.That(plan.Delete.Count(p => p.Metadata.Labels[FunctionLabels.TemplateHash] == "old"), Is.LessThanOrEqualTo(1), $"more than one old pod went at step {steps}");
            pods.RemoveAll(plan.Delete.Contains);
            Assert.That(pods.Count(PodReadiness.IsReady), Is.GreaterThanOrEqualTo(2), $"more than one replica unavailable at step {steps}");
            Assert.That(pods.Count + plan.Create, Is.LessThanOrEqualTo(gpus), $"a pod beyond the pool's GPUs at step {steps}");
            for (var i = 0; i < plan.Create; i++)
            {
                pods.Add(Pod("new", false));
            }

            // New pods start before the next reconcile.
            pods = pods.Select(p => PodReadiness.IsReady(p) ? p : Pod(p.Metadata.Labels[FunctionLabels.TemplateHash], true)).ToList();
        }

        Assert.That(pods.Select(p => p.Metadata.Labels[FunctionLabels.TemplateHash]), Is.EqualTo(new[] { "new", "new", "new" }));
        Assert.That(steps, Is.GreaterThanOrEqualTo(3), "one pod per step");
    }

    [Test]
    public void TheDefaultSurgeFindsNoRoomOnAFullPoolAndTakesNoReadyPodAway()
    {
        // What the default does where the pool is full: the surge pod is made (and stays Pending), no old pod goes.
        var pods = new List<V1Pod> { Pod("old", true), Pod("old", true) };

        var plan = FunctionRollout.Plan(pods, 2, "new");

        Assert.That(plan.Create, Is.EqualTo(1));
        Assert.That(plan.Delete, Is.Empty);
    }

    [Test]
    public void MaxUnavailableLetsThatManyIdleOldPodsGoAtOnceBusyOnesLast()
    {
        var busy = Pod("old", true);
        var idle = new[] { Pod("old", true), Pod("old", true), Pod("old", true) };
        var budget = RolloutBudget.For(new Pilotlight.Api.V1Alpha1.RolloutPolicy { MaxSurge = 0, MaxUnavailable = "50%" }, 4);

        var plan = FunctionRollout.Plan([busy, .. idle], 4, "new", p => p == busy ? 1 : 0, budget);

        Assert.That(budget, Is.EqualTo(new RolloutBudget(0, 2)));
        Assert.That(plan.Delete, Has.Count.EqualTo(2));
        Assert.That(plan.Delete, Does.Not.Contain(busy));
        Assert.That(plan.Create, Is.EqualTo(2));
    }

    [Test]
    public void ATerminatingOldPodCountsAsGoneNotAsReady()
    {
        // Its Ready condition lags its deletion: were it counted, a second old pod would go before the new one is ready.
        var leaving = Pod("old", true);
        leaving.Metadata.DeletionTimestamp = DateTime.UnixEpoch;
        var staying = Pod("old", true);
        var starting = Pod("new", false);
        var budget = new RolloutBudget(0, 1);

        var plan = FunctionRollout.Plan([leaving, staying, starting], 2, "new", budget: budget);

        Assert.That(plan.Delete, Is.Empty, "neither deleted again nor a second old pod taken");
        Assert.That(plan.Create, Is.Zero);
    }

    [TestCase(1, 0, 4, 1, 0)]
    [TestCase("25%", "25%", 4, 1, 1)]
    [TestCase("25%", "25%", 3, 1, 0, TestName = "Surge percentages round up, unavailable ones down")]
    [TestCase(0, "10%", 3, 0, 1, TestName = "Both coming to zero leaves one unavailable")]
    [TestCase("100%", 0, 3, 3, 0)]
    public void PercentagesResolveAsADeploymentsDo(object surge, object unavailable, int desired, int wantSurge, int wantUnavailable)
    {
        static IntOrString Value(object v) => v is int i ? i : (string)v;
        var budget = RolloutBudget.For(new Pilotlight.Api.V1Alpha1.RolloutPolicy { MaxSurge = Value(surge), MaxUnavailable = Value(unavailable) }, desired);

        Assert.That(budget, Is.EqualTo(new RolloutBudget(wantSurge, wantUnavailable)));
    }

    [TestCase("2", null)]
    [TestCase("30%", null)]
    [TestCase("-1", "neither a whole number")]
    [TestCase("half", "neither a whole number")]
    [TestCase("1.5%", "neither a whole number")]
    public void ValuesThatAreNeitherCountsNorPercentagesAreProblems(string value, string? problem)
    {
        var found = RolloutBudget.Problem(value);

        Assert.That(found, problem is null ? Is.Null : Does.Contain(problem));
    }

    private static bool Same(RolloutPlan a, RolloutPlan b) => a.Create == b.Create && a.Delete.SequenceEqual(b.Delete);
}

/// <summary>Scale-down never picks a pod with a request in flight while the desired count covers the busy pods.</summary>
public sealed class FunctionRolloutLoadTests
{
    private static V1Pod Pod(string name, bool ready = true, int ageSeconds = 100) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            CreationTimestamp = DateTime.UnixEpoch.AddSeconds(1000 - ageSeconds),
            Labels = new Dictionary<string, string> { [FunctionLabels.TemplateHash] = "h" },
        },
        Status = new V1PodStatus
        {
            Phase = "Running",
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
        },
    };

    // pods: name:load[:notready][:age], desired, the pods expected to go.
    [TestCase("a:0 b:1 c:0", 1, "a c")]
    [TestCase("a:1 b:1 c:0", 2, "c")]
    [TestCase("a:3 b:0", 1, "b")]
    [TestCase("a:1 b:0:notready c:0", 2, "b")]
    [TestCase("a:0:notready b:2 c:1", 2, "a")]
    [TestCase("a:1:notready b:0", 1, "b")] // a starting pod the gateway already sends to (probed ready) is busy too
    [TestCase("a:0:young b:0:old c:5", 1, "a b")]
    [TestCase("a:2 b:1 c:4", 3, "")]
    [TestCase("a:2 b:1 c:4", 0, "a b c")] // zero only when the autoscaler says so, which it never does with requests in flight
    public void Busy_pods_are_never_chosen_while_desired_covers_them(string pods, int desired, string expected)
    {
        var all = pods.Split(' ').Select(spec =>
        {
            var parts = spec.Split(':');
            var age = parts.Contains("young") ? 10 : parts.Contains("old") ? 500 : 100;
            return (Pod: Pod(parts[0], ready: !parts.Contains("notready"), ageSeconds: age), Load: int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
        }).ToList();
        var load = all.ToDictionary(p => p.Pod.Metadata.Name, p => p.Load);

        var plan = FunctionRollout.Plan(all.Select(p => p.Pod).ToList(), desired, "h", p => load[p.Metadata.Name]);

        Assert.That(plan.Delete.Select(p => p.Metadata.Name).Order(), Is.EqualTo(expected.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order()));
        var busy = all.Count(p => p.Load > 0);
        if (desired >= busy)
        {
            Assert.That(plan.Delete.Where(p => load[p.Metadata.Name] > 0), Is.Empty, "a busy pod was chosen");
        }
    }

    [Test]
    public void A_busy_pod_of_an_old_template_stays_while_an_idle_one_can_go()
    {
        var busyOld = Pod("old-busy", ageSeconds: 500);
        var idleOld = Pod("old-idle", ageSeconds: 400);
        busyOld.Metadata.Labels[FunctionLabels.TemplateHash] = "old";
        idleOld.Metadata.Labels[FunctionLabels.TemplateHash] = "old";
        var fresh = Pod("new");
        var load = new Dictionary<string, int> { ["old-busy"] = 1, ["old-idle"] = 0, ["new"] = 0 };

        var plan = FunctionRollout.Plan([busyOld, idleOld, fresh], 2, "h", p => load[p.Metadata.Name]);

        Assert.That(plan.Delete.Select(p => p.Metadata.Name), Is.EqualTo(new[] { "old-idle" }));
    }
}
