using Prometheus;

namespace Pilotlight.Gateway;

/// <summary>Gateway metrics, labelled by namespace and function only.</summary>
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
        Retries = f.CreateCounter("pilotlight_gateway_retries_total", "Requests retried on another pod after a connection failure.", "namespace", "function");
    }

    /// <summary>Requests.</summary>
    public Counter Requests { get; }

    /// <summary>Latency.</summary>
    public Histogram Latency { get; }

    /// <summary>Cold-start waits.</summary>
    public Histogram ColdStartWait { get; }

    /// <summary>Held requests.</summary>
    public Gauge Held { get; }

    /// <summary>Retries.</summary>
    public Counter Retries { get; }
}
