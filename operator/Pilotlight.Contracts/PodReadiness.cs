using k8s.Models;

namespace Pilotlight.Contracts;

/// <summary>When a pod counts as ready, for the operator's status and the gateway's routes alike.</summary>
public static class PodReadiness
{
    /// <summary>True when the pod's Ready condition is True.</summary>
    public static bool IsReady(V1Pod pod) =>
        pod.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true;
}
