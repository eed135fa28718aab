using System.IO.Hashing;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;

namespace Pilotlight.Operator.Functions;

/// <summary>
/// Synthesises the pods and Service of a function. Pure: the function in, the
/// objects out; the reconciler does the I/O.
/// </summary>
public static class FunctionPods
{
    /// <summary>Name of the user's container.</summary>
    public const string FunctionContainer = "function";

    /// <summary>Name of the runtime shim sidecar.</summary>
    public const string ShimContainer = "runtime-shim";

    /// <summary>Name of the metering sidecar container.</summary>
    public const string MeterContainer = "metering";

    /// <summary>The emptyDir the metering sidecar checkpoints to.</summary>
    public const string MeterVolume = "pilotlight-meter";

    /// <summary>Init container that puts the GPU probe on the shared volume.</summary>
    public const string ToolsContainer = "pilotlight-tools";

    /// <summary>Where the shared volume is mounted in every container of the pod.</summary>
    public const string SharedPath = "/var/run/pilotlight";

    /// <summary>The GPU probe, copied from the metering image by <see cref="ToolsContainer"/>.</summary>
    public const string GpuProbePath = SharedPath + "/bin/pilotlight-meter";

    /// <summary>What the probe in the function container last saw of the pod's GPUs; the shim and the meter read it.</summary>
    public const string GpuReportPath = SharedPath + "/gpus.json";

    /// <summary>Extended resource the NVIDIA device plugin advertises.</summary>
    public const string GpuResource = "nvidia.com/gpu";

    /// <summary>Weight of the most preferred GPU type; each fallback gets less.</summary>
    private const int TopPreference = 100;

    /// <summary>
    /// The pod template of a function at its current spec, labelled with the hash
    /// of its content so a changed spec yields differently labelled pods.
    /// </summary>
    public static V1Pod MakePod(GpuFunction function, FunctionPlacement placement, FunctionPodOptions options)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(options);
        var name = function.Metadata.Name;
        var podSpec = MakePodSpec(function, placement, options);

        // The sidecar images are the platform's, not the function's: a new release of them reaches new pods (scale-up,
        // warm refills) and rolls no pod that serves. pilotlight.dev/restartedAt rolls them when someone asks.
        var restartedAt = RestartedAt(function);
        var hash = TemplateHash(MakePodSpec(function, placement, options with { ShimImage = "", MeterImage = "" }), restartedAt);
        // Not in the hash either: the platform's pull secrets are operator configuration, and changing them must not
        // roll every function pod in the cluster (pods made from now on get them).
        podSpec.ImagePullSecrets = PullSecrets.Merge(function.Spec.ImagePullSecrets, options.PlatformImagePullSecrets);
        AddSidecarLog(podSpec.Containers.Where(c => c.Name is ShimContainer or MeterContainer), options.SidecarLog);
        var annotations = new Dictionary<string, string> { [FunctionLabels.DefaultContainerAnnotation] = FunctionContainer };
        SetEvictionAnnotations(annotations, FunctionLabels.RoleServing);
        if (restartedAt is not null)
        {
            annotations[FunctionLabels.RestartedAt] = restartedAt;
        }

