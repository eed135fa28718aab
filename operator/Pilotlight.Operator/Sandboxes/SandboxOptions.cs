namespace Pilotlight.Operator.Sandboxes;

/// <summary>How the operator runs sandboxes; the platform team sets these (chart values), not sandbox users.</summary>
public sealed record SandboxOptions
{
    /// <summary>RuntimeClasses a Sandbox may ask for (e.g. gVisor <c>runsc</c>, Kata). Empty: only <see cref="DefaultRuntimeClass"/>.</summary>
    public IReadOnlyList<string> AllowedRuntimeClasses { get; init; } = [];

    /// <summary>RuntimeClass used when a Sandbox names none; null runs on the node's default runtime.</summary>
    public string? DefaultRuntimeClass { get; init; }

    /// <summary>
    /// Taint keys a Sandbox's <c>tolerations</c> may name (<c>--sandbox-toleration-keys</c>). The default lets a CPU
    /// sandbox run where every node carries the GPU taint; a toleration without a key (every taint) is never allowed.
    /// </summary>
    public IReadOnlyList<string> AllowedTolerationKeys { get; init; } = ["nvidia.com/gpu"];

    /// <summary>Node label keys a Sandbox's <c>nodeSelector</c> may name (<c>--sandbox-node-selector-keys</c>).</summary>
    public IReadOnlyList<string> AllowedNodeSelectorKeys { get; init; } = DefaultNodeSelectorKeys;

    /// <summary>The well-known labels every node carries that say where and what it is, not whose.</summary>
    public static IReadOnlyList<string> DefaultNodeSelectorKeys { get; } =
        ["kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "topology.kubernetes.io/zone"];

    /// <summary>The longest <c>spec.timeout</c> honoured; longer ones are capped (and the cap is reported).</summary>
    public TimeSpan MaxTimeout { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Image holding the agent (the runtime shim), copied into the sandbox by an init container.</summary>
    public string AgentImage { get; init; } = "pilotlight/runtime-shim:0.1.0";

    /// <summary>Image of the metering sidecar every sandbox pod carries (allocation per second, as for functions).</summary>
    public string MeterImage { get; init; } = "pilotlight/meter:0.1.0";

    /// <summary>Port of the metering sidecar's <c>/metrics</c>.</summary>
    public int MeterPort { get; init; } = 9102;

    /// <summary>
    /// Labels of the namespace Prometheus scrapes from: the only peer the sandbox's policy admits to the meter's
    /// port. Null admits none (the sidecar still meters and checkpoints; nothing scrapes it).
    /// </summary>
    public IReadOnlyDictionary<string, string>? MetricsScraperNamespaceLabels { get; init; }

    /// <summary>Port the agent listens on inside the sandbox (not the function shim's 8099: a sandbox pod is never a function's).</summary>
    public int AgentPort { get; init; } = 8443;

    /// <summary>
    /// The PEM of the CA whose client certificates agents accept (the gateway's, <c>--sandbox-agent-secret</c>), read
    /// when a pod is made; null: agents speak plain HTTP to anyone who reaches them (a development setup only).
    /// </summary>
    public Func<string?> AgentClientCa { get; init; } = () => null;

    /// <summary>
    /// Labels of the namespace the gateway runs in: only it may reach a sandbox's agent. From <c>--gateway-namespace</c>
    /// (the chart passes its release namespace).
    /// </summary>
    public IReadOnlyDictionary<string, string> GatewayNamespaceLabels { get; init; } = GatewayNamespace("pilotlight-system");

    /// <summary>The namespace labels that select the namespace named <paramref name="name"/> (set by the API server on every namespace).</summary>
    public static IReadOnlyDictionary<string, string> GatewayNamespace(string name) =>
        new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = name };

    /// <summary>
    /// Secrets for pulling the platform's images (agent, meter) that every sandbox and warm pod names after the
    /// sandbox's own (<c>--platform-image-pull-secrets</c>); each must exist in the pod's namespace.
    /// </summary>
    public IReadOnlyList<string> PlatformImagePullSecrets { get; init; } = [];

    /// <summary>
    /// Variables that give the agent and the meter the operator's own log settings (<c>--log-format</c>,
    /// <c>--log-level</c>); empty for the defaults. Not part of a warm pod's shape: they change no behaviour.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> SidecarLog { get; init; } = [];

    /// <summary>Labels of the gateway's pods.</summary>
    public IReadOnlyDictionary<string, string> GatewayPodLabels { get; init; } =
        new Dictionary<string, string> { ["app.kubernetes.io/name"] = "pilotlight-gateway" };

    /// <summary>CPU and memory a sandbox gets when it asks for none (requests equal limits).</summary>
    public (string Cpu, string Memory) DefaultResources { get; init; } = ("1", "1Gi");

    /// <summary>UID and GID the sandbox runs as.</summary>
    public long RunAsUser { get; init; } = 65532;

    /// <summary>
    /// Address ranges no sandbox may reach, whatever its <c>network.allowCidrs</c> say: every allowed range
    /// carries them as <c>except</c> entries. The defaults are link-local (169.254.0.0/16, where clouds serve
    /// node credentials at 169.254.169.254) and AWS's IPv6 metadata address; the platform adds its pod,
    /// service and node ranges (<c>--sandbox-egress-deny</c>).
    /// </summary>
    public IReadOnlyList<string> EgressFloor { get; init; } = DefaultEgressFloor;

    /// <summary>The ranges of <see cref="EgressFloor"/> that are always there.</summary>
    public static IReadOnlyList<string> DefaultEgressFloor { get; } = ["169.254.0.0/16", "fd00:ec2::254/128"];

    /// <summary>
    /// What <c>network.allowCidrs</c> may name: each asked range must lie within one of these
    /// (<c>--sandbox-egress-allowed</c>). The default allows any range, the internet included; a platform
    /// that forbids <c>0.0.0.0/0</c> lists the ranges it does allow.
    /// </summary>
    public IReadOnlyList<string> AllowedEgress { get; init; } = ["0.0.0.0/0", "::/0"];

    /// <summary>The largest <c>workspaceSize</c> a Sandbox or SandboxWarmPool may ask for (<c>--sandbox-max-workspace</c>).</summary>
    public k8s.Models.ResourceQuantity MaxWorkspaceSize { get; init; } = new("10Gi");

    /// <summary>
    /// Ephemeral storage beyond the workspace (the container's writable layer, logs, /tmp) a sandbox gets when it
    /// asks for none: its request and limit are the workspace size plus this. Every sandbox pod has both.
    /// </summary>
    public k8s.Models.ResourceQuantity ScratchStorage { get; init; } = new("1Gi");
}
