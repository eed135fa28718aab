using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>What the gateway keeps of the GpuFunctions it watches.</summary>
public static class GatewayFunctions
{
    private static readonly RolloutPolicy UnreadRollout = new();

    /// <summary>
    /// The gateway's function cache transform: a GpuFunction keeps what the gateway reads (name, namespace, UID,
    /// resourceVersion, generation and deletion timestamp; of its spec: access, timeout, startupTimeout,
    /// passCallerCredentials, retries and scaling) and drops the rest: its status (the operator's, never read here),
    /// labels, annotations (kubectl's last-applied copy of the whole object among them), managedFields and the pod
    /// template parts of its spec (image, command, env, volumes, GPU...). Nothing in the gateway may read those of a
    /// cached function: they are null, or the type's defaults.
    /// </summary>
    public static object KeepInvocationFields(object obj)
    {
        if (obj is not GpuFunction function)
        {
            return InformerTransforms.StripManagedFields(obj);
        }

        var meta = function.Metadata;
        var spec = function.Spec;
        return new GpuFunction
        {
            Metadata = IdentityOf(meta),
            Spec = new GpuFunctionSpec
            {
                // Required by the type; the gateway never reads it.
                Image = "",
                Access = spec.Access,
                Timeout = spec.Timeout,
                StartupTimeout = spec.StartupTimeout,
                PassCallerCredentials = spec.PassCallerCredentials,
                Retries = spec.Retries,
                Scaling = spec.Scaling,
                // One shared default rather than a new one per function (the operator's field).
                Rollout = UnreadRollout,
            },
        };
    }

    /// <summary>
    /// What the gateway keeps of a cached object's metadata: name, namespace, UID, resourceVersion, generation and
    /// deletion timestamp (labels, annotations and managedFields are dropped).
    /// </summary>
    internal static V1ObjectMeta IdentityOf(V1ObjectMeta meta) => new()
    {
        Name = meta.Name,
        NamespaceProperty = meta.NamespaceProperty,
        Uid = meta.Uid,
        ResourceVersion = meta.ResourceVersion,
        Generation = meta.Generation,
        DeletionTimestamp = meta.DeletionTimestamp,
    };
}