        return new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                GenerateName = $"{name}-{hash}-",
                NamespaceProperty = function.Metadata.NamespaceProperty,
                Labels = new Dictionary<string, string>
                {
                    [FunctionLabels.Function] = name,
                    [FunctionLabels.TemplateHash] = hash,
                    [FunctionLabels.Role] = FunctionLabels.RoleServing,
                    [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
                },
                Annotations = annotations,
                OwnerReferences = [OwnerReference(function)],
            },
            Spec = podSpec,
        };
    }

    /// <summary>Appends the operator's log settings (<paramref name="log"/>, possibly none) to each sidecar's environment.</summary>
    internal static void AddSidecarLog(IEnumerable<V1Container> sidecars, IReadOnlyList<KeyValuePair<string, string>> log)
    {
        foreach (var container in sidecars)
        {
            foreach (var (name, value) in log)
            {
                (container.Env ??= []).Add(new V1EnvVar { Name = name, Value = value });
            }
        }
    }

    /// <summary>The function's <c>pilotlight.dev/restartedAt</c> annotation, when it has one.</summary>
    public static string? RestartedAt(GpuFunction function) =>
        (function ?? throw new ArgumentNullException(nameof(function))).Metadata.Annotations?.TryGetValue(FunctionLabels.RestartedAt, out var at) == true ? at : null;

    /// <summary>
    /// What the node autoscalers are told about evicting a pod of <paramref name="role"/>, as a merge patch's
    /// annotations (a null value removes one). A serving pod is not theirs to move: it may have requests in flight
    /// at any moment (the gateway routes to it without asking the operator), and the operator removes it itself,
    /// idle only, once the function's scaledownWindow has passed with nothing in flight, which leaves its node empty
    /// for them. A warm pod serves nothing and is replaced on another node, so it is evictable; so are placeholders
    /// (<see cref="Prewarm.PrewarmResources.Placeholder"/>). Without the explicit "true", the Cluster Autoscaler would
    /// keep any node holding one for its emptyDir and its custom controller.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> EvictionAnnotations(string role) => role == FunctionLabels.RoleServing
        ? new Dictionary<string, string?> { [FunctionLabels.SafeToEvict] = "false", [FunctionLabels.DoNotDisrupt] = "true" }
        : new Dictionary<string, string?> { [FunctionLabels.SafeToEvict] = "true", [FunctionLabels.DoNotDisrupt] = null };

    private static void SetEvictionAnnotations(Dictionary<string, string> annotations, string role)
    {
        foreach (var (key, value) in EvictionAnnotations(role))
        {
            if (value is null)
            {
                annotations.Remove(key);
            }
            else
            {
                annotations[key] = value;
            }
        }
    }

    /// <summary>True when <paramref name="pod"/> carries the eviction annotations of its role.</summary>
    public static bool HasEvictionAnnotations(V1Pod pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var have = pod.Metadata.Annotations;
        return EvictionAnnotations(FunctionLabels.IsWarm(pod) ? FunctionLabels.RoleWarm : FunctionLabels.RoleServing)
            .All(kv => (have?.TryGetValue(kv.Key, out var v) == true ? v : null) == kv.Value);
    }

    private static V1PodSpec MakePodSpec(GpuFunction function, FunctionPlacement placement, FunctionPodOptions options)
    {
        var spec = function.Spec;
        return new V1PodSpec
        {
            Containers = [MakeFunctionContainer(spec, placement, options), MakeShimContainer(spec, placement, options), MakeMeterContainer(function, placement, options)],
            InitContainers = placement.GpuCount > 0 ? [MakeToolsContainer(options)] : null,
            Volumes = [.. spec.Volumes ?? [], new V1Volume { Name = MeterVolume, EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity("1Mi") } }],
            RuntimeClassName = spec.RuntimeClassName,
            ServiceAccountName = spec.ServiceAccountName,
            ImagePullSecrets = spec.ImagePullSecrets?.ToList(),
            NodeSelector = spec.NodeSelector?.ToDictionary(),
            Tolerations = MakeTolerations(spec, placement),
            Affinity = MakeAffinity(placement),
            RestartPolicy = "Always",
            EnableServiceLinks = false,
            SecurityContext = new V1PodSecurityContext
            {
                SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                RunAsNonRoot = options.PodSecurity == PodSecurityProfile.Restricted ? true : null,
            },
            // The metering sidecar sums CPU and memory over the pod's processes.
            ShareProcessNamespace = true,
            // The shim drains for up to `timeout`; the user's server then gets SIGTERM and DrainGraceSeconds to exit.
            TerminationGracePeriodSeconds = DrainSeconds(spec) + options.DrainGraceSeconds,
        };
    }

    /// <summary>The same pod as a warm standby: identical spec (so claiming it needs only a label), not routed to.</summary>
    public static V1Pod AsWarm(V1Pod template)
    {
        var labels = new Dictionary<string, string>(template.Metadata.Labels) { [FunctionLabels.Role] = FunctionLabels.RoleWarm };
        var annotations = new Dictionary<string, string>(template.Metadata.Annotations ?? new Dictionary<string, string>());
        SetEvictionAnnotations(annotations, FunctionLabels.RoleWarm);

        return new V1Pod
        {
            ApiVersion = template.ApiVersion,
            Kind = template.Kind,
            Metadata = new V1ObjectMeta
            {
                GenerateName = template.Metadata.GenerateName,
                NamespaceProperty = template.Metadata.NamespaceProperty,
                Labels = labels,
                Annotations = annotations,
                OwnerReferences = template.Metadata.OwnerReferences,
            },
            Spec = template.Spec,
        };
    }

    /// <summary>The ClusterIP Service in front of the function's ready pods, on the shim's port.</summary>
    public static V1Service MakeService(GpuFunction function, FunctionPodOptions options) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = new V1ObjectMeta
        {
            Name = function.Metadata.Name,
            NamespaceProperty = function.Metadata.NamespaceProperty,
            Labels = new Dictionary<string, string>
            {
                [FunctionLabels.Function] = function.Metadata.Name,
                [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
            },
            OwnerReferences = [OwnerReference(function)],
        },
        Spec = new V1ServiceSpec
        {
            // Warm standby pods are Ready too, but serve nothing until claimed.
            Selector = new Dictionary<string, string> { [FunctionLabels.Function] = function.Metadata.Name, [FunctionLabels.Role] = FunctionLabels.RoleServing },
            Ports = [new V1ServicePort { Name = "http", Port = 80, TargetPort = options.ShimPort, Protocol = "TCP" }],
        },
    };

    /// <summary>The label selector of a function's pods, as status reports it.</summary>
    public static string Selector(GpuFunction function) => $"{FunctionLabels.Function}={function.Metadata.Name}";

    /// <summary>Seconds the shim drains for when the pod must go: the function's <c>timeout</c>, rounded up.</summary>
    public static long DrainSeconds(GpuFunctionSpec spec) =>
        Math.Max(1, (long)Math.Ceiling(DurationString.Parse((spec ?? throw new ArgumentNullException(nameof(spec))).Timeout).TotalSeconds));

    /// <summary>
    /// The user container's startup probe: <c>healthPath</c> on <c>port</c>, answered 2xx within
    /// <c>startupTimeout</c> or the kubelet restarts the container. Period: startupTimeout / 30, between 1 s and
    /// 10 s; failureThreshold: as many periods as fit in startupTimeout (rounded up), so
    /// periodSeconds x failureThreshold is startupTimeout to within one period.
    /// </summary>
    public static V1Probe StartupProbe(GpuFunctionSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var budget = Math.Max(1, (int)Math.Ceiling(DurationString.Parse(spec.StartupTimeout).TotalSeconds));
        var period = Math.Clamp(budget / 30, 1, 10);
        return new V1Probe
        {
            HttpGet = new V1HTTPGetAction { Path = spec.HealthPath, Port = spec.Port },
            PeriodSeconds = period,
            TimeoutSeconds = 1,
            FailureThreshold = (budget + period - 1) / period,
        };
    }

    /// <summary>
    /// Liveness after startup, asked of the shim's admin port (<c>/live</c>) every 10 s, 5 s to answer, restarted
    /// after 6 misses in a row (about a minute). The shim answers alive while the pod has a request in flight (a
    /// model server busy with a long inference often cannot answer its health path, and the shim cuts any request
    /// past the function's timeout) and otherwise asks the user's <c>healthPath</c>: so only an idle server that has
    /// stopped answering for a minute (hung, deadlocked, a wedged GPU) is restarted, never one mid-inference.
    /// </summary>
    public static V1Probe LivenessProbe(FunctionPodOptions options) => new()
    {
        HttpGet = new V1HTTPGetAction { Path = "/live", Port = (options ?? throw new ArgumentNullException(nameof(options))).ShimAdminPort },
        PeriodSeconds = 10,
        TimeoutSeconds = 5,
        FailureThreshold = 6,
    };

    private static V1Container MakeFunctionContainer(GpuFunctionSpec spec, FunctionPlacement placement, FunctionPodOptions options)
    {
        // Defence in depth: admission and the reconciler refuse reserved names, and the pod never carries them either.
        var env = spec.Env?.Where(e => Admission.SpecRules.Reserved(e.Name) is null).ToList() ?? [];
        if (placement.GpuCount == 0)
        {
            // Without this the NVIDIA runtime hands a container that requested no GPU all of the node's GPUs. Set in
            // env, it also wins over the same name from an envFrom ConfigMap or Secret, whose keys admission cannot see.
            env.Add(new V1EnvVar { Name = "NVIDIA_VISIBLE_DEVICES", Value = "void" });
        }

        return new V1Container
        {
            Name = FunctionContainer,
            Image = spec.Image,
            Command = spec.Command?.ToList(),
            Args = spec.Args?.ToList(),
            Env = env.Count > 0 ? env : null,
            EnvFrom = spec.EnvFrom?.ToList(),
            Ports = [new V1ContainerPort { Name = "user-http", ContainerPort = spec.Port, Protocol = "TCP" }],
            Resources = MakeResources(spec.Resources, placement.GpuCount),
            VolumeMounts = placement.GpuCount > 0
                ? [.. spec.VolumeMounts ?? [], new V1VolumeMount { Name = MeterVolume, MountPath = SharedPath }]
                : spec.VolumeMounts?.ToList(),
            StartupProbe = StartupProbe(spec),
            LivenessProbe = LivenessProbe(options),
            SecurityContext = UserSecurityContext(options.PodSecurity),
            // Knative's way: the user's server gets SIGTERM only once the shim has drained (or its drain time,
            // the function's timeout, is over), so requests in flight finish.
            Lifecycle = new V1Lifecycle
            {
                PreStop = new V1LifecycleHandler
                {
                    HttpGet = new V1HTTPGetAction { Path = "/wait-for-drain", Port = options.ShimAdminPort },
                },
            },
            // Only this container is given the pod's GPUs by the device plugin, so the
            // check that they are there, and the sample of their use, run here.
            ReadinessProbe = placement.GpuCount > 0
                ? new V1Probe
                {
                    Exec = new V1ExecAction
                    {
                        Command = [GpuProbePath, "gpu-probe", "--expect", placement.GpuCount.ToString(System.Globalization.CultureInfo.InvariantCulture), "--write", GpuReportPath],
                    },
                    PeriodSeconds = 1,
                    TimeoutSeconds = 2,
                    FailureThreshold = 1,
                }
                : null,
        };
    }

    /// <summary>
    /// The user's container under <paramref name="profile"/>: never a way to more privilege than it started with, and
    /// under "restricted" no capabilities and no root (the user's image must then name a non-root user).
    /// </summary>
    internal static V1SecurityContext UserSecurityContext(PodSecurityProfile profile) => profile == PodSecurityProfile.Restricted
        ? new V1SecurityContext { AllowPrivilegeEscalation = false, RunAsNonRoot = true, Capabilities = new V1Capabilities { Drop = ["ALL"] } }
        : new V1SecurityContext { AllowPrivilegeEscalation = false };

    /// <summary>Copies the metering image's binary (which is also the GPU probe) onto the shared volume.</summary>
    internal static V1Container MakeToolsContainer(FunctionPodOptions options) => new()
    {
        Name = ToolsContainer,
        Image = options.MeterImage,
        Args = ["install", GpuProbePath],
        VolumeMounts = [new V1VolumeMount { Name = MeterVolume, MountPath = SharedPath }],
        Resources = new V1ResourceRequirements
        {
            Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("10m"), ["memory"] = new("16Mi") },
            Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("32Mi") },
        },
        SecurityContext = new V1SecurityContext
        {
            AllowPrivilegeEscalation = false,
            RunAsNonRoot = true,
            ReadOnlyRootFilesystem = true,
            Capabilities = new V1Capabilities { Drop = ["ALL"] },
        },
    };

    /// <summary>
    /// The metering sidecar: allocation per second from what the pod requests,
    /// checkpointed on an emptyDir so a restarted sidecar resumes.
    /// </summary>
    private static V1Container MakeMeterContainer(GpuFunction function, FunctionPlacement placement, FunctionPodOptions options)
    {
        var resources = function.Spec.Resources;
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        return new V1Container
        {
            Name = MeterContainer,
            Image = options.MeterImage,
            Env =
            [
                new V1EnvVar { Name = "PILOTLIGHT_NAMESPACE", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.namespace" } } },
                new V1EnvVar { Name = "PILOTLIGHT_FUNCTION", Value = function.Metadata.Name },
                new V1EnvVar { Name = "PILOTLIGHT_GPU_TYPE", Value = placement.Requested?.Name ?? "none" },
                new V1EnvVar { Name = "PILOTLIGHT_GPU_COUNT", Value = placement.GpuCount.ToString(invariant) },
                new V1EnvVar { Name = "PILOTLIGHT_CPU_REQUEST", Value = resources?.Cpu?.ToString() ?? "0" },
                new V1EnvVar { Name = "PILOTLIGHT_MEMORY_REQUEST", Value = resources?.Memory?.ToString() ?? "0" },
                new V1EnvVar { Name = "PILOTLIGHT_CHECKPOINT", Value = SharedPath + "/meter.json" },
                new V1EnvVar { Name = "PILOTLIGHT_GPU_REPORT", Value = GpuReportPath },
                new V1EnvVar { Name = "PILOTLIGHT_METRICS_PORT", Value = options.MeterPort.ToString(invariant) },
            ],
            Ports = [new V1ContainerPort { Name = "metrics", ContainerPort = options.MeterPort, Protocol = "TCP" }],
            VolumeMounts = [new V1VolumeMount { Name = MeterVolume, MountPath = SharedPath }],
            Resources = new V1ResourceRequirements
            {
                Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("10m"), ["memory"] = new("24Mi") },
                Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("64Mi") },
            },
            SecurityContext = new V1SecurityContext
            {
                AllowPrivilegeEscalation = false,
                RunAsNonRoot = true,
                ReadOnlyRootFilesystem = true,
                Capabilities = new V1Capabilities { Drop = ["ALL"] },
            },
        };
    }

    private static V1Container MakeShimContainer(GpuFunctionSpec spec, FunctionPlacement placement, FunctionPodOptions options) => new()
    {
        Name = ShimContainer,
        Image = options.ShimImage,
        Env =
        [
            new V1EnvVar { Name = "PILOTLIGHT_LISTEN_PORT", Value = options.ShimPort.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            new V1EnvVar { Name = "PILOTLIGHT_UPSTREAM", Value = $"http://127.0.0.1:{spec.Port}" },
            new V1EnvVar { Name = "PILOTLIGHT_HEALTH_PATH", Value = spec.HealthPath },
            new V1EnvVar { Name = "PILOTLIGHT_MAX_CONCURRENCY", Value = spec.Scaling.MaxConcurrency.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            new V1EnvVar { Name = "PILOTLIGHT_REQUEST_TIMEOUT", Value = spec.Timeout },
            new V1EnvVar { Name = "PILOTLIGHT_GPU_COUNT", Value = placement.GpuCount.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            new V1EnvVar { Name = "PILOTLIGHT_GPU_REPORT", Value = GpuReportPath },
            new V1EnvVar { Name = "PILOTLIGHT_DRAIN_SECONDS", Value = DrainSeconds(spec).ToString(System.Globalization.CultureInfo.InvariantCulture) },
            new V1EnvVar { Name = "PILOTLIGHT_ADMIN_PORT", Value = options.ShimAdminPort.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        ],
        Ports =
        [
            new V1ContainerPort { Name = "http", ContainerPort = options.ShimPort, Protocol = "TCP" },
            new V1ContainerPort { Name = "admin", ContainerPort = options.ShimAdminPort, Protocol = "TCP" },
        ],
        VolumeMounts = [new V1VolumeMount { Name = MeterVolume, MountPath = SharedPath, ReadOnlyProperty = true }],
        ReadinessProbe = new V1Probe
        {
            HttpGet = new V1HTTPGetAction { Path = "/ready", Port = options.ShimPort },
            PeriodSeconds = 1,
            FailureThreshold = 1,
        },
        Resources = new V1ResourceRequirements
        {
            Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("50m"), ["memory"] = new("32Mi") },
            Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("128Mi") },
        },
        SecurityContext = new V1SecurityContext
        {
            AllowPrivilegeEscalation = false,
            RunAsNonRoot = true,
            ReadOnlyRootFilesystem = true,
            Capabilities = new V1Capabilities { Drop = ["ALL"] },
        },
    };

    internal static V1ResourceRequirements? MakeResources(ComputeResources? resources, int gpus)
    {
        var requests = new Dictionary<string, ResourceQuantity>();
        var limits = new Dictionary<string, ResourceQuantity>();
        if (resources?.Cpu is { } cpu)
        {
            requests["cpu"] = cpu;
        }

        if (resources?.Memory is { } memory)
        {
            // Memory is not compressible: a limit above the request only defers the OOM kill.
            requests["memory"] = memory;
            limits["memory"] = memory;
        }

        if (resources?.EphemeralStorage is { } storage)
        {
            requests["ephemeral-storage"] = storage;
            limits["ephemeral-storage"] = storage;
        }

        if (gpus > 0)
        {
            // Extended resources must have request == limit; the limit alone implies the request.
            limits[GpuResource] = new ResourceQuantity(gpus.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return requests.Count == 0 && limits.Count == 0
            ? null
            : new V1ResourceRequirements { Requests = requests.Count > 0 ? requests : null, Limits = limits.Count > 0 ? limits : null };
    }

    internal static List<V1Toleration>? MakeTolerations(GpuFunctionSpec spec, FunctionPlacement placement)
    {
        var tolerations = spec.Tolerations?.ToList() ?? [];
        if (placement.Gpu is not null && !tolerations.Any(t => t.Key == GpuResource && t.Effect is null or "NoSchedule"))
        {
            tolerations.Add(new V1Toleration { Key = GpuResource, OperatorProperty = "Exists", Effect = "NoSchedule" });
        }

        return tolerations.Count > 0 ? tolerations : null;
    }

    internal static V1Affinity? MakeAffinity(FunctionPlacement placement)
    {
        if (placement.Gpu is null)
        {
            return null;
        }

        var required = new V1NodeSelector
        {
            NodeSelectorTerms =
            [
                new V1NodeSelectorTerm
                {
                    MatchExpressions = [new V1NodeSelectorRequirement { Key = Gpu.GpuCatalog.ProductLabel, OperatorProperty = "In", Values = placement.AllProducts.ToList() }],
                },
            ],
        };

        // Only worth preferring one type over another when there is a choice.
        var preferred = placement.Types.Count < 2
            ? null
            : placement.Types.Select((t, i) => new V1PreferredSchedulingTerm
            {
                Weight = Math.Max(1, TopPreference - (i * (TopPreference / placement.Types.Count))),
                Preference = new V1NodeSelectorTerm
                {
                    MatchExpressions = [new V1NodeSelectorRequirement { Key = Gpu.GpuCatalog.ProductLabel, OperatorProperty = "In", Values = t.Products.ToList() }],
                },
            }).ToList();

        return new V1Affinity
        {
            NodeAffinity = new V1NodeAffinity
            {
                RequiredDuringSchedulingIgnoredDuringExecution = required,
                PreferredDuringSchedulingIgnoredDuringExecution = preferred,
            },
        };
    }

    internal static V1OwnerReference OwnerReference(GpuFunction function) => new()
    {
        ApiVersion = function.ApiVersion,
        Kind = function.Kind,
        Name = function.Metadata.Name,
        Uid = function.Metadata.Uid,
        Controller = true,
        BlockOwnerDeletion = true,
    };

    /// <summary>A short stable hash of a pod spec and the function's restart mark: 10 lower-case hex characters.</summary>
    internal static string TemplateHash(V1PodSpec spec, string? restartedAt = null)
    {
        var json = KubernetesJson.Serialize(spec);
        var bytes = Encoding.UTF8.GetBytes(restartedAt is null ? json : $"{json}\n{FunctionLabels.RestartedAt}={restartedAt}");
        return Convert.ToHexStringLower(XxHash64.Hash(bytes))[..10];
    }
}
