using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Contracts;

/// <summary>
/// How many pods a gateway's wake asks for: the gateway posts a <see cref="WakeSignal"/> with the requests it holds, and
/// the operator's next reconcile decides at once instead of at the autoscaler's next tick.
/// </summary>
public static class WakeRequest
{
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
