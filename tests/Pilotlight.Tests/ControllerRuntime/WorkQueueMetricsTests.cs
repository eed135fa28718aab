using Microsoft.Extensions.Time.Testing;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Tests.ControllerRuntime;

/// <summary>The work queue's controller-runtime metrics, on a registry of their own and a fake clock.</summary>
public class WorkQueueMetricsTests
{
    private static readonly Backoff NoJitter = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), Jitter: 0);

    [Test]
    public async Task Depth_adds_queue_and_work_durations_and_retries_move()
    {
        var time = new FakeTimeProvider();
        var metrics = new ControllerMetrics(Metrics.NewCustomRegistry());
        using var queue = new WorkQueue<string>(time, NoJitter, metrics, "q");

        queue.Add("a");
        queue.Add("a");
        queue.Add("b");
        Assert.That(metrics.WorkQueueDepth.WithLabels("q").Value, Is.EqualTo(2));
        Assert.That(metrics.WorkQueueAdds.WithLabels("q").Value, Is.EqualTo(2), "a duplicate add is not counted");

        time.Advance(TimeSpan.FromSeconds(3));
        var key = await queue.TakeAsync(CancellationToken.None);
        Assert.That(metrics.WorkQueueDepth.WithLabels("q").Value, Is.EqualTo(1));
        var waited = metrics.WorkQueueQueueDuration.WithLabels("q");
        Assert.That(waited.Count, Is.EqualTo(1));
        Assert.That(waited.Sum, Is.EqualTo(3).Within(0.001), "add to take on the injected clock");

        time.Advance(TimeSpan.FromSeconds(2));
        queue.Done(key);
        var worked = metrics.WorkQueueWorkDuration.WithLabels("q");
        Assert.That(worked.Count, Is.EqualTo(1));
        Assert.That(worked.Sum, Is.EqualTo(2).Within(0.001), "take to done on the injected clock");

        queue.AddRateLimited("a");
        Assert.That(metrics.WorkQueueRetries.WithLabels("q").Value, Is.EqualTo(1));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(metrics.WorkQueueAdds.WithLabels("q").Value, Is.EqualTo(3), "the delayed add counts when it lands");
        Assert.That(metrics.WorkQueueDepth.WithLabels("q").Value, Is.EqualTo(2));
    }

    [Test]
    public async Task Unfinished_work_and_the_longest_processor_follow_keys_in_flight()
    {
        var time = new FakeTimeProvider();
        var metrics = new ControllerMetrics(Metrics.NewCustomRegistry());
        using var queue = new WorkQueue<string>(time, NoJitter, metrics, "q");
        queue.Add("a");
        queue.Add("b");
        var a = await queue.TakeAsync(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(4));
        var b = await queue.TakeAsync(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(1)); // the half-second refresh runs on the fake clock

        Assert.That(metrics.WorkQueueUnfinishedWork.WithLabels("q").Value, Is.EqualTo(6).Within(0.001), "5 s + 1 s in flight");
        Assert.That(metrics.WorkQueueLongestRunningProcessor.WithLabels("q").Value, Is.EqualTo(5).Within(0.001));

        queue.Done(a);
        queue.Done(b);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(metrics.WorkQueueUnfinishedWork.WithLabels("q").Value, Is.Zero);
        Assert.That(metrics.WorkQueueLongestRunningProcessor.WithLabels("q").Value, Is.Zero);
    }

    [Test]
    public void The_old_pilotlight_controller_series_are_gone_and_controller_runtime_names_are_exported()
    {
        var registry = Metrics.NewCustomRegistry();
        var metrics = new ControllerMetrics(registry);
        metrics.ReconcileTotal.WithLabels("c", "success").Inc();
        metrics.WorkQueueDepth.WithLabels("c").Set(1);
        using var text = new MemoryStream();
        registry.CollectAndExportAsTextAsync(text).GetAwaiter().GetResult();
        var exported = System.Text.Encoding.UTF8.GetString(text.ToArray());

        Assert.That(exported, Does.Contain("controller_runtime_reconcile_total{controller=\"c\",result=\"success\"} 1"));
        Assert.That(exported, Does.Contain("workqueue_depth{name=\"c\"} 1"));
        Assert.That(exported, Does.Not.Contain("pilotlight_controller_reconciles_total").And.Not.Contain("pilotlight_controller_queue_depth"));
    }
}
