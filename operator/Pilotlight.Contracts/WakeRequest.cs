using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Contracts;

/// <summary>
/// How a gateway wakes a function: it stamps <see cref="RequestedAnnotation"/> and <see cref="HeldAnnotation"/> on the
/// GpuFunction, and the operator's next reconcile decides at once instead of at the autoscaler's next tick.
/// </summary>
public static class WakeRequest
{
    /// <summary>Annotation a gateway sets (RFC 3339 time) when a request arrives for a function with no ready pod.</summary>
    public const string RequestedAnnotation = "pilotlight.dev/wake-requested";

    /// <summary>
    /// Annotation a gateway sets with <see cref="RequestedAnnotation"/>: how many requests it held for the function
    /// then (a whole number), so the first decision asks for enough pods for all of them.
    /// </summary>
    public const string HeldAnnotation = "pilotlight.dev/wake-held";

    /// <summary>
    /// Pods that <paramref name="waiting"/> requests at zero ask for: ceil(waiting / target concurrency), at
    /// least one, within [minReplicas, maxReplicas]. The gateway stamps its wake again when this grows; the
    /// autoscaler asks for at least this many at once.
    /// </summary>
    public static int PodsFor(ScalingPolicy policy, int waiting)
    {
        var target = Math.Max(1, policy.TargetConcurrency ?? policy.MaxConcurrency);
        var pods = Math.Max(1, (int)Math.Ceiling(Math.Max(0, waiting) / (double)target));
        return Math.Clamp(pods, policy.MinReplicas, Math.Max(policy.MinReplicas, policy.MaxReplicas));
    }
}
