using Prometheus;

namespace Pilotlight.Gateway;

/// <summary>Gateway metrics, labelled by namespace and function, and by a few fixed values where a third label says why.</summary>
public sealed class GatewayMetrics
{
    /// <summary>Metrics in <paramref name="registry"/> (the default one when null).</summary>
    public GatewayMetrics(CollectorRegistry? registry = null)
    {
        var f = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry);
        Requests = f.CreateCounter("pilotlight_gateway_requests_total", "Invocations by function and status code class.",
            "namespace", "function", "code");
        Latency = f.CreateHistogram("pilotlight_gateway_request_duration_seconds", "Invocation latency at the gateway, cold starts included.",
            new HistogramConfiguration { LabelNames = ["namespace", "function"], Buckets = Histogram.ExponentialBuckets(0.005, 2, 16) });
        ColdStartWait = f.CreateHistogram("pilotlight_gateway_cold_start_wait_seconds", "Time a request was held waiting for a pod to become ready.",
            new HistogramConfiguration { LabelNames = ["namespace", "function"], Buckets = Histogram.ExponentialBuckets(0.05, 2, 14) });
        Held = f.CreateGauge("pilotlight_gateway_queue_depth", "Requests held waiting for a pod.", "namespace", "function");
        HeldLimit = f.CreateGauge("pilotlight_gateway_queue_limit",
            "Requests a gateway holds per function at most (--queue-limit); one more is answered 503. Alert on queue_depth near it.");
        Retries = f.CreateCounter("pilotlight_gateway_retries_total",
            "Attempts sent again, by the failure of the one before: refused (nothing processed), connection (reset before a response), server_error (5xx).",
            "namespace", "function", "reason");
        RetriesGivenUp = f.CreateCounter("pilotlight_gateway_retries_given_up_total",
            "Failed attempts answered without a retry although spec.retries is set: exhausted, body_not_replayable, no_retry_header.",
            "namespace", "function", "reason");
        Starts = f.CreateCounter("pilotlight_gateway_starts_total",
            "Requests by the start they waited for: ready (a serving pod), warm (a standby claimed from the pool), cold (a new pod).",
            "namespace", "function", "start");
        WarmRoutes = f.CreateCounter("pilotlight_gateway_warm_routes_total",
            "Requests sent to a warm standby pod from the gateway's cache, before the operator claimed it (no API call on the way).",
            "namespace", "function");
    }

    /// <summary>Requests.</summary>
    public Counter Requests { get; }

    /// <summary>Latency.</summary>
    public Histogram Latency { get; }

    /// <summary>Cold-start waits.</summary>
    public Histogram ColdStartWait { get; }

    /// <summary>Held requests.</summary>
    public Gauge Held { get; }

    /// <summary>The held-request bound per function, for alerts on a queue near it.</summary>
    public Gauge HeldLimit { get; }

    /// <summary>Retries, by the failure that caused them.</summary>
    public Counter Retries { get; }

    /// <summary>Failures not retried, by why.</summary>
    public Counter RetriesGivenUp { get; }

    /// <summary>Requests by start kind.</summary>
    public Counter Starts { get; }

    /// <summary>Requests routed to an unclaimed warm pod.</summary>
    public Counter WarmRoutes { get; }
}
