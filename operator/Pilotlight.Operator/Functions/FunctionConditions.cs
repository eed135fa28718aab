namespace Pilotlight.Operator.Functions;

/// <summary>
/// Condition types and their stable reasons. Ready follows kstatus, with
/// Reconciling and Stalled so Argo CD and Flux read health without a custom script.
/// </summary>
public static class FunctionConditions
{
    /// <summary>The function can serve (or wake to serve) requests.</summary>
    public const string Ready = "Ready";

    /// <summary>kstatus: the operator is still moving the function towards its spec.</summary>
    public const string Reconciling = "Reconciling";

    /// <summary>kstatus: progress needs someone to act (a bad spec, no node fits).</summary>
    public const string Stalled = "Stalled";

    /// <summary>Reasons, stable across releases: alerting and tooling may match on them.</summary>
    public static class Reasons
    {
        /// <summary>Every desired replica is ready.</summary>
        public const string PodsReady = "PodsReady";

        /// <summary>No replica is wanted; the first request wakes the function.</summary>
        public const string ScaledToZero = "ScaledToZero";

        /// <summary>Replicas are being created or are starting.</summary>
        public const string PodsStarting = "PodsStarting";

        /// <summary>The spec cannot be served as written (e.g. a GPU type the catalog lacks).</summary>
        public const string InvalidSpec = "InvalidSpec";

        /// <summary>The scheduler found no node for a replica; the message is the scheduler's.</summary>
        public const string Unschedulable = "Unschedulable";

        /// <summary>The image cannot be pulled.</summary>
        public const string ImagePullBackOff = "ImagePullBackOff";

        /// <summary>The user's container keeps crashing.</summary>
        public const string CrashLoopBackOff = "CrashLoopBackOff";

        /// <summary>Pods of an older spec are being replaced.</summary>
        public const string RollingOut = "RollingOut";
    }
}
