using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Sandboxes;

public class SandboxPodsTests
{
    private static readonly SandboxOptions Options = new() { AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = "runsc" };

    private static Sandbox Sandbox(SandboxSpec spec) => new()
    {
        Metadata = new V1ObjectMeta { Name = "scratch", NamespaceProperty = "team-a", Uid = "uid-1" },
        Spec = spec,
    };

    [Test]
    public void Hardening_applies_even_when_the_spec_sets_nothing()
    {
        var pod = SandboxPods.MakePod(Sandbox(new SandboxSpec { Image = "python:3.12" }), "runsc", null, Options);
        var c = pod.Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer);

        Assert.Multiple(() =>
        {
            Assert.That(pod.Spec.AutomountServiceAccountToken, Is.False);
            Assert.That(pod.Spec.HostNetwork, Is.False);
            Assert.That(pod.Spec.RestartPolicy, Is.EqualTo("Never"));
            Assert.That(pod.Spec.SecurityContext.RunAsNonRoot, Is.True);
            Assert.That(pod.Spec.SecurityContext.SeccompProfile.Type, Is.EqualTo("RuntimeDefault"));
            foreach (var container in pod.Spec.Containers.Concat(pod.Spec.InitContainers))
            {
                Assert.That(container.SecurityContext.AllowPrivilegeEscalation, Is.False, container.Name);
                Assert.That(container.SecurityContext.Privileged, Is.False, container.Name);
                Assert.That(container.SecurityContext.ReadOnlyRootFilesystem, Is.True, container.Name);
                Assert.That(container.SecurityContext.Capabilities.Drop, Is.EqualTo(new[] { "ALL" }), container.Name);
                Assert.That(container.Resources.Limits.Keys, Is.SupersetOf(new[] { "cpu", "memory" }), container.Name);
            }

            Assert.That(c.Resources.Requests, Is.EqualTo(c.Resources.Limits), "requests equal limits: Guaranteed QoS");
            Assert.That(c.Env.Single(e => e.Name == "NVIDIA_VISIBLE_DEVICES").Value, Is.EqualTo("void"), "no GPU leaks in through the runtime");
            Assert.That(c.Env.Single(e => e.Name == "PILOTLIGHT_MODE").Value, Is.EqualTo("sandbox"));
            Assert.That(pod.Spec.Volumes.Single(v => v.Name == "workspace").EmptyDir.SizeLimit.ToString(), Is.EqualTo("1Gi"));
        });
    }

    [Test]
    public void Tolerations_and_node_selectors_reach_the_pod_only_with_keys_the_platform_allows()
    {
        var spec = new SandboxSpec
        {
            Image = "python:3.12",
            Tolerations = [new V1Toleration { Key = "nvidia.com/gpu", OperatorProperty = "Exists", Effect = "NoSchedule" }],
            NodeSelector = new Dictionary<string, string> { ["kubernetes.io/arch"] = "arm64" },
        };
        var catalog = GpuCatalog.Default;

        var allowed = SandboxReconciler.Validate(Sandbox(spec), Options, catalog);
        var pod = SandboxPods.MakePod(Sandbox(spec), "runsc", null, Options);
        Assert.Multiple(() =>
        {
            Assert.That(allowed.Problems, Is.Empty);
            Assert.That(pod.Spec.Tolerations.Select(t => t.Key), Is.EqualTo(new[] { "nvidia.com/gpu" }));
            Assert.That(pod.Spec.NodeSelector, Is.EqualTo(new Dictionary<string, string> { ["kubernetes.io/arch"] = "arm64" }));
            Assert.That(SandboxPods.Shape(Sandbox(spec), "runsc", Options), Is.Null, "a sandbox placed by hand never takes a pool's warm pod");
        });

        // A tenant steering untrusted code onto the control plane or a dedicated pool, or tolerating everything.
        var forbidden = spec with
        {
            Tolerations =
            [
                new V1Toleration { Key = "node-role.kubernetes.io/control-plane", OperatorProperty = "Exists" },
                new V1Toleration { OperatorProperty = "Exists" },
            ],
            NodeSelector = new Dictionary<string, string> { ["dedicated"] = "payments" },
        };
        var refused = SandboxReconciler.Validate(Sandbox(forbidden), Options, catalog).Problems;
        Assert.That(refused, Is.EquivalentTo(new[]
        {
            "tolerations[0]: taint key 'node-role.kubernetes.io/control-plane' is not allowed here (allowed: nvidia.com/gpu)",
            "tolerations[1]: a toleration without a key tolerates every taint; name the taint's key",
            "nodeSelector: label key 'dedicated' is not allowed here (allowed: " + string.Join(", ", SandboxOptions.DefaultNodeSelectorKeys) + ")",
        }));

        // A platform that allows none.
        var closed = Options with { AllowedTolerationKeys = [], AllowedNodeSelectorKeys = [] };
        Assert.That(SandboxReconciler.Validate(Sandbox(spec), closed, catalog).Problems, Has.Count.EqualTo(2).And.All.Contains("allowed: none"));
    }

    [Test]
    public void A_gpu_sandboxs_own_tolerations_join_the_gpu_one()
    {
        var spec = new SandboxSpec
        {
            Image = "python:3.12",
            Gpu = new GpuRequirement { Type = GpuType.L4, Count = 1 },
            Tolerations = [new V1Toleration { Key = "example.com/spot", OperatorProperty = "Exists" }],
        };
        var (_, placement, _, _, _) = SandboxReconciler.Validate(Sandbox(spec), Options with { AllowedTolerationKeys = ["example.com/spot"] }, GpuCatalog.Default);

        var pod = SandboxPods.MakePod(Sandbox(spec), "runsc", placement, Options);

        Assert.That(pod.Spec.Tolerations.Select(t => t.Key), Is.EquivalentTo(new[] { "example.com/spot", "nvidia.com/gpu" }));
    }

    [Test]
    public void The_sandbox_command_reaches_the_agent_as_json_and_the_agent_stays_the_entrypoint()
    {
        var spec = new SandboxSpec { Image = "python:3.12", Command = ["python", "-c", "print(\"hi\")"] };

        var container = SandboxPods.MakePod(Sandbox(spec), "runsc", null, Options).Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer);

        Assert.That(container.Command, Is.EqualTo(new[] { SandboxPods.AgentPath }));
        Assert.That(container.Args, Is.Null);
        var value = container.Env.Single(e => e.Name == SandboxPods.CommandVariable).Value;
        Assert.That(System.Text.Json.JsonSerializer.Deserialize<string[]>(value), Is.EqualTo(spec.Command));
        Assert.That(SandboxPods.MakePod(Sandbox(new SandboxSpec { Image = "python:3.12" }), "runsc", null, Options).Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer).Env
            .Select(e => e.Name), Does.Not.Contain(SandboxPods.CommandVariable), "no command: the agent alone");
    }

    [Test]
    public void A_gpu_sandbox_is_placed_like_a_function()
    {
        var spec = new SandboxSpec { Image = "torch:2", Gpu = new GpuRequirement { Type = GpuType.L4, Count = 1 } };
        var (placement, problems) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);
        Assert.That(problems, Is.Empty);

        var pod = SandboxPods.MakePod(Sandbox(spec), "kata", placement, Options);

        Assert.That(pod.Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer).Resources.Limits["nvidia.com/gpu"].ToString(), Is.EqualTo("1"));
        Assert.That(pod.Spec.Tolerations.Select(t => t.Key), Does.Contain("nvidia.com/gpu"));
        Assert.That(pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms.Single().MatchExpressions.Single().Values,
            Is.EquivalentTo(placement!.AllProducts));
        Assert.That(pod.Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer).Env.Any(e => e.Name == "NVIDIA_VISIBLE_DEVICES"), Is.False);
    }

    [TestCase(null, "runsc", null)]
    [TestCase("kata", "kata", null)]
    [TestCase("runc", null, "'runc' is not allowed here (allowed: runsc, kata)")]
    public void Runtime_classes_come_from_the_allowlist(string? asked, string? expected, string? problem)
    {
        var (runtime, error) = SandboxPods.RuntimeClass(Sandbox(new SandboxSpec { Image = "x", RuntimeClassName = asked }), Options);
        Assert.That((runtime, error), Is.EqualTo((expected, problem is null ? null : $"runtimeClassName {problem}")));
    }

    [Test]
    public void The_policy_denies_all_but_the_gateway_in_and_the_allowlist_out()
    {
        var open = SandboxPods.MakeNetworkPolicy(Sandbox(new SandboxSpec
        {
            Image = "x",
            Network = new SandboxNetwork { AllowCidrs = ["10.1.0.0/16", "192.168.0.0/24"], AllowDns = false },
        }), Options);
        Assert.That(open.Spec.Egress.Single().To.Select(t => t.IpBlock.Cidr), Is.EqualTo(new[] { "10.1.0.0/16", "192.168.0.0/24" }));
        Assert.That(open.Spec.Ingress.Single().FromProperty.Single().NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"], Is.EqualTo("pilotlight-system"));

        var closed = SandboxPods.MakeNetworkPolicy(Sandbox(new SandboxSpec { Image = "x" }), Options);
        Assert.That(closed.Spec.PolicyTypes, Is.EquivalentTo(new[] { "Ingress", "Egress" }));
        Assert.That(closed.Spec.Egress, Is.Empty);
    }

    [Test]
    public void Every_sandbox_pod_is_metered_per_namespace_and_only_the_scrapers_reach_the_meter()
    {
        var spec = new SandboxSpec { Image = "torch:2", Gpu = new GpuRequirement { Type = GpuType.L4, Count = 2 }, Resources = new ComputeResources { Cpu = new("2"), Memory = new("4Gi") } };
        var (placement, _) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);
        var pod = SandboxPods.MakePod(Sandbox(spec), "runsc", placement, Options);

        var meter = pod.Spec.Containers.Single(c => c.Name == FunctionPods.MeterContainer);
        var env = meter.Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.That((env["PILOTLIGHT_FUNCTION"], env["PILOTLIGHT_GPU_TYPE"], env["PILOTLIGHT_GPU_COUNT"], env["PILOTLIGHT_CPU_REQUEST"], env["PILOTLIGHT_MEMORY_REQUEST"]),
            Is.EqualTo((SandboxPods.UsageFunction, "L4", "2", "2", "4Gi")), "the sandbox's allocation, under one bounded label value");
        Assert.That(meter.VolumeMounts.Select(m => m.Name), Is.EqualTo(new[] { FunctionPods.MeterVolume }));
        Assert.That(pod.Spec.Containers.Single(c => c.Name == SandboxPods.SandboxContainer).VolumeMounts.Select(m => m.Name),
            Does.Not.Contain(FunctionPods.MeterVolume), "the untrusted container cannot touch the meter's checkpoint");
        Assert.That(meter.Resources.Limits.Keys, Is.SupersetOf(new[] { "cpu", "memory" }));

        var unscraped = SandboxPods.MakeNetworkPolicy(Sandbox(spec), Options);
        Assert.That(unscraped.Spec.Ingress.SelectMany(r => r.Ports).Select(p => p.Port.Value), Is.EqualTo(new[] { "8443" }), "no scraper configured: the agent port only");

        var scraped = SandboxPods.MakeNetworkPolicy(Sandbox(spec), Options with
        {
            MetricsScraperNamespaceLabels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = "monitoring" },
        });
        var rule = scraped.Spec.Ingress.Single(r => r.Ports.Single().Port.Value == "9102");
        Assert.That(rule.FromProperty.Single().NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"], Is.EqualTo("monitoring"));
    }

    [TestCase("POST", "exec", "create", "exec")]
    [TestCase("GET", "files", "get", "files")]
    [TestCase("GET", "files/list", "get", "files")]
    [TestCase("PUT", "files", "update", "files")]
    [TestCase("DELETE", "files", "update", "files")]
    [TestCase("GET", "archive", "get", "files")]
    [TestCase("PUT", "archive", "update", "files")]
    [TestCase("POST", "terminate", "update", "terminate")]
    public void Each_gateway_operation_needs_one_rbac_permission(string method, string operation, string verb, string subresource) =>
        Assert.That(SandboxApi.Permission(method, operation), Is.EqualTo((verb, subresource)));

    [TestCase("GET", "exec")]
    [TestCase("POST", "files/../../x")]
    [TestCase("GET", "activity")]
    public void Anything_else_is_no_operation(string method, string operation) =>
        Assert.That(SandboxApi.Permission(method, operation), Is.Null);
}
