using System.Globalization;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// The one pod and one NetworkPolicy of a sandbox. The hardening is not a
/// template a user may opt out of: every sandbox pod gets it.
/// </summary>
public static class SandboxPods
{
    /// <summary>The user's container, whose entrypoint is the agent.</summary>
    public const string SandboxContainer = "sandbox";

    /// <summary>Init container copying the agent onto the shared volume.</summary>
    public const string AgentInstaller = "pilotlight-agent";

    /// <summary>
    /// The <c>function</c> label of sandbox usage: sandboxes are metered per namespace under this one value (not
    /// per sandbox, whose names are unbounded). It is not a valid object name, so no function can share it.
    /// </summary>
    public const string UsageFunction = "_sandboxes";

    /// <summary>The agent's variable holding <c>spec.command</c> as a JSON array.</summary>
    public const string CommandVariable = "PILOTLIGHT_SANDBOX_COMMAND";

    /// <summary>Where the agent binary lives in the sandbox container.</summary>
    public const string AgentPath = "/pilotlight/bin/pilotlight-agent";

    /// <summary>The writable workspace (an emptyDir of <c>spec.workspaceSize</c>).</summary>
    public const string WorkspacePath = "/workspace";

    /// <summary>Label of warm pool pods: the pool they belong to (removed when a Sandbox claims the pod).</summary>
    public const string PoolLabel = "pilotlight.dev/sandbox-pool";

    /// <summary>Label of warm pool pods: the hash of their shape, which a Sandbox must match to claim one.</summary>
    public const string ShapeLabel = "pilotlight.dev/sandbox-shape";

    /// <summary>
    /// The shape a warm pod must have for <paramref name="sandbox"/> to claim it,
    /// or null when the sandbox cannot use a pool pod (GPUs, its own environment
    /// or command: things a running pod cannot take on).
    /// </summary>
    public static string? Shape(Sandbox sandbox, string? runtimeClass, SandboxOptions options) =>
        sandbox.Spec is { Gpu: null or { Count: 0 }, Env: null or { Count: 0 }, EnvFrom: null or { Count: 0 }, Command: null or { Count: 0 },
            NodeSelector: null or { Count: 0 }, Tolerations: null or { Count: 0 } } spec
            ? Shape(spec.Image, spec.Resources, runtimeClass, spec.WorkspaceSize, options)
            : null;

    /// <summary>The shape of pods of this image, resources, runtime class and workspace size.</summary>
    public static string Shape(string image, ComputeResources? resources, string? runtimeClass, ResourceQuantity workspace, SandboxOptions options)
    {
        var cpu = resources?.Cpu ?? new ResourceQuantity(options.DefaultResources.Cpu);
        var memory = resources?.Memory ?? new ResourceQuantity(options.DefaultResources.Memory);
        var key = string.Join('\n', image, cpu.ToDecimal().ToString(CultureInfo.InvariantCulture), memory.ToDecimal().ToString(CultureInfo.InvariantCulture),
            resources?.EphemeralStorage?.ToDecimal().ToString(CultureInfo.InvariantCulture) ?? "", runtimeClass ?? "", workspace.ToDecimal().ToString(CultureInfo.InvariantCulture),
            options.AgentImage, options.MeterImage);
        return Convert.ToHexStringLower(System.IO.Hashing.XxHash64.Hash(System.Text.Encoding.UTF8.GetBytes(key)))[..10];
    }

    /// <summary>A warm pod of <paramref name="pool"/>: a sandbox pod of its shape, owned by the pool, fenced off until claimed.</summary>
    public static V1Pod MakePoolPod(SandboxWarmPool pool, string? runtimeClass, SandboxOptions options)
    {
        var stand = new Sandbox
        {
            Metadata = new V1ObjectMeta { Name = pool.Metadata.Name, NamespaceProperty = pool.Metadata.NamespaceProperty, Uid = pool.Metadata.Uid },
            Spec = new SandboxSpec
            {
                Image = pool.Spec.Image, Resources = pool.Spec.Resources, WorkspaceSize = pool.Spec.WorkspaceSize, ImagePullSecrets = pool.Spec.ImagePullSecrets,
            },
        };
        var pod = MakePod(stand, runtimeClass, null, options);
        pod.Metadata.Name = null;
        pod.Metadata.GenerateName = $"{pool.Metadata.Name}-";
        pod.Metadata.Labels.Remove(SandboxAnnotations.SandboxLabel);
        pod.Metadata.Labels[PoolLabel] = pool.Metadata.Name;
        pod.Metadata.Labels[ShapeLabel] = Shape(pool.Spec.Image, pool.Spec.Resources, runtimeClass, pool.Spec.WorkspaceSize, options);
        pod.Metadata.OwnerReferences = [Owner(pool.ApiVersion, pool.Kind, pool.Metadata.Name, pool.Metadata.Uid)];
        return pod;
    }

