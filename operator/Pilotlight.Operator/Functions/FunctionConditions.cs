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

    /// <summary>
    /// kstatus: the function cannot serve at all and progress needs someone to act: a bad spec, or no replica is
    /// ready and its pods cannot be placed, cannot pull, crash, or did not start within <c>startupTimeout</c>. A
    /// function that serves while extra replicas wait is never Stalled: <see cref="ScaledUp"/> says what is missing.
    /// </summary>
    public const string Stalled = "Stalled";

    /// <summary>
    /// True when every desired replica is ready; False with the reason the missing ones are not (PodsStarting,
    /// Unschedulable with the scheduler's message, ImagePullBackOff, CrashLoopBackOff, StartupTimeout) while the
    /// function may well serve with the others. Shown by <c>kubectl get gfn -o wide</c>.
    /// </summary>
    public const string ScaledUp = "ScaledUp";

    /// <summary>Warm standby pods: True when the pool is at its target (present only when prewarm or a schedule asks for it).</summary>
    public const string Warm = "Warm";

    /// <summary>GPU reservations: True when every placeholder holds its GPUs (present only with prewarm.reservedReplicas).</summary>
    public const string Reserved = "Reserved";

    /// <summary>Image pre-pull: True when the image is on every eligible node (present only with prewarm.prePull).</summary>
    public const string PrePulled = "PrePulled";

    /// <summary>
    /// The function's own ClusterService (present only with <c>spec.clusterService</c>): True when it exists and the
    /// function owns it; False before the first pod (it is made with it) or while a Service of that name belongs to
    /// someone else. Serving through the gateway does not depend on it, so Ready does not either.
    /// </summary>
    public const string ServiceReady = "ServiceReady";

    /// <summary>Reasons that mean a replica cannot start without someone acting: Warning Events, and Stalled when no replica serves.</summary>
    public static bool IsProblem(string reason) =>
        reason is Reasons.InvalidSpec or Reasons.Unschedulable or Reasons.ImagePullBackOff or Reasons.CrashLoopBackOff or Reasons.StartupTimeout;

    /// <summary>Reasons, stable across releases: alerting and tooling may match on them.</summary>
    public static class Reasons
    {
        /// <summary>Ready: replicas are ready to serve (ScaledUp says whether all desired ones are); ScaledUp: every desired replica is ready.</summary>
        public const string PodsReady = "PodsReady";

        /// <summary>
        /// A replica did not become ready within <c>startupTimeout</c> of its creation (a model that never loads, a
        /// probe that never passes); the kubelet's startup probe restarts its container meanwhile.
        /// </summary>
        public const string StartupTimeout = "StartupTimeout";

        /// <summary>No replica is wanted; the first request wakes the function.</summary>
        public const string ScaledToZero = "ScaledToZero";

        /// <summary>Replicas are being created or are starting.</summary>
        public const string PodsStarting = "PodsStarting";

        /// <summary>The spec cannot be served as written (e.g. a GPU type the catalog lacks).</summary>
        public const string InvalidSpec = "InvalidSpec";

        /// <summary>The scheduler found no node for a replica (Stalled when none serves; else ScaledUp=False); the message is the scheduler's.</summary>
        public const string Unschedulable = "Unschedulable";

        /// <summary>The image cannot be pulled.</summary>
        public const string ImagePullBackOff = "ImagePullBackOff";

        /// <summary>The user's container keeps crashing.</summary>
        public const string CrashLoopBackOff = "CrashLoopBackOff";

        /// <summary>Pods of an older spec are being replaced.</summary>
        public const string RollingOut = "RollingOut";

        /// <summary>Warm: the pool holds as many ready warm pods as wanted.</summary>
        public const string PoolReady = "PoolReady";

        /// <summary>Warm: warm pods are starting (or were just claimed and are being replaced).</summary>
        public const string PoolFilling = "PoolFilling";

        /// <summary>Warm, Reserved: nothing is wanted right now.</summary>
        public const string NoneWanted = "NoneWanted";

        /// <summary>Reserved: every placeholder runs on a GPU node.</summary>
        public const string ReservationsHeld = "ReservationsHeld";

        /// <summary>Reserved: some placeholders wait for capacity (preempted, or no node has free GPUs).</summary>
        public const string ReservationsPending = "ReservationsPending";

        /// <summary>Warm, Reserved: the namespace's ResourceQuota refused a pod.</summary>
        public const string QuotaExceeded = "QuotaExceeded";

        /// <summary>PrePulled: the image is present on every eligible node.</summary>
        public const string ImagePresent = "ImagePresent";

        /// <summary>PrePulled: pre-pull pods are still pulling on some eligible nodes.</summary>
        public const string ImagePulling = "ImagePulling";

        /// <summary>PrePulled: no node has a GPU the function can use.</summary>
        public const string NoEligibleNodes = "NoEligibleNodes";

        /// <summary>ServiceReady: the function's Service exists and the function is its controller.</summary>
        public const string ServiceOwned = "ServiceOwned";

        /// <summary>ServiceReady: the function never had a pod; its Service is made with the first one.</summary>
        public const string WaitingForFirstPod = "WaitingForFirstPod";

        /// <summary>ServiceReady: a Service of the function's name exists and something else controls it; it is left alone.</summary>
        public const string ServiceNotOwned = "ServiceNotOwned";
    }
}
