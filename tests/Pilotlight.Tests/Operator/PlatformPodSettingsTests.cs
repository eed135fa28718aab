using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Contracts;
using Pilotlight.Operator;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Prewarm;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator;

/// <summary>
/// What the platform sets for every pod the operator makes (chart values turned into flags): pull secrets for the
/// platform's images, the reservation PriorityClass, the gateway namespace of sandbox policies, and the log settings.
/// </summary>
public sealed class PlatformPodSettingsTests
{
    private static readonly FunctionPodOptions Pods = new() { PlatformImagePullSecrets = ["platform-registry", "shared"], ReservationPriorityClass = "team-x-reservation" };
    private static readonly SandboxOptions Sandboxes = new() { PlatformImagePullSecrets = ["platform-registry", "shared"] };

    private static GpuFunction Function(IReadOnlyList<V1LocalObjectReference>? secrets) => new()
    {
        Metadata = new V1ObjectMeta { Name = "llm", NamespaceProperty = "team-a", Uid = "uid-1" },
        Spec = new GpuFunctionSpec
        {
            Image = "vllm:0.6",
            Gpu = new GpuRequirement { Type = GpuType.L4, Count = 1 },
            ImagePullSecrets = secrets,
        },
    };

    private static FunctionPlacement Placement(GpuFunction function) => FunctionPlacement.Resolve(function.Spec.Gpu, GpuCatalog.Default).Placement!;

    private static string[] Names(IEnumerable<V1LocalObjectReference>? secrets) => [.. (secrets ?? []).Select(s => s.Name)];

    [Test]
    public void Every_pod_made_for_a_function_names_its_own_pull_secrets_then_the_platforms_once()
    {
        var function = Function([new V1LocalObjectReference { Name = "team-registry" }, new V1LocalObjectReference { Name = "shared" }]);
        var placement = Placement(function);
        var serving = FunctionPods.MakePod(function, placement, Pods);
        string[] expected = ["team-registry", "shared", "platform-registry"];
        Assert.Multiple(() =>
        {
            Assert.That(Names(serving.Spec.ImagePullSecrets), Is.EqualTo(expected));
            Assert.That(Names(FunctionPods.AsWarm(serving).Spec.ImagePullSecrets), Is.EqualTo(expected));
            Assert.That(Names(PrewarmResources.PrePull(function, placement, Pods).Spec.Template.Spec.ImagePullSecrets), Is.EqualTo(expected));
            // A placeholder runs only the meter image: the platform's secrets alone.
            Assert.That(Names(PrewarmResources.Placeholder(function, placement, Pods).Spec.ImagePullSecrets), Is.EqualTo(new[] { "platform-registry", "shared" }));
        });
    }

    [Test]
    public void Without_platform_secrets_pods_are_as_before()
    {
        var function = Function(null);
        var placement = Placement(function);
        var options = new FunctionPodOptions();
        Assert.Multiple(() =>
        {
            Assert.That(FunctionPods.MakePod(function, placement, options).Spec.ImagePullSecrets, Is.Null);
            Assert.That(PrewarmResources.Placeholder(function, placement, options).Spec.ImagePullSecrets, Is.Null);
            Assert.That(PrewarmResources.Placeholder(function, placement, options).Spec.PriorityClassName, Is.EqualTo("pilotlight-reservation"));
        });
    }

    [Test]
    public void Changing_the_platform_secrets_does_not_roll_serving_pods()
    {
        var function = Function([new V1LocalObjectReference { Name = "team-registry" }]);
        var placement = Placement(function);
        var before = FunctionPods.MakePod(function, placement, new FunctionPodOptions());
        var after = FunctionPods.MakePod(function, placement, Pods);
        Assert.That(after.Metadata.Labels[Pilotlight.Contracts.FunctionLabels.TemplateHash],
            Is.EqualTo(before.Metadata.Labels[Pilotlight.Contracts.FunctionLabels.TemplateHash]));

        // The function's own secrets are its spec: changing them does make new pods.
        var changed = FunctionPods.MakePod(Function([new V1LocalObjectReference { Name = "other" }]), placement, Pods);
        Assert.That(changed.Metadata.Labels[Pilotlight.Contracts.FunctionLabels.TemplateHash],
            Is.Not.EqualTo(after.Metadata.Labels[Pilotlight.Contracts.FunctionLabels.TemplateHash]));
    }

