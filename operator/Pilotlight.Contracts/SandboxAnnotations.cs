namespace Pilotlight.Contracts;

/// <summary>What the gateway writes on a Sandbox for the operator to act on, and the label that ties a pod to its sandbox.</summary>
public static class SandboxAnnotations
{
    /// <summary>Annotation the gateway keeps at the time of the sandbox's last exec, stdin or file operation (idleTimeout counts from it).</summary>
    public const string LastActivity = "pilotlight.dev/last-activity";

    /// <summary>Annotation the gateway sets when a caller terminates the sandbox.</summary>
    public const string TerminateRequested = "pilotlight.dev/terminate-requested";

    /// <summary>Label on a sandbox's pod: the Sandbox's name (the gateway also checks the pod's controller reference).</summary>
    public const string SandboxLabel = "pilotlight.dev/sandbox";
}
