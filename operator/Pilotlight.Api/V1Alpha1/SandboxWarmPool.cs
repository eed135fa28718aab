using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;
using Pilotlight.Api.Schema;

namespace Pilotlight.Api.V1Alpha1;

/// <summary>
/// Ready sandbox pods kept in a namespace for one shape (image, resources,
/// runtime class, workspace size). A Sandbox of that shape created in the
/// namespace claims one instead of waiting for a new pod; the pool refills.
/// </summary>
[KubernetesEntity(Group = Group.Name, ApiVersion = Group.Version, Kind = "SandboxWarmPool", PluralName = "sandboxwarmpools")]
[CustomResource(Singular = "sandboxwarmpool", ShortNames = ["sbxpool"], Categories = ["pilotlight"])]
[PrinterColumn("READY", "integer", ".status.readyReplicas")]
[PrinterColumn("REPLICAS", "integer", ".spec.replicas")]
[PrinterColumn("IMAGE", "string", ".spec.image", Priority = 1)]
[PrinterColumn("AGE", "date", ".metadata.creationTimestamp")]
public sealed record SandboxWarmPool : IKubernetesObject<V1ObjectMeta>, ISpec<SandboxWarmPoolSpec>, IStatus<SandboxWarmPoolStatus?>
{
    /// <summary>The kind's name.</summary>
    public const string KindName = "SandboxWarmPool";

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = Group.ApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KindName;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <summary>The shape of the pool's pods and how many to keep.</summary>
    [JsonPropertyName("spec")]
    [Required]
    public SandboxWarmPoolSpec Spec { get; set; } = new() { Image = "" };

    /// <summary>What the operator observed; written only by the operator.</summary>
    [JsonPropertyName("status")]
    public SandboxWarmPoolStatus? Status { get; set; }
}

/// <summary>The desired state of a <see cref="SandboxWarmPool"/>.</summary>
public sealed record SandboxWarmPoolSpec
{
    /// <summary>Image of the pool's sandboxes.</summary>
    [JsonPropertyName("image")]
    [Required, MinLength(1)]
    public required string Image { get; init; }

    /// <summary>CPU and memory of each sandbox (the operator's defaults when absent).</summary>
    [JsonPropertyName("resources")]
    public ComputeResources? Resources { get; init; }

    /// <summary>RuntimeClass from the operator's allowlist; its default when absent.</summary>
    [JsonPropertyName("runtimeClassName")]
    [RegularExpression(Patterns.DnsSubdomain)]
    public string? RuntimeClassName { get; init; }

    /// <summary>Size of each sandbox's workspace.</summary>
    [JsonPropertyName("workspaceSize")]
    [DefaultValue("1Gi")]
    public ResourceQuantity WorkspaceSize { get; init; } = new("1Gi");

    /// <summary>
    /// Secrets (in the pool's namespace) for pulling the image from a private registry; its pods get these, then the
    /// platform's own. A sandbox that claims a pod does not need its own: the image is already on the node.
    /// </summary>
    [JsonPropertyName("imagePullSecrets")]
    [MaxLength(16)]
    public IReadOnlyList<V1LocalObjectReference>? ImagePullSecrets { get; init; }

    /// <summary>Ready pods to keep.</summary>
    [JsonPropertyName("replicas")]
    [Range(0, 100), DefaultValue(1)]
    public int Replicas { get; init; } = 1;
}

/// <summary>What the operator observed of a <see cref="SandboxWarmPool"/>.</summary>
public sealed record SandboxWarmPoolStatus
{
    /// <summary>The generation of the spec this status describes.</summary>
    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; init; }

    /// <summary>Conditions, <c>Ready</c> first.</summary>
    [JsonPropertyName("conditions")]
    [ListType("map", "type")]
    public IReadOnlyList<V1Condition>? Conditions { get; init; }

    /// <summary>Pods in the pool, ready or starting.</summary>
    [JsonPropertyName("replicas")]
    public int Replicas { get; init; }

    /// <summary>Ready pods in the pool.</summary>
    [JsonPropertyName("readyReplicas")]
    public int ReadyReplicas { get; init; }
}