    [Test]
    public void Placeholders_run_at_the_configured_priority_class_which_the_operator_creates_under_that_name()
    {
        var function = Function(null);
        Assert.Multiple(() =>
        {
            Assert.That(PrewarmResources.Placeholder(function, Placement(function), Pods).Spec.PriorityClassName, Is.EqualTo("team-x-reservation"));
            Assert.That(PrewarmResources.PriorityClass("team-x-reservation").Metadata.Name, Is.EqualTo("team-x-reservation"));
        });
    }

    [Test]
    public void Sandbox_and_warm_pool_pods_name_the_sandboxs_pull_secrets_then_the_platforms()
    {
        var sandbox = new Sandbox
        {
            Metadata = new V1ObjectMeta { Name = "scratch", NamespaceProperty = "team-a", Uid = "uid-1" },
            Spec = new SandboxSpec { Image = "registry.example/agent:1", ImagePullSecrets = [new V1LocalObjectReference { Name = "team-registry" }] },
        };
        var pool = new SandboxWarmPool
        {
            Metadata = new V1ObjectMeta { Name = "pool", NamespaceProperty = "team-a", Uid = "uid-2" },
            Spec = new SandboxWarmPoolSpec { Image = "python:3.12", Replicas = 1 },
        };
        Assert.Multiple(() =>
        {
            Assert.That(Names(SandboxPods.MakePod(sandbox, "runsc", null, Sandboxes).Spec.ImagePullSecrets),
                Is.EqualTo(new[] { "team-registry", "platform-registry", "shared" }));
            Assert.That(Names(SandboxPods.MakePoolPod(pool, "runsc", Sandboxes).Spec.ImagePullSecrets), Is.EqualTo(new[] { "platform-registry", "shared" }));
            var privatePool = pool with { Spec = pool.Spec with { ImagePullSecrets = [new V1LocalObjectReference { Name = "team-registry" }] } };
            Assert.That(Names(SandboxPods.MakePoolPod(privatePool, "runsc", Sandboxes).Spec.ImagePullSecrets),
                Is.EqualTo(new[] { "team-registry", "platform-registry", "shared" }), "a pool of a private image pulls it with its own secret");
            Assert.That(SandboxPods.MakePoolPod(privatePool, "runsc", Sandboxes).Metadata.Labels[SandboxPods.ShapeLabel],
                Is.EqualTo(SandboxPods.MakePoolPod(pool, "runsc", Sandboxes).Metadata.Labels[SandboxPods.ShapeLabel]),
                "pull secrets are not part of the shape: a sandbox of the same image claims the pod whatever secrets it names");
            Assert.That(SandboxPods.MakePod(sandbox with { Spec = sandbox.Spec with { ImagePullSecrets = null } }, "runsc", null, new SandboxOptions()).Spec.ImagePullSecrets,
                Is.Null);
        });
    }