    /// <summary>Deny-all for a pool's unclaimed pods: nothing in, nothing out.</summary>
    public static V1NetworkPolicy MakePoolPolicy(SandboxWarmPool pool) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = new V1ObjectMeta
        {
            Name = $"{pool.Metadata.Name}-sandbox-pool",
            NamespaceProperty = pool.Metadata.NamespaceProperty,
            Labels = new Dictionary<string, string> { [PoolLabel] = pool.Metadata.Name, [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue },
            OwnerReferences = [Owner(pool.ApiVersion, pool.Kind, pool.Metadata.Name, pool.Metadata.Uid)],
        },
        Spec = new V1NetworkPolicySpec
        {
            PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [PoolLabel] = pool.Metadata.Name } },
            PolicyTypes = ["Ingress", "Egress"],
            Ingress = [],
            Egress = [],
        },
    };

    /// <summary>The pod's name: the Sandbox's own (one pod per sandbox, never two).</summary>
    public static string PodName(Sandbox sandbox) => sandbox.Metadata.Name;

    /// <summary>The RuntimeClass to use, or a problem when the Sandbox asks for one the operator does not allow.</summary>
    public static (string? RuntimeClass, string? Problem) RuntimeClass(Sandbox sandbox, SandboxOptions options)
    {
        if (sandbox.Spec.RuntimeClassName is not { } asked)
        {
            return (options.DefaultRuntimeClass, null);
        }

        var allowed = options.AllowedRuntimeClasses.Concat(options.DefaultRuntimeClass is { } d ? [d] : []).Distinct().ToList();
        return allowed.Contains(asked)
            ? (asked, null)
            : (null, $"runtimeClassName '{asked}' is not allowed here (allowed: {(allowed.Count == 0 ? "none" : string.Join(", ", allowed))})");
    }

    /// <summary>
    /// Where a sandbox may ask to run: only the toleration and node-selector keys the platform allows, so a
    /// tenant cannot move untrusted code onto nodes kept for others (a dedicated or control-plane taint).
    /// </summary>
    public static IReadOnlyList<string> SchedulingProblems(SandboxSpec spec, SandboxOptions options)
    {
        var problems = new List<string>();
        string Allowed(IReadOnlyList<string> keys) => keys.Count == 0 ? "none" : string.Join(", ", keys);
        for (var i = 0; i < (spec.Tolerations?.Count ?? 0); i++)
        {
            var key = spec.Tolerations![i].Key;
            if (string.IsNullOrEmpty(key))
            {
                problems.Add($"tolerations[{i}]: a toleration without a key tolerates every taint; name the taint's key");
            }
            else if (!options.AllowedTolerationKeys.Contains(key, StringComparer.Ordinal))
            {
                problems.Add($"tolerations[{i}]: taint key '{key}' is not allowed here (allowed: {Allowed(options.AllowedTolerationKeys)})");
            }
        }

        foreach (var key in spec.NodeSelector?.Keys.Order(StringComparer.Ordinal) ?? Enumerable.Empty<string>())
        {
            if (!options.AllowedNodeSelectorKeys.Contains(key, StringComparer.Ordinal))
            {
                problems.Add($"nodeSelector: label key '{key}' is not allowed here (allowed: {Allowed(options.AllowedNodeSelectorKeys)})");
            }
        }

        return problems;
    }

    /// <summary>
    /// What a sandbox's environment may not do: read Secrets (the operator, not the
    /// sandbox's author, creates the pod, so that would hand out what RBAC withholds),
    /// steer the NVIDIA runtime to GPUs it was not given, or reconfigure the agent.
    /// </summary>
    public static IReadOnlyList<string> EnvProblems(SandboxSpec spec)
    {
        var problems = new List<string>();
        foreach (var env in spec.Env ?? [])
        {
            if (env.ValueFrom?.SecretKeyRef is not null)
            {
                problems.Add($"env {env.Name}: sandboxes cannot read Secrets");
            }

        }

        problems.AddRange(Admission.SpecRules.EnvProblems(spec.Env, spec.EnvFrom).Select(p => p.ToString()));

        if (spec.EnvFrom?.Any(e => e.SecretRef is not null) == true)
        {
            problems.Add("envFrom: sandboxes cannot read Secrets");
        }

        return problems;
    }

    /// <summary>Ephemeral storage of a sandbox that asks for none: its workspace plus <see cref="SandboxOptions.ScratchStorage"/>.</summary>
    public static ResourceQuantity DefaultEphemeralStorage(ResourceQuantity workspace, SandboxOptions options) =>
        new((workspace.ToDecimal() + options.ScratchStorage.ToDecimal()).ToString(CultureInfo.InvariantCulture));

    /// <summary>Why <paramref name="workspace"/> cannot be had here, if it cannot.</summary>
    public static string? WorkspaceProblem(ResourceQuantity? workspace, SandboxOptions options) =>
        workspace is not null && workspace.ToDecimal() > options.MaxWorkspaceSize.ToDecimal()
            ? $"spec.workspaceSize: {workspace} is more than this platform allows ({options.MaxWorkspaceSize})"
            : null;

    /// <summary>The hardened pod of <paramref name="sandbox"/>.</summary>
    public static V1Pod MakePod(Sandbox sandbox, string? runtimeClass, FunctionPlacement? placement, SandboxOptions options)
    {
        var spec = sandbox.Spec;
        var cpu = spec.Resources?.Cpu ?? new ResourceQuantity(options.DefaultResources.Cpu);
        var memory = spec.Resources?.Memory ?? new ResourceQuantity(options.DefaultResources.Memory);
        var limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = cpu, ["memory"] = memory };
        // Always bounded: what the sandbox asked for, else its workspace plus the platform's scratch allowance (the
        // workspace emptyDir counts against the pod's ephemeral storage too).
        limits["ephemeral-storage"] = spec.Resources?.EphemeralStorage ?? DefaultEphemeralStorage(spec.WorkspaceSize, options);

        var gpus = placement?.GpuCount ?? 0;
        if (gpus > 0)
        {
            limits[FunctionPods.GpuResource] = new ResourceQuantity(gpus.ToString(CultureInfo.InvariantCulture));
        }

        // Defence in depth: validation refuses these names, and the pod never carries them either.
        var env = new List<V1EnvVar>((spec.Env ?? []).Where(e => Admission.SpecRules.Reserved(e.Name) is null))
        {
            new() { Name = "PILOTLIGHT_MODE", Value = "sandbox" },
            new() { Name = "PILOTLIGHT_LISTEN_PORT", Value = options.AgentPort.ToString(CultureInfo.InvariantCulture) },
            new() { Name = "PILOTLIGHT_WORKSPACE", Value = WorkspacePath },
            new() { Name = "HOME", Value = WorkspacePath },
            new() { Name = "TMPDIR", Value = "/tmp" },
        };
        if (gpus == 0)
        {
            env.Add(new V1EnvVar { Name = "NVIDIA_VISIBLE_DEVICES", Value = "void" });
        }

        // Whom the agent answers: the gateway's client certificate (only the CA's public certificate goes in the pod)
        // for this very pod. Set in env, which wins over any envFrom key of the same name.
        var clientCa = options.AgentClientCa();
        if (clientCa is not null)
        {
            env.Add(new V1EnvVar { Name = "PILOTLIGHT_AGENT_CLIENT_CA", Value = clientCa });
            env.Add(new V1EnvVar { Name = "PILOTLIGHT_POD_UID", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.uid" } } });
            env.Add(new V1EnvVar { Name = "PILOTLIGHT_POD_NAMESPACE", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.namespace" } } });
        }

        env.Add(new V1EnvVar { Name = "PILOTLIGHT_AGENT_INSECURE", Value = clientCa is null ? "true" : "false" });

        // The operator's log settings, for the agent (not user input: reserved names, refused in spec.env).
        env.AddRange(options.SidecarLog.Select(v => new V1EnvVar { Name = v.Key, Value = v.Value }));

        // The agent starts the sandbox's own command and ends the sandbox when it exits.
        if (spec.Command is { Count: > 0 } command)
        {
            env.Add(new V1EnvVar { Name = CommandVariable, Value = System.Text.Json.JsonSerializer.Serialize(command) });
        }

        // A new object per container: two containers sharing one would change together.
        V1SecurityContext Hardened() => new()
        {
            AllowPrivilegeEscalation = false,
            Privileged = false,
            RunAsNonRoot = true,
            RunAsUser = options.RunAsUser,
            RunAsGroup = options.RunAsUser,
            ReadOnlyRootFilesystem = true,
            Capabilities = new V1Capabilities { Drop = ["ALL"] },
            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
        };
        var shared = new V1VolumeMount { Name = "pilotlight-agent", MountPath = "/pilotlight" };

        return new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = PodName(sandbox),
                NamespaceProperty = sandbox.Metadata.NamespaceProperty,
                Labels = new Dictionary<string, string>
                {
                    [SandboxAnnotations.SandboxLabel] = sandbox.Metadata.Name,
                    [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
                },
                OwnerReferences = [Owner(sandbox)],
            },
            Spec = new V1PodSpec
            {
                AutomountServiceAccountToken = false,
                EnableServiceLinks = false,
                ImagePullSecrets = PullSecrets.Merge(spec.ImagePullSecrets, options.PlatformImagePullSecrets),
                RestartPolicy = "Never",
                RuntimeClassName = runtimeClass,
                HostNetwork = false,
                HostPID = false,
                HostIPC = false,
                ShareProcessNamespace = false,
                TerminationGracePeriodSeconds = 5,
                SecurityContext = new V1PodSecurityContext
                {
                    RunAsNonRoot = true,
                    RunAsUser = options.RunAsUser,
                    RunAsGroup = options.RunAsUser,
                    FsGroup = options.RunAsUser,
                    SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                },
                InitContainers =
                [
                    new V1Container
                    {
                        Name = AgentInstaller,
                        Image = options.AgentImage,
                        Args = ["install", AgentPath],
                        VolumeMounts = [shared],
                        Resources = new V1ResourceRequirements
                        {
                            Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("10m"), ["memory"] = new("32Mi") },
                            Limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("100m"), ["memory"] = new("64Mi") },
                        },
                        SecurityContext = Hardened(),
                    },
                ],
                Containers =
                [
                    new V1Container
                    {
                        Name = SandboxContainer,
                        Image = spec.Image,
                        Command = [AgentPath],
                        Env = env,
                        EnvFrom = spec.EnvFrom?.ToList(),
                        WorkingDir = WorkspacePath,
                        Ports = [new V1ContainerPort { Name = "agent", ContainerPort = options.AgentPort, Protocol = "TCP" }],
                        Resources = new V1ResourceRequirements { Requests = limits, Limits = limits },
                        SecurityContext = Hardened(),
                        ReadinessProbe = new V1Probe
                        {
                            HttpGet = new V1HTTPGetAction { Path = "/ready", Port = options.AgentPort, Scheme = clientCa is null ? "HTTP" : "HTTPS" },
                            PeriodSeconds = 1,
                            FailureThreshold = 1,
                        },
                        VolumeMounts =
                        [
                            new V1VolumeMount { Name = "pilotlight-agent", MountPath = "/pilotlight", ReadOnlyProperty = true },
                            new V1VolumeMount { Name = "workspace", MountPath = WorkspacePath },
                            new V1VolumeMount { Name = "tmp", MountPath = "/tmp" },
                        ],
                    },
                    MakeMeterContainer(gpus > 0 ? placement?.Requested : null, cpu, memory, gpus, Hardened(), options),
                ],
                Volumes =
                [
                    new V1Volume { Name = "pilotlight-agent", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity("128Mi") } },
                    new V1Volume { Name = "workspace", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = spec.WorkspaceSize } },
                    new V1Volume { Name = "tmp", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity("64Mi") } },
                    new V1Volume { Name = FunctionPods.MeterVolume, EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity("1Mi") } },
                ],
                NodeSelector = spec.NodeSelector is { Count: > 0 } selector ? new Dictionary<string, string>(selector) : null,
                Tolerations = placement is null
                    ? (spec.Tolerations is { Count: > 0 } own ? [.. own] : null)
                    : FunctionPods.MakeTolerations(new GpuFunctionSpec { Image = spec.Image, Tolerations = spec.Tolerations }, placement),
                Affinity = placement is null ? null : FunctionPods.MakeAffinity(placement),
            },
        };
    }

    /// <summary>
    /// The metering sidecar of a sandbox pod: the same program as in function pods, counting the sandbox's
    /// allocation per second under <see cref="UsageFunction"/>, checkpointed on a volume of its own (the sandbox
    /// container cannot reach it), hardened like the rest of the pod.
    /// </summary>
    private static V1Container MakeMeterContainer(GpuType? gpuType, ResourceQuantity cpu, ResourceQuantity memory, int gpus,
        V1SecurityContext hardened, SandboxOptions options)
    {
        var invariant = CultureInfo.InvariantCulture;
        var own = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("10m"), ["memory"] = new("32Mi") };
        return new V1Container
        {
            Name = FunctionPods.MeterContainer,
            Image = options.MeterImage,
            Env =
            [
                new V1EnvVar { Name = "PILOTLIGHT_NAMESPACE", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.namespace" } } },
                new V1EnvVar { Name = "PILOTLIGHT_FUNCTION", Value = UsageFunction },
                new V1EnvVar { Name = "PILOTLIGHT_GPU_TYPE", Value = gpuType?.Name ?? "none" },
                new V1EnvVar { Name = "PILOTLIGHT_GPU_COUNT", Value = gpus.ToString(invariant) },
                new V1EnvVar { Name = "PILOTLIGHT_CPU_REQUEST", Value = cpu.ToString() },
                new V1EnvVar { Name = "PILOTLIGHT_MEMORY_REQUEST", Value = memory.ToString() },
                new V1EnvVar { Name = "PILOTLIGHT_CHECKPOINT", Value = FunctionPods.SharedPath + "/meter.json" },
                new V1EnvVar { Name = "PILOTLIGHT_METRICS_PORT", Value = options.MeterPort.ToString(invariant) },
                .. options.SidecarLog.Select(v => new V1EnvVar { Name = v.Key, Value = v.Value }),
            ],
            Ports = [new V1ContainerPort { Name = "metrics", ContainerPort = options.MeterPort, Protocol = "TCP" }],
            VolumeMounts = [new V1VolumeMount { Name = FunctionPods.MeterVolume, MountPath = FunctionPods.SharedPath }],
            Resources = new V1ResourceRequirements { Requests = own, Limits = own },
            SecurityContext = hardened,
        };
    }

    /// <summary>
    /// Deny everything but the gateway's connections to the agent, and egress to
    /// <c>network.allowCidrs</c> less the platform's floor (<see cref="SandboxEgress"/>), plus DNS when
    /// <c>network.allowDns</c>.
    /// </summary>
    public static V1NetworkPolicy MakeNetworkPolicy(Sandbox sandbox, SandboxOptions options)
    {
        var egress = new List<V1NetworkPolicyEgressRule>();
        if (sandbox.Spec.Network.AllowCidrs is { Count: > 0 } cidrs && SandboxEgress.Peers(cidrs, options.EgressFloor) is { Count: > 0 } peers)
        {
            egress.Add(new V1NetworkPolicyEgressRule { To = [.. peers] });
        }

        if (sandbox.Spec.Network.AllowDns)
        {
            egress.Add(new V1NetworkPolicyEgressRule
            {
                To =
                [
                    new V1NetworkPolicyPeer
                    {
                        NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = "kube-system" } },
                        PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["k8s-app"] = "kube-dns" } },
                    },
                ],
                Ports = [new V1NetworkPolicyPort { Protocol = "UDP", Port = 53 }, new V1NetworkPolicyPort { Protocol = "TCP", Port = 53 }],
            });
        }

        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = new V1ObjectMeta
            {
                Name = $"{sandbox.Metadata.Name}-sandbox",
                NamespaceProperty = sandbox.Metadata.NamespaceProperty,
                Labels = new Dictionary<string, string> { [SandboxAnnotations.SandboxLabel] = sandbox.Metadata.Name, [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue },
                OwnerReferences = [Owner(sandbox)],
            },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [SandboxAnnotations.SandboxLabel] = sandbox.Metadata.Name } },
                PolicyTypes = ["Ingress", "Egress"],
                Ingress =
                [
                    new V1NetworkPolicyIngressRule
                    {
                        FromProperty =
                        [
                            new V1NetworkPolicyPeer
                            {
                                NamespaceSelector = new V1LabelSelector { MatchLabels = options.GatewayNamespaceLabels.ToDictionary() },
                                PodSelector = new V1LabelSelector { MatchLabels = options.GatewayPodLabels.ToDictionary() },
                            },
                        ],
                        Ports = [new V1NetworkPolicyPort { Protocol = "TCP", Port = options.AgentPort }],
                    },
                    .. options.MetricsScraperNamespaceLabels is { } scrapers
                        ? new[]
                        {
                            new V1NetworkPolicyIngressRule
                            {
                                FromProperty = [new V1NetworkPolicyPeer { NamespaceSelector = new V1LabelSelector { MatchLabels = scrapers.ToDictionary() } }],
                                Ports = [new V1NetworkPolicyPort { Protocol = "TCP", Port = options.MeterPort }],
                            },
                        }
                        : [],
                ],
                Egress = egress,
            },
        };
    }

    /// <summary>The controller owner reference to <paramref name="sandbox"/>.</summary>
    public static V1OwnerReference Owner(Sandbox sandbox) => Owner(sandbox.ApiVersion, sandbox.Kind, sandbox.Metadata.Name, sandbox.Metadata.Uid);

    private static V1OwnerReference Owner(string apiVersion, string kind, string name, string uid) => new()
    {
        ApiVersion = apiVersion,
        Kind = kind,
        Name = name,
        Uid = uid,
        Controller = true,
        BlockOwnerDeletion = true,
    };
}
