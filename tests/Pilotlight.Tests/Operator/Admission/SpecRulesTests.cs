using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Admission;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Tests.Operator.Admission;

public sealed class SpecRulesTests
{
    private static readonly FunctionPodOptions Pods = new();

    private static GpuFunction Function(GpuFunctionSpec spec, string name = "llm") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "team-a" },
        Spec = spec,
    };

    private static IReadOnlyList<string> Fields(GpuFunctionSpec spec, AdmissionPolicy? policy = null, string name = "llm") =>
        [.. SpecRules.Check(Function(spec, name), policy ?? new AdmissionPolicy(), Pods).Select(p => p.Field)];

    private static IEnumerable<TestCaseData> Refused()
    {
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Scaling = new ScalingPolicy { MinReplicas = 3, MaxReplicas = 2 } }, "llm", "spec.scaling.minReplicas")
            .SetName("minReplicas over maxReplicas");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Scaling = new ScalingPolicy { MaxReplicas = 2 }, Prewarm = new PrewarmPolicy { WarmReplicas = 3 } }, "llm", "spec.prewarm.warmReplicas")
            .SetName("warmReplicas over maxReplicas");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Scaling = new ScalingPolicy { MaxReplicas = 2 }, Prewarm = new PrewarmPolicy { ReservedReplicas = 3 } }, "llm", "spec.prewarm.reservedReplicas")
            .SetName("reservedReplicas over maxReplicas");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Scaling = new ScalingPolicy { MaxConcurrency = 2, TargetConcurrency = 4 } }, "llm", "spec.scaling.targetConcurrency")
            .SetName("targetConcurrency over maxConcurrency");
        foreach (var port in new[] { 8099, 8022, 9102 })
        {
            yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Port = port }, "llm", "spec.port").SetName($"port {port} of a sidecar");
        }

        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Env = [new V1EnvVar { Name = "OK", Value = "1" }, new V1EnvVar { Name = "NVIDIA_VISIBLE_DEVICES", Value = "all" }] }, "llm", "spec.env[1].name")
            .SetName("NVIDIA_VISIBLE_DEVICES in env");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Env = [new V1EnvVar { Name = "PILOTLIGHT_UPSTREAM", Value = "http://evil" }] }, "llm", "spec.env[0].name")
            .SetName("a sidecar's setting in env");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", EnvFrom = [new V1EnvFromSource { Prefix = "NVIDIA_", ConfigMapRef = new V1ConfigMapEnvSource { Name = "c" } }] }, "llm", "spec.envFrom[0].prefix")
            .SetName("envFrom prefix NVIDIA_");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", EnvFrom = [new V1EnvFromSource { Prefix = "NVI", ConfigMapRef = new V1ConfigMapEnvSource { Name = "c" } }] }, "llm", "spec.envFrom[0].prefix")
            .SetName("envFrom prefix that completes to NVIDIA_ with the right key");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Volumes = [new V1Volume { Name = "host", HostPath = new V1HostPathVolumeSource { Path = "/" } }] }, "llm", "spec.volumes[0].hostPath")
            .SetName("hostPath volume");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Volumes = [new V1Volume { Name = "pilotlight-meter", EmptyDir = new V1EmptyDirVolumeSource() }] }, "llm", "spec.volumes[0].name")
            .SetName("a volume named like the operator's");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", ServiceAccountName = "cluster-admin-sa" }, "llm", "spec.serviceAccountName")
            .SetName("a ServiceAccount outside the allowed list");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Rollout = new RolloutPolicy { MaxSurge = 0, MaxUnavailable = "0%" } }, "llm", "spec.rollout.maxUnavailable")
            .SetName("a rollout that may neither surge nor take a pod away");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1", Rollout = new RolloutPolicy { MaxSurge = -1 } }, "llm", "spec.rollout.maxSurge")
            .SetName("a negative maxSurge");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1" }, new string('a', 64), "metadata.name").SetName("a name too long for a Service");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1" }, "1llm", "metadata.name").SetName("a name a Service cannot take");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "m:1" }, "my.llm", "metadata.name").SetName("a dotted name");
    }

    [TestCaseSource(nameof(Refused))]
    public void A_mistake_is_refused_naming_its_field(GpuFunctionSpec spec, string name, string field)
    {
        var problems = SpecRules.Check(Function(spec, name), new AdmissionPolicy(), Pods);

        Assert.That(problems.Select(p => p.Field), Is.EqualTo(new[] { field }));
        Assert.That(problems[0].ToString(), Does.StartWith(field + ": "));
    }

    [Test]
    public void An_ordinary_function_passes()
    {
        var spec = new GpuFunctionSpec
        {
            Image = "vllm:0.6",
            Port = 9000,
            Env = [new V1EnvVar { Name = "MODEL", Value = "llama" }],
            EnvFrom = [new V1EnvFromSource { Prefix = "APP_", SecretRef = new V1SecretEnvSource { Name = "hf" } }],
            Volumes =
            [
                new V1Volume { Name = "cache", EmptyDir = new V1EmptyDirVolumeSource() },
                new V1Volume { Name = "weights", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = "w" } },
            ],
            ServiceAccountName = "default",
            Scaling = new ScalingPolicy { MinReplicas = 2, MaxReplicas = 2, MaxConcurrency = 4, TargetConcurrency = 4 },
            Prewarm = new PrewarmPolicy { WarmReplicas = 2 },
        };

        Assert.That(Fields(spec, name: new string('a', 63)), Is.Empty);
    }

    [Test]
    public void The_platform_widens_volumes_and_service_accounts_by_policy()
    {
        var spec = new GpuFunctionSpec
        {
            Image = "m:1",
            ServiceAccountName = "model-reader",
            Volumes = [new V1Volume { Name = "nfs", Nfs = new V1NFSVolumeSource { Server = "nfs", Path = "/models" } }],
        };
        var policy = new AdmissionPolicy
        {
            AllowedVolumeTypes = AdmissionPolicy.ListFlag("nfs, emptyDir"),
            AllowedServiceAccounts = AdmissionPolicy.ListFlag("model-reader"),
        };

        Assert.Multiple(() =>
        {
            Assert.That(Fields(spec), Is.EquivalentTo(new[] { "spec.volumes[0].nfs", "spec.serviceAccountName" }), "refused by default");
            Assert.That(Fields(spec, policy), Is.Empty, "allowed once the platform says so");
        });
    }

    [Test]
    public void A_function_that_breaks_a_rule_is_InvalidSpec_in_the_reconciler_too()
    {
        var function = Function(new GpuFunctionSpec { Image = "m:1", Port = 8099, Gpu = new GpuRequirement { Type = GpuType.L4 } });

        var (placement, _, problems) = GpuFunctionReconciler.Validate(function, GpuCatalog.Default, new AdmissionPolicy(), Pods);

        Assert.That(placement, Is.Not.Null, "placement still resolves");
        Assert.That(problems, Has.One.StartsWith("spec.port: 8099"));
    }

    [Test]
    public void A_pod_without_GPUs_never_sees_the_nodes_GPUs_whatever_envFrom_holds()
    {
        // A ConfigMap's keys are not visible at admission: the operator's own env entry wins over envFrom.
        var spec = new GpuFunctionSpec
        {
            Image = "m:1",
            Gpu = new GpuRequirement { Type = GpuType.L4, Count = 0 },
            EnvFrom = [new V1EnvFromSource { ConfigMapRef = new V1ConfigMapEnvSource { Name = "sets-nvidia-visible-devices" } }],
            Env = [new V1EnvVar { Name = "NVIDIA_VISIBLE_DEVICES", Value = "all" }],
        };
        var (placement, _) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);

        var pod = FunctionPods.MakePod(Function(spec), placement!, Pods);

        var env = pod.Spec.Containers.Single(c => c.Name == FunctionPods.FunctionContainer).Env;
        Assert.That(env.Where(e => e.Name == "NVIDIA_VISIBLE_DEVICES").Select(e => e.Value), Is.EqualTo(new[] { "void" }));
    }
}
