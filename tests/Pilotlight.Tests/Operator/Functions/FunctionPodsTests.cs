using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Tests.Operator.Functions;

public sealed class FunctionPodsTests
{
    private static readonly FunctionPodOptions Options = new() { ShimImage = "shim:test", ShimPort = 8099 };

    private static GpuFunction Function(GpuFunctionSpec spec) => new()
    {
        Metadata = new V1ObjectMeta { Name = "llm", NamespaceProperty = "team-a", Uid = "uid-1" },
        Spec = spec,
    };

    private static V1Pod Make(GpuFunctionSpec spec)
    {
        var (placement, problems) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);
        Assert.That(problems, Is.Empty);
        return FunctionPods.MakePod(Function(spec), placement!, Options);
    }

    private static V1Container UserContainer(V1Pod pod) => pod.Spec.Containers.Single(c => c.Name == FunctionPods.FunctionContainer);

    [Test]
    public void EveryFieldOfTheSpecReachesThePod()
    {
        var spec = new GpuFunctionSpec
        {
            Image = "vllm:0.6",
            Command = ["python", "-m", "server"],
            Args = ["--model", "llama"],
            Env = [new V1EnvVar { Name = "MODEL", Value = "llama" }],
            EnvFrom = [new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = "hf-token" } }],
            Port = 9000,
            HealthPath = "/health",
            Gpu = new GpuRequirement { Type = GpuType.H100, Count = 2 },
            Resources = new ComputeResources { Cpu = new("4"), Memory = new("32Gi"), EphemeralStorage = new("50Gi") },
            Timeout = "120s",
            Volumes = [new V1Volume { Name = "weights", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = "llama" } }],
            VolumeMounts = [new V1VolumeMount { Name = "weights", MountPath = "/models" }],
            RuntimeClassName = "nvidia",
            ServiceAccountName = "inference",
            ImagePullSecrets = [new V1LocalObjectReference { Name = "registry" }],
            NodeSelector = new Dictionary<string, string> { ["zone"] = "a" },
            Tolerations = [new V1Toleration { Key = "dedicated", OperatorProperty = "Equal", Value = "ml", Effect = "NoSchedule" }],
        };

        var pod = Make(spec);
        var user = UserContainer(pod);

        Assert.Multiple(() =>
        {
            Assert.That(user.Image, Is.EqualTo("vllm:0.6"));
            Assert.That(user.Command, Is.EqualTo(spec.Command));
            Assert.That(user.Args, Is.EqualTo(spec.Args));
            Assert.That(user.Env.Select(e => e.Name), Is.EqualTo(new[] { "MODEL" }));
            Assert.That(user.EnvFrom.Single().SecretRef.Name, Is.EqualTo("hf-token"));
            Assert.That(user.Ports.Single().ContainerPort, Is.EqualTo(9000));
            Assert.That(user.Resources.Requests["cpu"].ToString(), Is.EqualTo("4"));
            Assert.That(user.Resources.Requests["memory"].ToString(), Is.EqualTo("32Gi"));
            Assert.That(user.Resources.Limits["memory"].ToString(), Is.EqualTo("32Gi"));
            Assert.That(user.Resources.Requests["ephemeral-storage"].ToString(), Is.EqualTo("50Gi"));
            Assert.That(user.Resources.Limits["nvidia.com/gpu"].ToString(), Is.EqualTo("2"));
            Assert.That(user.VolumeMounts.Select(m => m.MountPath), Is.EqualTo(new[] { "/models", FunctionPods.SharedPath }));
            Assert.That(pod.Spec.Volumes.Single(v => v.PersistentVolumeClaim is not null).PersistentVolumeClaim.ClaimName, Is.EqualTo("llama"));
            Assert.That(pod.Spec.RuntimeClassName, Is.EqualTo("nvidia"));
            Assert.That(pod.Spec.ServiceAccountName, Is.EqualTo("inference"));
            Assert.That(pod.Spec.ImagePullSecrets.Single().Name, Is.EqualTo("registry"));
            Assert.That(pod.Spec.NodeSelector["zone"], Is.EqualTo("a"));
            Assert.That(pod.Spec.Tolerations.Select(t => t.Key), Is.EquivalentTo(new[] { "dedicated", "nvidia.com/gpu" }));
            Assert.That(pod.Spec.TerminationGracePeriodSeconds, Is.EqualTo(120 + Options.DrainGraceSeconds));

            var shim = pod.Spec.Containers.Single(c => c.Name == FunctionPods.ShimContainer);
            Assert.That(shim.Image, Is.EqualTo("shim:test"));
            var shimEnv = shim.Env.ToDictionary(e => e.Name, e => e.Value);
            Assert.That(shimEnv["PILOTLIGHT_UPSTREAM"], Is.EqualTo("http://127.0.0.1:9000"));
            Assert.That(shimEnv["PILOTLIGHT_HEALTH_PATH"], Is.EqualTo("/health"));
            Assert.That(shimEnv["PILOTLIGHT_GPU_COUNT"], Is.EqualTo("2"));
            Assert.That(shimEnv["PILOTLIGHT_REQUEST_TIMEOUT"], Is.EqualTo("120s"));
            Assert.That(shim.ReadinessProbe.HttpGet.Port.Value, Is.EqualTo("8099"));
        });
    }

    [Test]
    public void GpuPlacementRequiresTheProductsAndPrefersInFallbackOrder()
    {
        var pod = Make(new GpuFunctionSpec
        {
            Image = "x",
            Gpu = new GpuRequirement { Type = GpuType.H100, Count = 1, Fallbacks = [GpuType.A100_80GB] },
        });

        var affinity = pod.Spec.Affinity.NodeAffinity;
        var required = affinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms.Single().MatchExpressions.Single();
        Assert.That(required.Key, Is.EqualTo("nvidia.com/gpu.product"));
        Assert.That(required.OperatorProperty, Is.EqualTo("In"));
        Assert.That(required.Values, Is.EquivalentTo(GpuCatalog.Default.ProductsOf(GpuType.H100).Concat(GpuCatalog.Default.ProductsOf(GpuType.A100_80GB))));

        var preferred = affinity.PreferredDuringSchedulingIgnoredDuringExecution;
        Assert.That(preferred, Has.Count.EqualTo(2));
        Assert.That(preferred[0].Preference.MatchExpressions.Single().Values, Does.Contain("NVIDIA-H100-80GB-HBM3"));
        Assert.That(preferred[0].Weight, Is.GreaterThan(preferred[1].Weight));
        Assert.That(pod.Spec.Tolerations.Single(), Has.Property("Key").EqualTo("nvidia.com/gpu").And.Property("Effect").EqualTo("NoSchedule"));
    }

    [Test]
    public void NoGpuMeansNoGpuLeaksIn()
    {
        foreach (var gpu in new GpuRequirement?[] { null, new() { Type = GpuType.L4, Count = 0 } })
        {
            var user = UserContainer(Make(new GpuFunctionSpec { Image = "x", Gpu = gpu }));
            Assert.That(user.Env.Single(e => e.Name == "NVIDIA_VISIBLE_DEVICES").Value, Is.EqualTo("void"));
            Assert.That(user.Resources?.Limits?.ContainsKey("nvidia.com/gpu") ?? false, Is.False);
        }
    }

    [Test]
    public void OwnedByTheFunctionAndLabelledWithTheTemplateHash()
    {
        var pod = Make(new GpuFunctionSpec { Image = "x" });

        var owner = pod.Metadata.OwnerReferences.Single();
        Assert.That((owner.Kind, owner.Name, owner.Uid, owner.Controller), Is.EqualTo(("GpuFunction", "llm", "uid-1", (bool?)true)));
        Assert.That(pod.Metadata.Labels[FunctionLabels.Function], Is.EqualTo("llm"));
        Assert.That(pod.Metadata.GenerateName, Is.EqualTo($"llm-{pod.Metadata.Labels[FunctionLabels.TemplateHash]}-"));
        Assert.That(pod.Metadata.NamespaceProperty, Is.EqualTo("team-a"));
    }

    [Test]
    public void TheTemplateHashFollowsTheSpecAndOnlyTheSpec()
    {
        string Hash(GpuFunctionSpec spec) => Make(spec).Metadata.Labels[FunctionLabels.TemplateHash];

        var spec = new GpuFunctionSpec { Image = "x:1" };
        Assert.That(Hash(spec), Is.EqualTo(Hash(spec with { })));
        Assert.That(Hash(spec with { Image = "x:2" }), Is.Not.EqualTo(Hash(spec)));
    }

    [Test]
    public void NewSidecarImagesReachNewPodsWithoutChangingTheTemplateHash()
    {
        // A chart upgrade restarts the operator with new --shim-image and --meter-image: pods made from now on get them,
        // and pods that serve keep running (same hash, so the rollout leaves them alone).
        var spec = new GpuFunctionSpec { Image = "x:1", Gpu = new GpuRequirement { Type = GpuType.L4 } };
        var (placement, _) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);
        var before = FunctionPods.MakePod(Function(spec), placement!, Options);
        var upgraded = Options with { ShimImage = "shim:next", MeterImage = "meter:next" };
        var after = FunctionPods.MakePod(Function(spec), placement!, upgraded);

        Assert.That(after.Metadata.Labels[FunctionLabels.TemplateHash], Is.EqualTo(before.Metadata.Labels[FunctionLabels.TemplateHash]));
        Assert.That(after.Spec.Containers.Single(c => c.Name == FunctionPods.ShimContainer).Image, Is.EqualTo("shim:next"));
        Assert.That(after.Spec.Containers.Single(c => c.Name == FunctionPods.MeterContainer).Image, Is.EqualTo("meter:next"));
        Assert.That(after.Spec.InitContainers.Single().Image, Is.EqualTo("meter:next"));
        Assert.That(FunctionPods.AsWarm(after).Spec.Containers.Single(c => c.Name == FunctionPods.ShimContainer).Image, Is.EqualTo("shim:next"));

        // Other platform settings that change what the pod does still roll it.
        Assert.That(FunctionPods.MakePod(Function(spec), placement!, Options with { DrainGraceSeconds = 60 }).Metadata.Labels[FunctionLabels.TemplateHash],
            Is.Not.EqualTo(before.Metadata.Labels[FunctionLabels.TemplateHash]));
    }

    [Test]
    public void ANewRestartedAtRollsThePodsAndIsCopiedOntoThem()
    {
        var spec = new GpuFunctionSpec { Image = "x:1" };
        GpuFunction Restarted(string? at)
        {
            var function = Function(spec);
            function.Metadata.Annotations = at is null ? null : new Dictionary<string, string> { [FunctionLabels.RestartedAt] = at };
            return function;
        }

        string Hash(GpuFunction f) => FunctionPods.MakePod(f, FunctionPlacement.Resolve(null, GpuCatalog.Default).Placement!, Options).Metadata.Labels[FunctionLabels.TemplateHash];

        Assert.That(Hash(Restarted("2026-01-01T00:00:00Z")), Is.Not.EqualTo(Hash(Restarted(null))));
        Assert.That(Hash(Restarted("2026-01-02T00:00:00Z")), Is.Not.EqualTo(Hash(Restarted("2026-01-01T00:00:00Z"))));
        Assert.That(Hash(Restarted("2026-01-01T00:00:00Z")), Is.EqualTo(Hash(Restarted("2026-01-01T00:00:00Z"))));
        var pod = FunctionPods.MakePod(Restarted("2026-01-01T00:00:00Z"), FunctionPlacement.Resolve(null, GpuCatalog.Default).Placement!, Options);
        Assert.That(pod.Metadata.Annotations[FunctionLabels.RestartedAt], Is.EqualTo("2026-01-01T00:00:00Z"));
    }

    [Test]
    public void ServingPodsAreNotTheAutoscalersToEvictWarmPodsAndPlaceholdersAre()
    {
        var spec = new GpuFunctionSpec { Image = "x:1", Gpu = new GpuRequirement { Type = GpuType.L4 }, Prewarm = new PrewarmPolicy { ReservedReplicas = 1 } };
        var (placement, _) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);
        var serving = FunctionPods.MakePod(Function(spec), placement!, Options);
        var warm = FunctionPods.AsWarm(serving);
        var placeholder = Pilotlight.Operator.Prewarm.PrewarmResources.Placeholder(Function(spec), placement!, Options);

        Assert.That(serving.Metadata.Annotations[FunctionLabels.SafeToEvict], Is.EqualTo("false"));
        Assert.That(serving.Metadata.Annotations[FunctionLabels.DoNotDisrupt], Is.EqualTo("true"));
        Assert.That(warm.Metadata.Annotations[FunctionLabels.SafeToEvict], Is.EqualTo("true"));
        Assert.That(warm.Metadata.Annotations, Does.Not.ContainKey(FunctionLabels.DoNotDisrupt));
        Assert.That(placeholder.Metadata.Annotations[FunctionLabels.SafeToEvict], Is.EqualTo("true"));
        Assert.That(placeholder.Metadata.Annotations, Does.Not.ContainKey(FunctionLabels.DoNotDisrupt));
        Assert.That(FunctionPods.HasEvictionAnnotations(serving) && FunctionPods.HasEvictionAnnotations(warm), Is.True);

        // A warm pod relabelled serving (a claim) without its annotations is seen as missing them, and the other way round.
        warm.Metadata.Labels[FunctionLabels.Role] = FunctionLabels.RoleServing;
        Assert.That(FunctionPods.HasEvictionAnnotations(warm), Is.False);
        serving.Metadata.Labels[FunctionLabels.Role] = FunctionLabels.RoleWarm;
        Assert.That(FunctionPods.HasEvictionAnnotations(serving), Is.False);
    }

    [TestCase("H100", new[] { "h100" }, "spec.gpu.fallbacks[0]: lists h100, the requested type itself")]
    [TestCase("H100", new[] { "L4", "l4" }, "spec.gpu.fallbacks[1]: lists l4 twice")]
    public void ContradictoryFallbacksAreProblemsNotExceptions(string type, string[] fallbacks, string message)
    {
        var requirement = new GpuRequirement { Type = new GpuType(type), Fallbacks = [.. fallbacks.Select(f => new GpuType(f))] };
        var (placement, problems) = FunctionPlacement.Resolve(requirement, GpuCatalog.Default);

        Assert.That(placement, Is.Null);
        Assert.That(problems, Has.Some.Contains(message));
    }

    [Test]
    public void ATypeMissingFromTheCatalogIsAProblemNamingTheFieldAndTheKnownTypes()
    {
        var catalog = GpuCatalog.Parse("H100: [NVIDIA-H100-80GB-HBM3]\nA10: [NVIDIA-A10]");
        var (placement, problems) = FunctionPlacement.Resolve(new GpuRequirement { Type = GpuType.B200, Fallbacks = [GpuType.H100, new GpuType("K80")] }, catalog);

        Assert.That(placement, Is.Null);
        Assert.That(problems, Is.EqualTo(new[]
        {
            "spec.gpu.type: GPU type 'B200' is not in the platform's GPU catalog (known: A10, H100)",
            "spec.gpu.fallbacks[1]: GPU type 'K80' is not in the platform's GPU catalog (known: A10, H100)",
        }));
    }

    [Test]
    public void ACustomTypeResolvesToItsProductsInTheCatalogsSpelling()
    {
        var catalog = GpuCatalog.Parse("X1000: [NVIDIA-X1000, NVIDIA-X1000-PCIe]\nH100: [NVIDIA-H100-80GB-HBM3]");
        var (placement, problems) = FunctionPlacement.Resolve(new GpuRequirement { Type = new GpuType("x1000"), Fallbacks = [GpuType.H100] }, catalog);

        Assert.That(problems, Is.Empty);
        Assert.That(placement!.Requested!.Value.Name, Is.EqualTo("X1000"));
        Assert.That(placement.AllProducts, Is.EqualTo(new[] { "NVIDIA-X1000", "NVIDIA-X1000-PCIe", "NVIDIA-H100-80GB-HBM3" }));
        var meter = FunctionPods.MakePod(Function(new GpuFunctionSpec { Image = "m:1", Gpu = placement.Gpu }), placement, Options).Spec.Containers.Single(c => c.Name == FunctionPods.MeterContainer);
        Assert.That(meter.Env.Single(e => e.Name == "PILOTLIGHT_GPU_TYPE").Value, Is.EqualTo("X1000"), "usage is labelled with the catalog's name");
    }

    [Test]
    public void TheMeteringSidecarKnowsWhatThePodHoldsAndCheckpointsToAnEmptyDir()
    {
        var function = new GpuFunction
        {
            Metadata = new V1ObjectMeta { Name = "llm", NamespaceProperty = "team-a", Uid = "u1" },
            Spec = new GpuFunctionSpec
            {
                Image = "example/llm:1",
                Gpu = new GpuRequirement { Type = GpuType.H100, Count = 2 },
                Resources = new ComputeResources { Cpu = new ResourceQuantity("4"), Memory = new ResourceQuantity("32Gi") },
            },
        };
        var (placement, _) = FunctionPlacement.Resolve(function.Spec.Gpu, Pilotlight.Operator.Gpu.GpuCatalog.Default);

        var pod = FunctionPods.MakePod(function, placement!, new FunctionPodOptions());

        var meter = pod.Spec.Containers.Single(c => c.Name == FunctionPods.MeterContainer);
        var env = meter.Env.Where(e => e.Value is not null).ToDictionary(e => e.Name, e => e.Value);
        Assert.That(env["PILOTLIGHT_FUNCTION"], Is.EqualTo("llm"));
        Assert.That(env["PILOTLIGHT_GPU_TYPE"], Is.EqualTo("H100"));
        Assert.That(env["PILOTLIGHT_GPU_COUNT"], Is.EqualTo("2"));
        Assert.That(env["PILOTLIGHT_CPU_REQUEST"], Is.EqualTo("4"));
        Assert.That(env["PILOTLIGHT_MEMORY_REQUEST"], Is.EqualTo("32Gi"));
        Assert.That(meter.Env.Single(e => e.Name == "PILOTLIGHT_NAMESPACE").ValueFrom.FieldRef.FieldPath, Is.EqualTo("metadata.namespace"));
        Assert.That(meter.Resources.Limits, Does.Not.ContainKey("nvidia.com/gpu"), "the sidecar holds no GPU of its own");
        Assert.That(meter.VolumeMounts.Single().Name, Is.EqualTo(FunctionPods.MeterVolume));
        Assert.That(pod.Spec.Volumes.Single(v => v.Name == FunctionPods.MeterVolume).EmptyDir, Is.Not.Null);
        Assert.That(pod.Spec.ShareProcessNamespace, Is.True, "the sidecar meters the pod's processes through /proc");
    }

    [Test]
    public void The_gpu_check_runs_in_the_container_that_is_given_the_gpus()
    {
        var pod = Make(new GpuFunctionSpec { Image = "m:1", Gpu = new GpuRequirement { Type = GpuType.H100, Count = 2 } });
        var user = UserContainer(pod);

        Assert.Multiple(() =>
        {
            var tools = pod.Spec.InitContainers.Single();
            Assert.That(tools.Name, Is.EqualTo(FunctionPods.ToolsContainer));
            Assert.That(tools.Args, Is.EqualTo(new[] { "install", FunctionPods.GpuProbePath }));
            Assert.That(tools.Resources.Limits.ContainsKey("nvidia.com/gpu"), Is.False, "the tools hold no GPU");
            Assert.That(user.ReadinessProbe.Exec.Command,
                Is.EqualTo(new[] { FunctionPods.GpuProbePath, "gpu-probe", "--expect", "2", "--write", FunctionPods.GpuReportPath }));
            Assert.That(user.VolumeMounts.Single().Name, Is.EqualTo(FunctionPods.MeterVolume));
            foreach (var name in new[] { FunctionPods.ShimContainer, FunctionPods.MeterContainer })
            {
                var sidecar = pod.Spec.Containers.Single(c => c.Name == name);
                Assert.That(sidecar.Env.Single(e => e.Name == "PILOTLIGHT_GPU_REPORT").Value, Is.EqualTo(FunctionPods.GpuReportPath), name);
                Assert.That(sidecar.VolumeMounts.Single().MountPath, Is.EqualTo(FunctionPods.SharedPath), name);
            }
        });
    }

    [Test]
    public void A_function_without_gpus_gets_no_gpu_check()
    {
        var pod = Make(new GpuFunctionSpec { Image = "m:1", Gpu = new GpuRequirement { Type = GpuType.H100, Count = 0 } });

        Assert.That(pod.Spec.InitContainers, Is.Null);
        Assert.That(UserContainer(pod).ReadinessProbe, Is.Null);
        Assert.That(UserContainer(pod).VolumeMounts, Is.Null);
    }

    private static V1Container ShimContainer(V1Pod pod) => pod.Spec.Containers.Single(c => c.Name == FunctionPods.ShimContainer);

    private static string? ShimEnv(V1Pod pod, string name) => ShimContainer(pod).Env.SingleOrDefault(e => e.Name == name)?.Value;

    [Test]
    public void APodThatMustGoFinishesItsRequestsFirst()
    {
        var pod = Make(new GpuFunctionSpec { Image = "x", Timeout = "10m" });
        var preStop = UserContainer(pod).Lifecycle?.PreStop?.HttpGet;

        Assert.Multiple(() =>
        {
            Assert.That(ShimEnv(pod, "PILOTLIGHT_DRAIN_SECONDS"), Is.EqualTo("600"), "the shim drains for the function's timeout");
            Assert.That(ShimEnv(pod, "PILOTLIGHT_ADMIN_PORT"), Is.EqualTo("8022"));
            Assert.That(preStop?.Path, Is.EqualTo("/wait-for-drain"), "the user container is stopped only once the shim has drained");
            Assert.That(preStop?.Port?.Value, Is.EqualTo("8022"), "on the shim's admin port, which the gateway never forwards to");
            Assert.That(ShimContainer(pod).Ports.Select(p => p.ContainerPort), Is.EquivalentTo(new[] { 8099, 8022 }));
            Assert.That(pod.Spec.TerminationGracePeriodSeconds, Is.EqualTo(600 + Options.DrainGraceSeconds), "drain plus time for the server to exit");
        });
    }

    [TestCase("1.5s", "2", 17L)]
    [TestCase("300s", "300", 315L)]
    public void DrainTimeRoundsTheTimeoutUp(string timeout, string drain, long grace)
    {
        var pod = Make(new GpuFunctionSpec { Image = "x", Timeout = timeout });

        Assert.That((ShimEnv(pod, "PILOTLIGHT_DRAIN_SECONDS"), pod.Spec.TerminationGracePeriodSeconds), Is.EqualTo((drain, (long?)grace)));
    }

    [TestCase("5s", 1, 5)]
    [TestCase("1m", 2, 30)]
    [TestCase("5m", 10, 30)]
    [TestCase("30m", 10, 180)]
    [TestCase("7s", 1, 7)]
    [TestCase("95s", 3, 32)]
    public void TheStartupProbeIsBoundedByStartupTimeout(string startupTimeout, int period, int threshold)
    {
        var pod = Make(new GpuFunctionSpec { Image = "x", Port = 9000, HealthPath = "/health", StartupTimeout = startupTimeout });
        var probe = UserContainer(pod).StartupProbe;

        Assert.That(probe.HttpGet.Path, Is.EqualTo("/health"));
        Assert.That(probe.HttpGet.Port.Value, Is.EqualTo("9000"));
        Assert.That((probe.PeriodSeconds, probe.FailureThreshold), Is.EqualTo(((int?)period, (int?)threshold)));
        var budget = DurationSeconds(startupTimeout);
        Assert.That(period * threshold, Is.InRange(budget, budget + period - 1), "periodSeconds x failureThreshold is startupTimeout to within one period");
    }

    [Test]
    public void AHungServerIsRestartedByItsLivenessProbeWhichTheShimAnswers()
    {
        var probe = UserContainer(Make(new GpuFunctionSpec { Image = "x", Port = 9000, HealthPath = "/health" })).LivenessProbe;

        // The shim's admin port, not the user's server: a server busy with a long request is not restarted.
        Assert.That((probe.HttpGet.Path, probe.HttpGet.Port.Value, probe.PeriodSeconds, probe.TimeoutSeconds, probe.FailureThreshold),
            Is.EqualTo(("/live", "8022", (int?)10, (int?)5, (int?)6)));
    }

    private static int DurationSeconds(string text) => (int)Pilotlight.Api.Schema.DurationString.Parse(text).TotalSeconds;
}
