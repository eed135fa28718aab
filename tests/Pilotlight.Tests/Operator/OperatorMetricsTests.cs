using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Prometheus;

namespace Pilotlight.Tests.Operator;

/// <summary>The leader-only series: exported while the replica leads, gone as soon as it does not.</summary>
public class OperatorMetricsTests
{
    private static async Task<string> ScrapeAsync(CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    [Test]
    public async Task Leader_only_series_are_exported_while_leading_and_dropped_after()
    {
        var registry = Metrics.NewCustomRegistry();
        var metrics = new OperatorMetrics(registry);
        var key = new ObjectKey("team-a", "llm");
        var seconds = 0.0;
        metrics.UseLiveGpuSeconds(_ => [(key, seconds), (new ObjectKey("team-a", "never-ran"), 0)]);

        using var stop = new CancellationTokenSource();
        var scope = metrics.LeaderScope().RunAsync(new ControllerMetrics(Metrics.NewCustomRegistry()), stop.Token);
        Assert.That(metrics.Leading, Is.True);
        Assert.That(await ScrapeAsync(registry), Does.Not.Contain("pilotlight_function_gpu_seconds_total{"), "nothing billed yet: no series");
        seconds = 42.5;
        metrics.DesiredReplicas.WithLabels("team-a", "llm").Set(3);
        metrics.DemandUnknown.Set(1);
        metrics.WarmClaims.WithLabels("team-a", "llm").Inc();

        var leading = await ScrapeAsync(registry);
        Assert.That(leading, Does.Contain("pilotlight_function_gpu_seconds_total{namespace=\"team-a\",function=\"llm\"} 42.5"));
        Assert.That(leading, Does.Not.Contain("function=\"never-ran\""), "a function never billed has no series");
        Assert.That(leading, Does.Contain("pilotlight_autoscaler_desired_replicas{namespace=\"team-a\",function=\"llm\"} 3"));
        Assert.That(leading, Does.Contain("\npilotlight_autoscaler_demand_unknown 1"));

        await stop.CancelAsync();
        await scope;
        Assert.That(metrics.Leading, Is.False);

        // A reconcile still in flight when leadership ended writes once more: not exported either.
        metrics.DesiredReplicas.WithLabels("team-a", "llm").Set(4);
        var after = await ScrapeAsync(registry);
        Assert.That(after, Does.Not.Contain("pilotlight_function_gpu_seconds_total{"));
        Assert.That(after, Does.Not.Contain("pilotlight_autoscaler_desired_replicas{"));
        Assert.That(after, Does.Not.Contain("\npilotlight_autoscaler_demand_unknown "), "an unlabelled one too");
        Assert.That(after, Does.Contain("pilotlight_warm_claims_total{namespace=\"team-a\",function=\"llm\"} 1"),
            "counts of what happened stay with the replica that counted them");

        // Leading again: what it sets is exported again, the unlabelled gauge too.
        using var again = new CancellationTokenSource();
        var second = metrics.LeaderScope().RunAsync(new ControllerMetrics(Metrics.NewCustomRegistry()), again.Token);
        metrics.DesiredReplicas.WithLabels("team-a", "llm").Set(2);
        metrics.DemandUnknown.Set(1);
        var leadingAgain = await ScrapeAsync(registry);
        Assert.That(leadingAgain, Does.Contain("pilotlight_autoscaler_desired_replicas{namespace=\"team-a\",function=\"llm\"} 2"));
        Assert.That(leadingAgain, Does.Contain("\npilotlight_autoscaler_demand_unknown 1"));
        await again.CancelAsync();
        await second;
    }

    [Test]
    public async Task Conditions_of_functions_and_sandboxes_follow_the_cache_and_only_the_leader_exports_them()
    {
        var registry = Metrics.NewCustomRegistry();
        var metrics = new OperatorMetrics(registry);
        static k8s.Models.V1Condition Condition(string type, string status, string reason) => new() { Type = type, Status = status, Reason = reason };
        List<(ObjectKey, IReadOnlyList<k8s.Models.V1Condition>?)> functions =
        [
            (new ObjectKey("team-a", "llm"), [Condition("Ready", "False", "Unschedulable"), Condition("Stalled", "True", "Unschedulable")]),
            (new ObjectKey("team-a", "idle"), [Condition("Ready", "True", "ScaledToZero"), Condition("Stalled", "False", "PodsReady")]),
            (new ObjectKey("team-b", "idle"), [Condition("Ready", "True", "ScaledToZero"), Condition("Stalled", "False", "PodsReady")]),
            (new ObjectKey("team-a", "new"), null),
        ];
        List<(ObjectKey, IReadOnlyList<k8s.Models.V1Condition>?)> sandboxes =
        [
            (new ObjectKey("team-b", "box"), [Condition("Ready", "True", "Running")]),
            (new ObjectKey("team-b", "failed"), [Condition("Ready", "False", "PodFailed")]),
        ];
        metrics.UseConditions(() => functions, () => sandboxes);

        var idle = await ScrapeAsync(registry);
        Assert.That(idle, Does.Not.Contain("pilotlight_function_condition{").And.Not.Contain("pilotlight_functions_by_condition{"), "not leading: nothing");

        using var stop = new CancellationTokenSource();
        var scope = metrics.LeaderScope().RunAsync(new ControllerMetrics(Metrics.NewCustomRegistry()), stop.Token);
        var stalled = await ScrapeAsync(registry);
        Assert.That(stalled, Does.Contain(
            "pilotlight_function_condition{namespace=\"team-a\",function=\"llm\",condition=\"Stalled\",status=\"True\",reason=\"Unschedulable\"} 1"));
        Assert.That(stalled, Does.Contain(
            "pilotlight_sandbox_condition{namespace=\"team-b\",sandbox=\"failed\",condition=\"Ready\",status=\"False\",reason=\"PodFailed\"} 1"));
        Assert.That(stalled, Does.Not.Contain("function=\"idle\"").And.Not.Contain("sandbox=\"box\""), "a healthy object has no series of its own");
        Assert.That(stalled, Does.Not.Contain("function=\"new\""), "a function with no status yet has no series");
        // Every object is counted, healthy or not; the counts have no per-object labels.
        Assert.That(stalled, Does.Contain("pilotlight_functions_by_condition{condition=\"Ready\",status=\"True\",reason=\"ScaledToZero\"} 2"));
        Assert.That(stalled, Does.Contain("pilotlight_functions_by_condition{condition=\"Stalled\",status=\"True\",reason=\"Unschedulable\"} 1"));
        Assert.That(stalled, Does.Contain("pilotlight_sandboxes_by_condition{condition=\"Ready\",status=\"True\",reason=\"Running\"} 1"));

        // It recovers: its series go, so an alert on Stalled=True resolves, and the counts follow; a deleted sandbox's go too.
        functions[0] = (new ObjectKey("team-a", "llm"), [Condition("Ready", "True", "Serving"), Condition("Stalled", "False", "Progressing")]);
        sandboxes.RemoveAt(1);
        var recovered = await ScrapeAsync(registry);
        Assert.That(recovered, Does.Not.Contain("pilotlight_function_condition{").And.Not.Contain("pilotlight_sandbox_condition{"));
        Assert.That(recovered, Does.Not.Contain("reason=\"Unschedulable\"").And.Not.Contain("reason=\"PodFailed\""));
        Assert.That(recovered, Does.Contain("pilotlight_functions_by_condition{condition=\"Stalled\",status=\"False\",reason=\"Progressing\"} 1"));
        Assert.That(recovered, Does.Contain("pilotlight_functions_by_condition{condition=\"Ready\",status=\"True\",reason=\"Serving\"} 1"));

        await stop.CancelAsync();
        await scope;
        var ex = await ScrapeAsync(registry);
        Assert.That(ex, Does.Not.Contain("pilotlight_functions_by_condition{").And.Not.Contain("pilotlight_sandboxes_by_condition{"), "an ex-leader drops them");
    }
}
