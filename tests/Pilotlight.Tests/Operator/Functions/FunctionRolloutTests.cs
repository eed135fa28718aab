using k8s.Models;
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
            Assert.That(pods.Count(FunctionStatusBuilder.IsReady), Is.GreaterThanOrEqualTo(2), $"ready count dropped at step {step}");
            for (var i = 0; i < plan.Create; i++)
            {
                pods.Add(Pod("new", false));
            }

            Assert.That(pods, Has.Count.LessThanOrEqualTo(2 + FunctionRollout.Surge), $"surged past one at step {step}");

            // Pods become ready before the next reconcile.
            pods = pods.Select(p => FunctionStatusBuilder.IsReady(p) ? p : Pod(p.Metadata.Labels[FunctionLabels.TemplateHash], true)).ToList();
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

    private static bool Same(RolloutPlan a, RolloutPlan b) => a.Create == b.Create && a.Delete.SequenceEqual(b.Delete);
}
