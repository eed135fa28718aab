namespace Pilotlight.Operator.Functions;

/// <summary>How the operator dresses every function pod; operator configuration.</summary>
public sealed record FunctionPodOptions
{
    /// <summary>Image of the runtime shim sidecar.</summary>
    public string ShimImage { get; init; } = "pilotlight/runtime-shim:0.1.0";

    /// <summary>Port the shim serves invocations (and its readiness endpoint) on; users may not take it.</summary>
    public int ShimPort { get; init; } = 8099;

    /// <summary>Image of the metering sidecar.</summary>
    public string MeterImage { get; init; } = "pilotlight/meter:0.1.0";

    /// <summary>Port of the metering sidecar's Prometheus endpoint.</summary>
    public int MeterPort { get; init; } = 9102;

    /// <summary>Extra seconds beyond the request timeout a pod gets to drain before it is killed.</summary>
    public int DrainGraceSeconds { get; init; } = 15;
}
