using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;
using Pilotlight.Api.Schema;

namespace Pilotlight.Api.V1Alpha1;

/// <summary>
/// An isolated, hardened pod for running untrusted code, reached through the
/// gateway's exec and file API.
/// </summary>
[KubernetesEntity(Group = Group.Name, ApiVersion = Group.Version, Kind = "Sandbox", PluralName = "sandboxes")]
[CustomResource(Singular = "sandbox", ShortNames = ["sbx"], Categories = ["pilotlight"])]
[PrinterColumn("READY", "string", ".status.conditions[?(@.type==\"Ready\")].status")]
[PrinterColumn("REASON", "string", ".status.conditions[?(@.type==\"Ready\")].reason")]
[PrinterColumn("EXPIRES", "string", ".status.expiresAt", Description = "When the sandbox ends, RFC 3339 (a string: kubectl prints a future date column as <invalid>)")]
[PrinterColumn("POD", "string", ".status.podName", Priority = 1)]
[PrinterColumn("GPU-SECONDS", "number", ".status.usage.gpuSeconds", Priority = 1, Description = "GPU-seconds billed so far")]
[PrinterColumn("AGE", "date", ".metadata.creationTimestamp")]
[ValidationRule(CelRules.NameLength, CelRules.NameLengthMessage)]
public sealed record Sandbox : IKubernetesObject<V1ObjectMeta>, ISpec<SandboxSpec>, IStatus<SandboxStatus?>
{
    /// <summary>The kind, <c>Sandbox</c>.</summary>
    public const string KindName = "Sandbox";

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = Group.ApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KindName;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <summary>What the sandbox runs and its limits.</summary>
    [JsonPropertyName("spec")]
    [Required]
    public SandboxSpec Spec { get; set; } = new() { Image = "" };

    /// <summary>What the operator observed; written only by the operator.</summary>
    [JsonPropertyName("status")]
    public SandboxStatus? Status { get; set; }
}

/// <summary>The desired state of a <see cref="Sandbox"/>.</summary>
[ValidationRule(CelRules.ReservedEnv, CelRules.ReservedEnvMessage)]
[ValidationRule(CelRules.ReservedEnvFrom, CelRules.ReservedEnvFromMessage)]
public sealed record SandboxSpec
{
    /// <summary>Container image the untrusted code runs in.</summary>
    [JsonPropertyName("image")]
    [Required, MinLength(1)]
    public required string Image { get; init; }

    /// <summary>Long-running command of the sandbox; it idles waiting for exec calls when empty.</summary>
    [JsonPropertyName("command")]
    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>Environment variables for commands run in the sandbox.</summary>
    [JsonPropertyName("env")]
    [ListType("map", "name"), MaxLength(CelRules.MaxEnvEntries)]
    public IReadOnlyList<V1EnvVar>? Env { get; init; }

    /// <summary>Sources (ConfigMaps, Secrets) of environment variables.</summary>
    [JsonPropertyName("envFrom")]
    [MaxLength(CelRules.MaxEnvEntries)]
    public IReadOnlyList<V1EnvFromSource>? EnvFrom { get; init; }

    /// <summary>CPU, memory and ephemeral storage; limits are always set from these or the defaults.</summary>
    [JsonPropertyName("resources")]
    public ComputeResources? Resources { get; init; }

    /// <summary>Optional GPUs, placed like a function's.</summary>
    [JsonPropertyName("gpu")]
    public GpuRequirement? Gpu { get; init; }

    /// <summary>Lifetime from start; capped by operator configuration.</summary>
    [JsonPropertyName("timeout")]
    [RegularExpression(Patterns.Duration), DefaultValue("300s")]
    public string Timeout { get; init; } = "300s";

    /// <summary>Ends the sandbox after this long without exec, stdin or file activity.</summary>
    [JsonPropertyName("idleTimeout")]
    [RegularExpression(Patterns.Duration)]
    public string? IdleTimeout { get; init; }

    /// <summary>Network access; everything is denied by default.</summary>
    [JsonPropertyName("network")]
    public SandboxNetwork Network { get; init; } = new();

