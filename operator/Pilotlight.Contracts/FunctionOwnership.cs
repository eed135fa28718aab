using k8s.Models;

namespace Pilotlight.Contracts;

/// <summary>
/// Whose a pod is. Labels can be forged by anyone who may create pods in the namespace; the controller
/// reference the operator sets, naming the GpuFunction's UID, cannot point at a function by accident.
/// </summary>
public static class FunctionOwnership
{
    /// <summary>The kind a function pod's controller reference names.</summary>
    public const string Kind = Pilotlight.Api.V1Alpha1.GpuFunction.KindName;

    /// <summary>True when <paramref name="pod"/>'s controller reference is the GpuFunction with UID <paramref name="functionUid"/>.</summary>
    public static bool IsOwnedBy(V1Pod pod, string? functionUid) =>
        !string.IsNullOrEmpty(functionUid)
        && pod.Metadata.OwnerReferences?.Any(o => o.Controller == true && o.Kind == Kind && o.Uid == functionUid) == true;

    /// <summary>The UID of the GpuFunction that controls <paramref name="pod"/>; null when no GpuFunction does.</summary>
    public static string? OwnerUid(V1Pod pod) =>
        pod.Metadata.OwnerReferences?.FirstOrDefault(o => o.Controller == true && o.Kind == Kind)?.Uid;
}
