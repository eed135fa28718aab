using Prometheus;

namespace Pilotlight.ControllerRuntime;

/// <summary>
/// The controller runtime's Prometheus metrics, named and bucketed as controller-runtime's
/// (<c>workqueue_*</c>, <c>controller_runtime_*</c>) so dashboards made for Go operators apply. Labels
/// are the controller (= work queue) and resource names and a small set of outcomes: never object names.
/// </summary>
public sealed class ControllerMetrics
{
    // controller-runtime's reconcile_time_seconds buckets (pkg/internal/controller/metrics).
    private static readonly double[] ReconcileBuckets =
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
        1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
    ];

    /// <summary>Metrics registered in <paramref name="registry"/> (the default registry when null).</summary>
    public ControllerMetrics(CollectorRegistry? registry = null)
    {
        var factory = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry);
        ReconcileTotal = factory.CreateCounter(
            "controller_runtime_reconcile_total", "Total number of reconciliations per controller, by result (success, error, requeue_after).",
            "controller", "result");
        ReconcileErrors = factory.CreateCounter(
            "controller_runtime_reconcile_errors_total", "Total number of reconciliation errors per controller.", "controller");
        ReconcileTime = factory.CreateHistogram(
            "controller_runtime_reconcile_time_seconds", "Length of time per reconciliation per controller.",
            new HistogramConfiguration { LabelNames = ["controller"], Buckets = ReconcileBuckets });
        MaxConcurrentReconciles = factory.CreateGauge(
            "controller_runtime_max_concurrent_reconciles", "Maximum number of concurrent reconciles per controller.", "controller");
        ActiveWorkers = factory.CreateGauge(
            "controller_runtime_active_workers", "Number of currently used workers per controller.", "controller");

        // client-go's workqueue buckets: 10ns to 1000s, a decade apart.
        var durations = Histogram.ExponentialBuckets(10e-9, 10, 12);
        WorkQueueDepth = factory.CreateGauge("workqueue_depth", "Current depth of workqueue.", "name");
        WorkQueueAdds = factory.CreateCounter("workqueue_adds_total", "Total number of adds handled by workqueue.", "name");
        WorkQueueQueueDuration = factory.CreateHistogram(
            "workqueue_queue_duration_seconds", "How long in seconds an item stays in workqueue before being requested.",
            new HistogramConfiguration { LabelNames = ["name"], Buckets = durations });
        WorkQueueWorkDuration = factory.CreateHistogram(
            "workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes.",
            new HistogramConfiguration { LabelNames = ["name"], Buckets = durations });
        WorkQueueRetries = factory.CreateCounter("workqueue_retries_total", "Total number of retries handled by workqueue.", "name");
        WorkQueueUnfinishedWork = factory.CreateGauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. "
            + "Large values indicate stuck threads.", "name");
        WorkQueueLongestRunningProcessor = factory.CreateGauge(
            "workqueue_longest_running_processor_seconds", "How many seconds has the longest running processor for workqueue been running.", "name");

        WatchRestarts = factory.CreateCounter(
            "pilotlight_controller_watch_restarts_total", "Watches re-established by a relist, by resource and reason (gone, error).",
            "resource", "reason");
        Leader = factory.CreateGauge(
            "pilotlight_controller_leader", "1 while this instance holds the leader lease.");
    }

    /// <summary>Reconciles by controller and result (<c>success</c>, <c>error</c>, <c>requeue_after</c>).</summary>
    public Counter ReconcileTotal { get; }

    /// <summary>Reconciles that threw.</summary>
    public Counter ReconcileErrors { get; }

    /// <summary>Reconcile duration.</summary>
    public Histogram ReconcileTime { get; }

    /// <summary>Workers of each controller.</summary>
    public Gauge MaxConcurrentReconciles { get; }

    /// <summary>Workers of each controller reconciling right now.</summary>
    public Gauge ActiveWorkers { get; }

    /// <summary>Keys waiting in each work queue (not counting delayed or in-flight ones).</summary>
    public Gauge WorkQueueDepth { get; }

    /// <summary>Keys added to each work queue (adds of a key already waiting are not counted).</summary>
    public Counter WorkQueueAdds { get; }

    /// <summary>Time from a key's add to its take.</summary>
    public Histogram WorkQueueQueueDuration { get; }

    /// <summary>Time from a key's take to its done.</summary>
    public Histogram WorkQueueWorkDuration { get; }

    /// <summary>Rate-limited (back-off) adds.</summary>
    public Counter WorkQueueRetries { get; }

    /// <summary>Seconds of work in flight not yet observed in <see cref="WorkQueueWorkDuration"/>.</summary>
    public Gauge WorkQueueUnfinishedWork { get; }

    /// <summary>How long the longest in-flight key has been processed.</summary>
    public Gauge WorkQueueLongestRunningProcessor { get; }

    /// <summary>Relists after 410 Gone or a failed watch.</summary>
    public Counter WatchRestarts { get; }

    /// <summary>Leadership.</summary>
    public Gauge Leader { get; }
}
