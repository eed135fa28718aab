using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>What the gateway caches of a GpuFunction: every field it reads, nothing else.</summary>
public sealed class GatewayFunctionsTests
{
    /// <summary>The spec fields the gateway reads (invocation access, bounds, retries, wake sizing and routing concurrency).</summary>
    private static readonly string[] Read =
    [
        nameof(GpuFunctionSpec.Access), nameof(GpuFunctionSpec.Timeout), nameof(GpuFunctionSpec.StartupTimeout),
        nameof(GpuFunctionSpec.PassCallerCredentials), nameof(GpuFunctionSpec.Retries), nameof(GpuFunctionSpec.Scaling),
    ];

    /// <summary>The spec fields only the operator reads (the pods it makes, prewarm, schedules).</summary>
    private static readonly string[] NotRead =
    [
        nameof(GpuFunctionSpec.Image), nameof(GpuFunctionSpec.Command), nameof(GpuFunctionSpec.Args), nameof(GpuFunctionSpec.Env),
        nameof(GpuFunctionSpec.EnvFrom), nameof(GpuFunctionSpec.Port), nameof(GpuFunctionSpec.HealthPath), nameof(GpuFunctionSpec.Gpu),
        nameof(GpuFunctionSpec.Resources), nameof(GpuFunctionSpec.Rollout), nameof(GpuFunctionSpec.Prewarm), nameof(GpuFunctionSpec.Schedule),
        nameof(GpuFunctionSpec.Volumes), nameof(GpuFunctionSpec.VolumeMounts), nameof(GpuFunctionSpec.RuntimeClassName),
        nameof(GpuFunctionSpec.ServiceAccountName), nameof(GpuFunctionSpec.ImagePullSecrets), nameof(GpuFunctionSpec.NodeSelector),
        nameof(GpuFunctionSpec.Tolerations), nameof(GpuFunctionSpec.ClusterService),
    ];

    private static GpuFunction Whole() => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = "fn", NamespaceProperty = "ns", Uid = "uid-1", ResourceVersion = "42", Generation = 3,
            DeletionTimestamp = new DateTime(2026, 12, 3, 10, 0, 0, DateTimeKind.Utc),
            Labels = new Dictionary<string, string> { ["team"] = "a" },
            Annotations = new Dictionary<string, string> { ["kubectl.kubernetes.io/last-applied-configuration"] = new string('x', 2000) },
            ManagedFields = [new V1ManagedFieldsEntry { Manager = "kubectl" }],
        },
        Spec = new GpuFunctionSpec
        {
            Image = "registry.example/model:1",
            Command = ["serve"],
            Env = [new V1EnvVar { Name = "A", Value = "b" }],
            Gpu = new GpuRequirement { Type = GpuType.H100, Count = 2 },
            Access = FunctionAccess.Public,
            Timeout = "20m",
            StartupTimeout = "10m",
            PassCallerCredentials = true,
            Retries = new RetryPolicy { MaxRetries = 3, InitialDelay = "2s" },
            Scaling = new ScalingPolicy { MinReplicas = 1, MaxReplicas = 7, TargetConcurrency = 3, MaxConcurrency = 4 },
        },
        Status = new GpuFunctionStatus
        {
            ObservedGeneration = 3,
            Conditions = [new V1Condition { Type = "Ready", Status = "True", Reason = "Ready", Message = "ok" }],
            Usage = new UsageTotals { GpuSeconds = 12, OpenPods = [new BilledPod { Uid = "p", Gpus = 2 }] },
            Selector = "pilotlight.dev/function=fn",
        },
    };

    [Test]
    public void A_cached_function_keeps_every_field_the_gateway_reads()
    {
        var whole = Whole();

        var kept = (GpuFunction)GatewayFunctions.KeepInvocationFields(Whole());

        Assert.That((kept.Metadata.Name, kept.Metadata.NamespaceProperty, kept.Metadata.Uid, kept.Metadata.ResourceVersion, kept.Metadata.Generation,
            kept.Metadata.DeletionTimestamp), Is.EqualTo((whole.Metadata.Name, whole.Metadata.NamespaceProperty, whole.Metadata.Uid,
            whole.Metadata.ResourceVersion, whole.Metadata.Generation, whole.Metadata.DeletionTimestamp)));
        foreach (var name in Read)
        {
            var property = typeof(GpuFunctionSpec).GetProperty(name)!;
            Assert.That(property.GetValue(kept.Spec), Is.EqualTo(property.GetValue(whole.Spec)), name);
        }

        Assert.That((kept.ApiVersion, kept.Kind), Is.EqualTo((whole.ApiVersion, whole.Kind)));
    }

    [Test]
    public void A_cached_function_drops_its_status_metadata_and_pod_template()
    {
        var kept = (GpuFunction)GatewayFunctions.KeepInvocationFields(Whole());

        Assert.That(kept.Status, Is.Null);
        Assert.That((kept.Metadata.Labels, kept.Metadata.Annotations, kept.Metadata.ManagedFields), Is.EqualTo(((object?)null, (object?)null, (object?)null)));
        Assert.That((kept.Spec.Image, kept.Spec.Command, kept.Spec.Env, kept.Spec.Gpu), Is.EqualTo(("", (object?)null, (object?)null, (object?)null)));
    }

    [Test]
    public void Every_spec_field_is_either_kept_or_known_to_be_unread_by_the_gateway()
    {
        // A new spec field fails this until someone decides whether the gateway reads it (and keeps it if so).
        var fields = typeof(GpuFunctionSpec).GetProperties().Select(p => p.Name);

        Assert.That(fields, Is.EquivalentTo(Read.Concat(NotRead)));
    }

    [Test]
    public void Other_objects_only_lose_their_managed_fields()
    {
        var map = new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "keys", ManagedFields = [new V1ManagedFieldsEntry()] }, Data = new Dictionary<string, string> { ["a"] = "b" } };

        var kept = GatewayFunctions.KeepInvocationFields(map);

        Assert.That(kept, Is.SameAs(map));
        Assert.That(map.Metadata.ManagedFields, Is.Null);
        Assert.That(map.Data, Has.Count.EqualTo(1));
    }
}