    [Test]
    public void A_sandboxs_policy_admits_the_gateway_from_the_namespace_it_was_told()
    {
        var sandbox = new Sandbox
        {
            Metadata = new V1ObjectMeta { Name = "scratch", NamespaceProperty = "team-a", Uid = "uid-1" },
            Spec = new SandboxSpec { Image = "python:3.12" },
        };
        var flags = Flags.Parse(["--gateway-namespace", "platform"]);
        Assert.That(flags.Error, Is.Null);
        var policy = SandboxPods.MakeNetworkPolicy(sandbox, new SandboxOptions { GatewayNamespaceLabels = SandboxOptions.GatewayNamespace(flags.Get("gateway-namespace")!) });
        var agent = policy.Spec.Ingress[0].FromProperty.Single();
        Assert.That(agent.NamespaceSelector.MatchLabels, Is.EquivalentTo(new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = "platform" }));
        Assert.That(SandboxPods.MakeNetworkPolicy(sandbox, new SandboxOptions()).Spec.Ingress[0].FromProperty.Single().NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"],
            Is.EqualTo("pilotlight-system"), "the default without the flag");
    }

    [Test]
    public void The_platform_flags_parse_into_what_the_operator_uses()
    {
        var flags = Flags.Parse(["--platform-image-pull-secrets", "a, b,a", "--reservation-priority-class", "r-reservation", "--log-format", "json", "--log-level", "warning"]);
        Assert.That(flags.Error, Is.Null);
        Assert.Multiple(() =>
        {
            Assert.That(flags.PlatformImagePullSecrets, Is.EqualTo(new[] { "a", "b" }));
            Assert.That(flags.Logging, Is.EqualTo(new ConsoleLogSettings(Json: true, Level: Microsoft.Extensions.Logging.LogLevel.Warning)));
            Assert.That(Flags.Parse([]).Logging, Is.EqualTo(new ConsoleLogSettings()), "text at Information by default");
        });
    }

    [Test]
    public void The_operators_log_settings_reach_every_sidecar_without_rolling_serving_pods_or_changing_a_warm_shape()
    {
        var log = new ConsoleLogSettings(Json: true, Level: Microsoft.Extensions.Logging.LogLevel.Debug).SidecarEnvironment();
        Assert.That(log, Is.EqualTo(new KeyValuePair<string, string>[] { new("PILOTLIGHT_LOG_FORMAT", "json"), new("PILOTLIGHT_LOG_LEVEL", "Debug") }));
        Assert.That(new ConsoleLogSettings().SidecarEnvironment(), Is.Empty, "the defaults add nothing to any pod");

        var function = Function(null);
        var placement = Placement(function);
        var plain = FunctionPods.MakePod(function, placement, new FunctionPodOptions());
        var logged = FunctionPods.MakePod(function, placement, new FunctionPodOptions { SidecarLog = log });
        static Dictionary<string, string> Env(V1Pod pod, string container) =>
            (pod.Spec.Containers.Single(c => c.Name == container).Env ?? []).Where(e => e.Value is not null).ToDictionary(e => e.Name, e => e.Value);
        var sandbox = new Sandbox { Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = "team-a", Uid = "uid-s" }, Spec = new SandboxSpec { Image = "tools:1" } };
        var sandboxPod = SandboxPods.MakePod(sandbox, null, null, new SandboxOptions { SidecarLog = log });
        Assert.Multiple(() =>
        {
            foreach (var container in new[] { FunctionPods.ShimContainer, FunctionPods.MeterContainer })
            {
                Assert.That(Env(logged, container), Does.ContainKey("PILOTLIGHT_LOG_FORMAT").WithValue("json").And.ContainKey("PILOTLIGHT_LOG_LEVEL").WithValue("Debug"), container);
                Assert.That(Env(plain, container), Does.Not.ContainKey("PILOTLIGHT_LOG_FORMAT"), container);
            }

            Assert.That(Env(logged, FunctionPods.FunctionContainer), Does.Not.ContainKey("PILOTLIGHT_LOG_FORMAT"), "the user's container is the user's");
            Assert.That(logged.Metadata.Labels[FunctionLabels.TemplateHash], Is.EqualTo(plain.Metadata.Labels[FunctionLabels.TemplateHash]),
                "a new log setting rolls no serving pod");
            Assert.That(Env(sandboxPod, SandboxPods.SandboxContainer), Does.ContainKey("PILOTLIGHT_LOG_FORMAT").WithValue("json"), "the agent");
            Assert.That(Env(sandboxPod, FunctionPods.MeterContainer), Does.ContainKey("PILOTLIGHT_LOG_LEVEL").WithValue("Debug"), "the sandbox's meter");
            Assert.That(SandboxPods.Shape(sandbox, null, new SandboxOptions { SidecarLog = log }), Is.EqualTo(SandboxPods.Shape(sandbox, null, new SandboxOptions())),
                "warm pods made before still match");
        });
    }

    [TestCase("--log-format", "xml")]
    [TestCase("--log-level", "verbose")]
    [TestCase("--log-level", "None")]
    [TestCase("--log-level", "3")]
    [TestCase("--gateway-namespace", "Platform")]
    [TestCase("--gateway-namespace", "a.b")]
    [TestCase("--reservation-priority-class", "-bad")]
    [TestCase("--platform-image-pull-secrets", "ok,Not_OK")]
    public void Bad_platform_flags_are_refused_with_the_flag_named(string flag, string value) =>
        Assert.That(Flags.Parse([flag, value]).Error, Does.Contain(flag));
}
