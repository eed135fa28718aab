using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>What the gateway keeps of the Sandboxes it watches.</summary>
public static class GatewaySandboxes
{
    /// <summary>
    /// The gateway's sandbox cache transform: a Sandbox keeps what the sandbox API (<see cref="SandboxApi"/>) and the
    /// signal board's upkeep read (the identity a cached function keeps too, <see cref="GatewayFunctions.IdentityOf"/>;
    /// of its status: the pod's name and the <c>Finished</c> condition's status and reason) and drops the rest: its spec
    /// (image, command, env, egress allowlists), labels, annotations (kubectl's last-applied copy among them),
    /// managedFields, usage and the other conditions. Nothing in the gateway may read those of a cached sandbox: they
    /// are null, or the type's defaults.
    /// </summary>
    public static object KeepRoutingFields(object obj)
    {
        if (obj is not Sandbox sandbox)
        {
            return InformerTransforms.StripManagedFields(obj);
        }

        var finished = sandbox.Status?.Conditions?.FirstOrDefault(c => c.Type == SandboxConditions.Finished);
        return new Sandbox
        {
            Metadata = GatewayFunctions.IdentityOf(sandbox.Metadata),
            Status = sandbox.Status is not { } status ? null : new SandboxStatus
            {
                PodName = status.PodName,
                Conditions = finished is null ? null : [new V1Condition { Type = finished.Type, Status = finished.Status, Reason = finished.Reason }],
            },
        };
    }
}
