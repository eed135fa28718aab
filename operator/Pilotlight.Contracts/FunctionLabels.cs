namespace Pilotlight.Contracts;

/// <summary>
/// Labels and annotations the operator puts on what it creates for a function; the gateway selects and routes by them.
/// Labels say what a pod is for, never whose it is: that is its controller reference (<see cref="FunctionOwnership"/>).
/// </summary>
public static class FunctionLabels
{
    /// <summary>Name of the owning GpuFunction.</summary>
    public const string Function = "pilotlight.dev/function";

    /// <summary>Hash of the pod template, so a spec change rolls pods.</summary>
    public const string TemplateHash = "pilotlight.dev/template-hash";

    /// <summary>What a function pod is for: <see cref="RoleServing"/> or <see cref="RoleWarm"/>.</summary>
    public const string Role = "pilotlight.dev/role";

    /// <summary>A pod the gateway routes to.</summary>
    public const string RoleServing = "serving";

    /// <summary>
    /// A ready standby pod. A gateway may route a request to it when no serving pod has room (and it is this
    /// function's by controller reference); the operator claims it afterwards by relabelling it serving.
    /// </summary>
    public const string RoleWarm = "warm";

    /// <summary>On capacity-reservation placeholder pods: the function they hold GPUs for.</summary>
    public const string ReservationFor = "pilotlight.dev/reservation-for";

    /// <summary>On pre-pull DaemonSets and their pods: the function whose image they pull.</summary>
    public const string PrePullFor = "pilotlight.dev/prepull-for";

    /// <summary>True for serving pods (and pods from before roles existed): the ones the gateway routes to first.</summary>
    public static bool IsServing(k8s.Models.V1Pod pod) =>
        pod.Metadata.Labels?.TryGetValue(Role, out var role) != true || role == RoleServing;

    /// <summary>True for warm standby pods.</summary>
    public static bool IsWarm(k8s.Models.V1Pod pod) =>
        pod.Metadata.Labels?.TryGetValue(Role, out var role) == true && role == RoleWarm;

    /// <summary>Marks everything the operator manages.</summary>
    public const string ManagedBy = "app.kubernetes.io/managed-by";

    /// <summary>Value of <see cref="ManagedBy"/>.</summary>
    public const string ManagedByValue = "pilotlight";

    /// <summary>
    /// On a GpuFunction (and copied to its pods): any new value rolls the function's pods onto the current template,
    /// sidecar images included, as <c>kubectl rollout restart</c> does for a Deployment.
    /// </summary>
    public const string RestartedAt = "pilotlight.dev/restartedAt";

    /// <summary>The Cluster Autoscaler's per-pod say on whether scale-down may evict the pod (<c>"true"</c>/<c>"false"</c>).</summary>
    public const string SafeToEvict = "cluster-autoscaler.kubernetes.io/safe-to-evict";

    /// <summary>Karpenter's per-pod veto (<c>"true"</c>) on voluntary disruption (consolidation, drift, expiry) of its node.</summary>
    public const string DoNotDisrupt = "karpenter.sh/do-not-disrupt";

    /// <summary>Which container <c>kubectl logs</c> and <c>exec</c> pick by default.</summary>
    public const string DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container";
}
