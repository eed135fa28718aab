using k8s.Models;
using Pilotlight.Contracts;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>Which labelled pods a function's route may use: those the GpuFunction controls, never a look-alike or a sandbox's.</summary>
public class RouteOwnershipTests
{
    private const string Uid = "5a1f-function-uid";

    private static V1Pod Pod(string name, string? owner = Uid, string kind = "GpuFunction", bool controller = true, Action<V1Pod>? edit = null)
    {
        var pod = new V1Pod
        {
            Metadata = new V1ObjectMeta
            {
                Name = name,
                NamespaceProperty = "ns",
                Labels = new Dictionary<string, string> { [FunctionLabels.Function] = "fn", [FunctionLabels.Role] = FunctionLabels.RoleServing },
                OwnerReferences = owner is null ? null : [new V1OwnerReference { Kind = kind, Uid = owner, Name = "fn", ApiVersion = "pilotlight.dev/v1alpha1", Controller = controller }],
            },
            Status = new V1PodStatus { Phase = "Running", PodIP = "10.0.0.1", Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }] },
        };
        edit?.Invoke(pod);
        return pod;
    }

    [Test]
    public void Only_pods_the_function_controls_are_routable()
    {
        var pods = new[]
        {
            Pod("own"),
            Pod("labelled-only", owner: null),
            Pod("other-function", owner: "another-uid"),
            Pod("not-controller", controller: false),
            Pod("sandbox-kind", kind: "Sandbox"),
            Pod("sandbox-labelled", edit: p => p.Metadata.Labels[SandboxAnnotations.SandboxLabel] = "s"),
            Pod("leaving", edit: p => p.Metadata.DeletionTimestamp = DateTime.UtcNow),
            Pod("no-ip", edit: p => p.Status.PodIP = null),
            Pod("pending", edit: p => p.Status.Phase = "Pending"),
            Pod("other-name", edit: p => p.Metadata.Labels[FunctionLabels.Function] = "other"),
        };

        Assert.That(FunctionRoutes.Routable(pods, "fn", Uid).Select(p => p.Metadata.Name), Is.EqualTo(new[] { "own" }));
    }

    [Test]
    public void A_function_the_gateway_does_not_know_has_no_routable_pods()
    {
        Assert.That(FunctionRoutes.Routable([Pod("own")], "fn", null), Is.Empty);
        Assert.That(FunctionRoutes.Routable([Pod("own")], "fn", ""), Is.Empty);
    }
}
