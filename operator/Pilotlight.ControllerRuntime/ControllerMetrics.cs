using Prometheus;

namespace Pilotlight.ControllerRuntime;

/// <summary>
/// The controller runtime's Prometheus metrics. Labels are the controller and
/// resource names and a small set of outcomes: never object names.
/// </summary>
public sealed class ControllerMetrics
{
    /// <summary>Metrics registered in <paramref name="registry"/> (the default registry when null).</summary>
    public ControllerMetrics(CollectorRegistry? registry = null)
    {
        var factory = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry);
        Reconciles = factory.CreateCounter(
            "pilotlight_controller_reconciles_total", "Reconciles run, by controller and result (success, error, requeue, deleted).",
            "controller", "result");
        Errors = factory.CreateCounter(
            "pilotlight_controller_reconcile_errors_total", "Reconciles that threw.", "controller");
        Duration = factory.CreateHistogram(
            "pilotlight_controller_reconcile_duration_seconds", "Time spent in one reconcile.",
            new HistogramConfiguration
            {
                LabelNames = ["controller"],
                Buckets = Histogram.ExponentialBuckets(0.001, 2, 14),
            });
        QueueDepth = factory.CreateGauge(
            "pilotlight_controller_queue_depth", "Keys waiting to be reconciled.", "controller");
        WatchRestarts = factory.CreateCounter(
            "pilotlight_controller_watch_restarts_total", "Watches re-established by a relist, by resource and reason (gone, error).",
            "resource", "reason");
        Leader = factory.CreateGauge(
            "pilotlight_controller_leader", "1 while this instance holds the leader lease.");
    }

    /// <summary>Reconciles by controller and result.</summary>
    public Counter Reconciles { get; }

    /// <summary>Reconciles that threw.</summary>
    public Counter Errors { get; }

    /// <summary>Reconcile duration.</summary>
    public Histogram Duration { get; }

    /// <summary>Queue depth.</summary>
    public Gauge QueueDepth { get; }

    /// <summary>Relists after 410 Gone or a failed watch.</summary>
    public Counter WatchRestarts { get; }

    /// <summary>Leadership.</summary>
    public Gauge Leader { get; }
}
