namespace Pilotlight.Contracts;

/// <summary>
/// Annotations a user or a tool may set on a Sandbox for the operator to act on (the gateway sends the same through its
/// signals, <see cref="GatewaySignals"/>, and writes nothing), and the label that ties a pod to its sandbox.
/// </summary>
public static class SandboxAnnotations
{
    /// <summary>Annotation with a time of activity (RFC 3339) that idleTimeout also counts from, for activity outside the gateway.</summary>
    public const string LastActivity = "pilotlight.dev/last-activity";

    /// <summary>Annotation that ends the sandbox (Terminated), as the sandbox API's terminate does (<c>kubectl annotate</c>).</summary>
    public const string TerminateRequested = "pilotlight.dev/terminate-requested";

    /// <summary>Label on a sandbox's pod: the Sandbox's name (the gateway also checks the pod's controller reference).</summary>
    public const string SandboxLabel = "pilotlight.dev/sandbox";
}
