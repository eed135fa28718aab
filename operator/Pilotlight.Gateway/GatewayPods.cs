using k8s.Models;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>What the gateway keeps of the pods it watches.</summary>
public static class GatewayPods
{
    /// <summary>
    /// The gateway's pod cache transform: a pod keeps what routing (<see cref="FunctionRoutes"/>) and the sandbox
    /// API (<see cref="SandboxApi"/>) read (name, namespace, UID, resourceVersion, labels, owner references, creation
    /// and deletion timestamps, phase, IP and conditions) and drops the rest, which is most of a pod: its spec
    /// (containers, env, volumes), annotations, container statuses and managedFields. Nothing in the gateway may read
    /// a cached pod's spec or annotations: they are null.
    /// </summary>
    public static object KeepRoutingFields(object obj)
    {
        InformerTransforms.StripManagedFields(obj);
        if (obj is V1Pod pod)
        {
            pod.Spec = null;
            pod.Metadata?.Annotations = null;
            if (pod.Status is { } status)
            {
                status.ContainerStatuses = null;
                status.InitContainerStatuses = null;
                status.EphemeralContainerStatuses = null;
            }
        }

        return obj;
    }
}