    /// <summary>Isolating RuntimeClass (e.g. gVisor, Kata) from the operator's allowlist; its default when absent.</summary>
    [JsonPropertyName("runtimeClassName")]
    [RegularExpression(Patterns.DnsSubdomain)]
    public string? RuntimeClassName { get; init; }

    /// <summary>Node labels the sandbox's pod must match; only the keys the platform allows (<c>--sandbox-node-selector-keys</c>).</summary>
    [JsonPropertyName("nodeSelector")]
    public IReadOnlyDictionary<string, string>? NodeSelector { get; init; }

    /// <summary>
    /// Secrets (in the sandbox's namespace) for pulling the image from a private registry; the pod gets these, then the
    /// platform's own.
    /// </summary>
    [JsonPropertyName("imagePullSecrets")]
    [MaxLength(16)]
    public IReadOnlyList<V1LocalObjectReference>? ImagePullSecrets { get; init; }

    /// <summary>Taints the sandbox's pod tolerates; only the keys the platform allows (<c>--sandbox-toleration-keys</c>).</summary>
    [JsonPropertyName("tolerations")]
    [MaxLength(16)]
    public IReadOnlyList<V1Toleration>? Tolerations { get; init; }

    /// <summary>Size of the writable workspace.</summary>
    [JsonPropertyName("workspaceSize")]
    [DefaultValue("1Gi")]
    public ResourceQuantity WorkspaceSize { get; init; } = new("1Gi");

    /// <summary>What happens to the Sandbox object when it expires.</summary>
    [JsonPropertyName("expiryPolicy")]
    [DefaultValue(nameof(SandboxExpiryPolicy.Retain))]
    public SandboxExpiryPolicy ExpiryPolicy { get; init; } = SandboxExpiryPolicy.Retain;
}

/// <summary>Network access of a sandbox.</summary>
public sealed record SandboxNetwork
{
    /// <summary>CIDR blocks egress is allowed to; none when empty.</summary>
    [JsonPropertyName("allowCidrs")]
    [MaxLength(64)]
    [RegularExpression(Patterns.Cidr)]
    public IReadOnlyList<string>? AllowCidrs { get; init; }

    /// <summary>Allow DNS lookups through the cluster's DNS service.</summary>
    [JsonPropertyName("allowDns")]
    [DefaultValue(false)]
    public bool AllowDns { get; init; }
}

/// <summary>What happens to an expired Sandbox object.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SandboxExpiryPolicy>))]
public enum SandboxExpiryPolicy
{
    /// <summary>Delete the pod and keep the Sandbox with an Expired condition.</summary>
    Retain,

    /// <summary>Delete the Sandbox and everything it owns.</summary>
    Delete,
}

/// <summary>What the operator observed of a <see cref="Sandbox"/>.</summary>
public sealed record SandboxStatus
{
    /// <summary>The generation of the spec this status describes.</summary>
    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; init; }

    /// <summary>Conditions, <c>Ready</c> first, each with a stable reason.</summary>
    [JsonPropertyName("conditions")]
    [ListType("map", "type")]
    public IReadOnlyList<V1Condition>? Conditions { get; init; }

    /// <summary>Name of the sandbox's pod.</summary>
    [JsonPropertyName("podName")]
    public string? PodName { get; init; }

    /// <summary>When the pod started.</summary>
    [JsonPropertyName("startTime")]
    public DateTime? StartTime { get; init; }

    /// <summary>When the sandbox ends unless it idles out earlier.</summary>
    [JsonPropertyName("expiresAt")]
    public DateTime? ExpiresAt { get; init; }

    /// <summary>
    /// What the sandbox's pod was allocated over its lifetime, as the operator's ledger bills it (the same
    /// totals as a GpuFunction's <c>status.usage</c>): from the later of the pod's start and the sandbox's
    /// creation until the pod is gone.
    /// </summary>
    [JsonPropertyName("usage")]
    public UsageTotals? Usage { get; init; }
}
