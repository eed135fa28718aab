namespace Pilotlight.Operator.Functions;

/// <summary>How the operator dresses every function pod; operator configuration.</summary>
public sealed record FunctionPodOptions
{
    /// <summary>Image of the runtime shim sidecar.</summary>
    public string ShimImage { get; init; } = "pilotlight/runtime-shim:0.1.0";

    /// <summary>Port the shim serves invocations (and its readiness endpoint) on; users may not take it.</summary>
    public int ShimPort { get; init; } = 8099;

    /// <summary>
    /// Port of the shim's admin listener, which serves only the user container's preStop hook
    /// (<c>/wait-for-drain</c>); never routed to by the gateway. Users may not take it.
    /// </summary>
    public int ShimAdminPort { get; init; } = 8022;

    /// <summary>Image of the metering sidecar.</summary>
    public string MeterImage { get; init; } = "pilotlight/meter:0.1.0";

    /// <summary>Port of the metering sidecar's Prometheus endpoint.</summary>
    public int MeterPort { get; init; } = 9102;

    /// <summary>
    /// Extra seconds beyond the request timeout a pod gets before it is killed: the shim drains for up to
    /// <c>timeout</c>, then the user's server has this long to exit on SIGTERM.
    /// </summary>
    public int DrainGraceSeconds { get; init; } = 15;

    /// <summary>
    /// The Pod Security Standards profile function pods meet: <see cref="PodSecurityProfile.Baseline"/> (the default;
    /// model server images that run as root still start) or <see cref="PodSecurityProfile.Restricted"/>.
    /// </summary>
    public PodSecurityProfile PodSecurity { get; init; } = PodSecurityProfile.Baseline;

    /// <summary>
    /// Secrets for pulling the platform's images (shim, meter) that every pod the operator makes names
    /// (<c>--platform-image-pull-secrets</c>), after the function's own. By name only: each must exist in the pod's
    /// namespace (the kubelet pulls without a missing one, and warns in the pod's events).
    /// </summary>
    public IReadOnlyList<string> PlatformImagePullSecrets { get; init; } = [];

    /// <summary>
    /// Variables that give the sidecars (shim, meter) the operator's own log settings (<c>--log-format</c>,
    /// <c>--log-level</c>); empty for the defaults. Outside the template hash, like the sidecar images: a new setting
    /// reaches pods made from then on and rolls none that serves.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> SidecarLog { get; init; } = [];

    /// <summary>The PriorityClass capacity-reservation placeholders run at (<c>--reservation-priority-class</c>).</summary>
    public string ReservationPriorityClass { get; init; } = Prewarm.PrewarmResources.DefaultPriorityClassName;
}

/// <summary>Image pull secrets of a pod: the object's own, then the platform's.</summary>
public static class PullSecrets
{
    /// <summary>
    /// <paramref name="own"/> followed by each of <paramref name="platform"/> it does not already name; null when
    /// there are none at all (so that a pod without any is unchanged).
    /// </summary>
    public static List<k8s.Models.V1LocalObjectReference>? Merge(IEnumerable<k8s.Models.V1LocalObjectReference>? own, IReadOnlyList<string> platform)
    {
        var merged = (own ?? []).ToList();
        merged.AddRange(platform.Where(name => merged.All(s => s.Name != name)).Select(name => new k8s.Models.V1LocalObjectReference { Name = name }));
        return merged.Count > 0 ? merged : null;
    }
}

/// <summary>A Pod Security Standards profile (kubernetes.io/docs/concepts/security/pod-security-standards).</summary>
public enum PodSecurityProfile
{
    /// <summary>
    /// No privilege escalation, the container runtime's default capabilities at most (none added), the runtime's
    /// default seccomp profile; the user's container may run as root.
    /// </summary>
    Baseline,

    /// <summary>Baseline, and the user's container must run as non-root with every capability dropped.</summary>
    Restricted,
}
