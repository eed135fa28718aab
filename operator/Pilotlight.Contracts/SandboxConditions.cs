namespace Pilotlight.Contracts;

/// <summary>Sandbox condition types and their stable reasons.</summary>
public static class SandboxConditions
{
    /// <summary>The agent is ready for exec and file operations.</summary>
    public const string Ready = "Ready";

    /// <summary>The sandbox has ended (terminal); its reason says why.</summary>
    public const string Finished = "Finished";

    /// <summary>kstatus: True while the pod is being started.</summary>
    public const string Reconciling = "Reconciling";

    /// <summary>kstatus: True when the sandbox cannot run (invalid spec, a conflicting pod) or its pod failed or vanished.</summary>
    public const string Stalled = "Stalled";

    /// <summary>Stable reasons.</summary>
    public static class Reasons
    {
        /// <summary>The agent is ready (Ready), or the sandbox has not finished (Finished=False).</summary>
        public const string Running = "Running";

        /// <summary>The pod is being scheduled or started.</summary>
        public const string PodStarting = "PodStarting";

        /// <summary>The spec cannot be run (a runtime class not allowed, a bad duration, an unknown GPU type).</summary>
        public const string InvalidSpec = "InvalidSpec";

        /// <summary>A pod of the sandbox's name belongs to something else.</summary>
        public const string PodConflict = "PodConflict";

        /// <summary>The API server refused its pod (a missing RuntimeClass, a quota, a policy); asked again every little while.</summary>
        public const string PodRejected = "PodRejected";

        /// <summary>Its timeout passed.</summary>
        public const string Expired = "Expired";

        /// <summary>No exec, stdin or file operation within idleTimeout.</summary>
        public const string IdleTimeout = "IdleTimeout";

        /// <summary>A caller terminated it through the gateway.</summary>
        public const string Terminated = "Terminated";

        /// <summary>Its pod failed; the pod is not recreated.</summary>
        public const string PodFailed = "PodFailed";

        /// <summary>Its pod was deleted outside the operator; it is not recreated.</summary>
        public const string PodLost = "PodLost";

        /// <summary>The agent exited by itself.</summary>
        public const string Completed = "Completed";
    }
}
