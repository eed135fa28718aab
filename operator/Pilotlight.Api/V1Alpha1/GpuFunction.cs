using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;
using Pilotlight.Api.Schema;

namespace Pilotlight.Api.V1Alpha1;

/// <summary>
/// A function served over HTTP on GPUs: scales to zero, wakes on the first
/// request, and is metered per second.
/// </summary>
[KubernetesEntity(Group = Group.Name, ApiVersion = Group.Version, Kind = "GpuFunction", PluralName = "gpufunctions")]
[CustomResource(Singular = "gpufunction", ShortNames = ["gfn"], Categories = ["pilotlight"])]
[PrinterColumn("GPU", "string", ".status.gpu", Description = "GPU type the function's pods run on")]
[PrinterColumn("READY", "string", ".status.conditions[?(@.type==\"Ready\")].status")]
[PrinterColumn("REPLICAS", "integer", ".status.replicas")]
[PrinterColumn("WARM", "integer", ".status.warmReplicas", Priority = 1)]
[PrinterColumn("DESIRED", "integer", ".status.desiredReplicas", Priority = 1)]
[PrinterColumn("ACCESS", "string", ".spec.access", Priority = 1, Description = "Private: callers RBAC allows to invoke it; Public: anyone who reaches the gateway")]
[PrinterColumn("REASON", "string", ".status.conditions[?(@.type==\"Ready\")].reason", Priority = 1)]
[PrinterColumn("SCALED-UP", "string", ".status.conditions[?(@.type==\"ScaledUp\")].reason", Priority = 1, Description = "Why not all desired replicas are ready (PodsReady when they are)")]
[PrinterColumn("COLD-STARTS", "integer", ".status.coldStarts", Priority = 1, Description = "Requests that waited for a pod to start")]
[PrinterColumn("GPU-SECONDS", "number", ".status.usage.gpuSeconds", Priority = 1, Description = "GPU-seconds billed so far")]
[PrinterColumn("LAST-SCHEDULE", "date", ".status.lastScheduleTime", Priority = 1, Description = "Scheduled time of the last tick of spec.schedule taken on")]
[PrinterColumn("AGE", "date", ".metadata.creationTimestamp")]
[ValidationRule(CelRules.NameLength, CelRules.NameLengthMessage)]
public sealed record GpuFunction : IKubernetesObject<V1ObjectMeta>, ISpec<GpuFunctionSpec>, IStatus<GpuFunctionStatus?>
{
    /// <summary>The kind, <c>GpuFunction</c>.</summary>
    public const string KindName = "GpuFunction";

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = Group.ApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KindName;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <summary>What the function runs and how it scales.</summary>
    [JsonPropertyName("spec")]
    [Required]
    public GpuFunctionSpec Spec { get; set; } = new() { Image = "" };

    /// <summary>What the operator observed; written only by the operator.</summary>
    [JsonPropertyName("status")]
    public GpuFunctionStatus? Status { get; set; }
}

/// <summary>The desired state of a <see cref="GpuFunction"/>.</summary>
[ValidationRule("!(self.port in [8099, 9102])", "spec.port: 8099 and 9102 are the runtime shim's and the metering sidecar's ports in the same pod")]
[ValidationRule("!has(self.prewarm) || !has(self.scaling) || self.prewarm.warmReplicas <= self.scaling.maxReplicas",
    "spec.prewarm.warmReplicas: more than spec.scaling.maxReplicas")]
[ValidationRule("!has(self.prewarm) || !has(self.scaling) || self.prewarm.reservedReplicas <= self.scaling.maxReplicas",
    "spec.prewarm.reservedReplicas: more than spec.scaling.maxReplicas")]
[ValidationRule(CelRules.ReservedEnv, CelRules.ReservedEnvMessage)]
[ValidationRule(CelRules.ReservedEnvFrom, CelRules.ReservedEnvFromMessage)]
public sealed record GpuFunctionSpec
{
    /// <summary>Container image of the user's HTTP server.</summary>
    [JsonPropertyName("image")]
    [Required, MinLength(1)]
    public required string Image { get; init; }

    /// <summary>Entrypoint override; the image's ENTRYPOINT when empty.</summary>
    [JsonPropertyName("command")]
    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>Arguments to the entrypoint; the image's CMD when empty.</summary>
    [JsonPropertyName("args")]
    public IReadOnlyList<string>? Args { get; init; }

    /// <summary>Environment variables for the user's container.</summary>
    [JsonPropertyName("env")]
    [ListType("map", "name"), MaxLength(CelRules.MaxEnvEntries)]
    public IReadOnlyList<V1EnvVar>? Env { get; init; }

    /// <summary>Sources (ConfigMaps, Secrets) of environment variables.</summary>
    [JsonPropertyName("envFrom")]
    [MaxLength(CelRules.MaxEnvEntries)]
    public IReadOnlyList<V1EnvFromSource>? EnvFrom { get; init; }

    /// <summary>Port the user's HTTP server listens on inside the pod.</summary>
    [JsonPropertyName("port")]
    [Range(1, 65535), DefaultValue(8080)]
    public int Port { get; init; } = 8080;

    /// <summary>Path answering 2xx once the user's server can take requests.</summary>
    [JsonPropertyName("healthPath")]
    [RegularExpression(Patterns.HttpPath), DefaultValue("/healthz")]
    public string HealthPath { get; init; } = "/healthz";

    /// <summary>GPUs for each replica; none when absent.</summary>
    [JsonPropertyName("gpu")]
    public GpuRequirement? Gpu { get; init; }

    /// <summary>CPU, memory and ephemeral storage for each replica.</summary>
    [JsonPropertyName("resources")]
    public ComputeResources? Resources { get; init; }

    /// <summary>How the number of replicas follows demand.</summary>
    [JsonPropertyName("scaling")]
    public ScalingPolicy Scaling { get; init; } = new();

    /// <summary>How a change of the pod template replaces serving pods.</summary>
    [JsonPropertyName("rollout")]
    public RolloutPolicy Rollout { get; init; } = new();

    /// <summary>Warm standby replicas, GPU reservations and image pre-pull.</summary>
    [JsonPropertyName("prewarm")]
    public PrewarmPolicy? Prewarm { get; init; }

    /// <summary>
    /// Longest one attempt of a request may run, from its dispatch to a pod until its answer has been
    /// streamed back, before the gateway answers 504 (a hold while the function wakes does not count:
    /// that is startupTimeout's); also how long a pod that must go drains the requests it has.
    /// </summary>
    [JsonPropertyName("timeout")]
    [RegularExpression(Patterns.Duration), DefaultValue("300s")]
    public string Timeout { get; init; } = "300s";

    /// <summary>
    /// Longest a replica may take to become ready (model loads take minutes); also
    /// how long the gateway holds a request while the function wakes from zero.
    /// </summary>
    [JsonPropertyName("startupTimeout")]
    [RegularExpression(Patterns.Duration), DefaultValue("5m")]
    public string StartupTimeout { get; init; } = "5m";

    /// <summary>
    /// Who may invoke the function through the gateway. <c>Private</c> (the default): callers with a Kubernetes
    /// bearer token for the gateway's audience (not an API-server token) who may <c>create</c>
    /// <c>gpufunctions/invoke</c> on this function; the token is not passed on to the function. <c>Public</c>:
    /// anyone who reaches the gateway, where the platform allows public functions (otherwise treated as Private).
    /// </summary>
    [JsonPropertyName("access")]
    [DefaultValue(nameof(FunctionAccess.Private))]
    public FunctionAccess Access { get; init; } = FunctionAccess.Private;

    /// <summary>
    /// Whether the caller's <c>Authorization</c> and <c>Cookie</c> headers reach the function's code. Off (the
    /// default), the gateway removes them: a token presented to the gateway, or cookies of another function sharing
    /// its origin, are not the function's to see. On, they pass as the caller sent them (a function that checks the
    /// caller itself, or a web app with its own sessions).
    /// </summary>
    [JsonPropertyName("passCallerCredentials")]
    [DefaultValue(false)]
    public bool PassCallerCredentials { get; init; }

    /// <summary>
    /// Whether the operator keeps a ClusterIP Service named after the function in front of its serving pods, for
    /// callers inside the cluster that reach the pods directly. Off (the default), there is none: callers go through the
    /// gateway, which authorises them, wakes the function from zero, retries, and tells the autoscaler about each
    /// request. A request through the Service does none of that: it needs a ready pod, it is not authorised by the
    /// gateway, and the autoscaler does not count it (a function busy only through its Service is scaled to zero). On,
    /// the Service is made with the function's first pod and kept at zero (its ClusterIP stays); turned off again, the
    /// operator deletes it.
    /// </summary>
    [JsonPropertyName("clusterService")]
    [DefaultValue(false)]
    public bool ClusterService { get; init; }

    /// <summary>Retries of failed invocations by the gateway; none when absent.</summary>
    [JsonPropertyName("retries")]
    public RetryPolicy? Retries { get; init; }

    /// <summary>
    /// Invokes the function on a cron schedule through the gateway (Modal's Cron): at
    /// each tick the leading operator sends <c>POST path</c> (empty body, header
    /// <c>X-Pilotlight-Schedule-Time</c>) as a client would, so the function wakes
    /// from zero, and records the tick in <c>status.lastScheduleTime</c> before
    /// sending and the answer in <c>status.lastScheduleResult</c>. Each tick is sent
    /// at most once, across operator restarts and leader changes. A tick that came
    /// while no operator led runs once when one leads again if it is at most 5
    /// minutes old (only the latest such tick); an older one is recorded as
    /// <c>Missed</c> and not run. Warm capacity is made ready ahead of each tick
    /// (<c>prewarm.leadTime</c>).
    /// </summary>
    [JsonPropertyName("schedule")]
    public InvocationSchedule? Schedule { get; init; }

    /// <summary>Volumes, e.g. model weights, mountable into the user's container.</summary>
    [JsonPropertyName("volumes")]
    [ListType("map", "name")]
    public IReadOnlyList<V1Volume>? Volumes { get; init; }

    /// <summary>Where the volumes appear in the user's container.</summary>
    [JsonPropertyName("volumeMounts")]
    public IReadOnlyList<V1VolumeMount>? VolumeMounts { get; init; }

    /// <summary>RuntimeClass for the pods, e.g. <c>nvidia</c>.</summary>
    [JsonPropertyName("runtimeClassName")]
    [RegularExpression(Patterns.DnsSubdomain)]
    public string? RuntimeClassName { get; init; }

    /// <summary>ServiceAccount the pods run as.</summary>
    [JsonPropertyName("serviceAccountName")]
    [RegularExpression(Patterns.DnsSubdomain)]
    public string? ServiceAccountName { get; init; }

    /// <summary>Secrets for pulling the image from a private registry.</summary>
    [JsonPropertyName("imagePullSecrets")]
    public IReadOnlyList<V1LocalObjectReference>? ImagePullSecrets { get; init; }

    /// <summary>Extra node labels the pods require, merged with the GPU placement.</summary>
    [JsonPropertyName("nodeSelector")]
    public IReadOnlyDictionary<string, string>? NodeSelector { get; init; }

    /// <summary>Extra tolerations, added to the one for GPU nodes.</summary>
    [JsonPropertyName("tolerations")]
    public IReadOnlyList<V1Toleration>? Tolerations { get; init; }
}

/// <summary>The GPUs a replica needs.</summary>
public sealed record GpuRequirement
{
    /// <summary>
    /// Preferred GPU type, a name from the platform's GPU catalog (shipped: T4, L4, A10, L40S, A100-40GB, A100-80GB,
    /// H100, H200, B200, V100, A40, L40, RTX-6000-Ada, GH200, GB200; the chart's gpuTypes may add others). Matched
    /// ignoring case; a name the catalog lacks is refused with the list of known ones.
    /// </summary>
    [JsonPropertyName("type")]
    [Required]
    public required GpuType Type { get; init; }

    /// <summary>GPUs per replica; 0 runs on a GPU node without exposing any GPU.</summary>
    [JsonPropertyName("count")]
    [Range(0, 8), DefaultValue(1)]
    public int Count { get; init; } = 1;

    /// <summary>Other acceptable GPU types from the platform's catalog, most preferred first.</summary>
    [JsonPropertyName("fallbacks")]
    [MaxLength(8)]
    public IReadOnlyList<GpuType>? Fallbacks { get; init; }
}

/// <summary>Compute resources per replica, used as requests (and as the memory limit).</summary>
public sealed record ComputeResources
{
    /// <summary>CPU, e.g. <c>2</c> or <c>500m</c>.</summary>
    [JsonPropertyName("cpu")]
    public ResourceQuantity? Cpu { get; init; }

    /// <summary>Memory, e.g. <c>16Gi</c>.</summary>
    [JsonPropertyName("memory")]
    public ResourceQuantity? Memory { get; init; }

    /// <summary>Ephemeral storage, e.g. <c>20Gi</c>.</summary>
    [JsonPropertyName("ephemeralStorage")]
    public ResourceQuantity? EphemeralStorage { get; init; }
}

/// <summary>Who may invoke a function (see <see cref="GpuFunctionSpec.Access"/>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FunctionAccess>))]
public enum FunctionAccess
{
    /// <summary>Callers the gateway authenticates and RBAC allows to invoke this function.</summary>
    Private,

    /// <summary>Anyone who reaches the gateway, if the platform allows public functions.</summary>
    Public,
}

/// <summary>How replicas follow demand (Knative KPA-style).</summary>
[ValidationRule("self.minReplicas <= self.maxReplicas", "spec.scaling.minReplicas: more than spec.scaling.maxReplicas")]
[ValidationRule("!has(self.targetConcurrency) || self.targetConcurrency <= self.maxConcurrency",
    "spec.scaling.targetConcurrency: more than spec.scaling.maxConcurrency, which no pod could reach")]
public sealed record ScalingPolicy
{
    /// <summary>Replicas kept even with no traffic; 0 lets the function scale to zero.</summary>
    [JsonPropertyName("minReplicas")]
    [Range(0, 1000), DefaultValue(0)]
    public int MinReplicas { get; init; }

    /// <summary>Most replicas the autoscaler may run.</summary>
    [JsonPropertyName("maxReplicas")]
    [Range(1, 1000), DefaultValue(10)]
    public int MaxReplicas { get; init; } = 10;

    /// <summary>Extra replicas kept above demand while the function is active.</summary>
    [JsonPropertyName("bufferReplicas")]
    [Range(0, 100), DefaultValue(0)]
    public int BufferReplicas { get; init; }

    /// <summary>
    /// In-flight requests per replica the autoscaler aims for; <see cref="MaxConcurrency"/> when absent.
    /// </summary>
    [JsonPropertyName("targetConcurrency")]
    [Range(1, 10000)]
    public int? TargetConcurrency { get; init; }

    /// <summary>Hard limit of in-flight requests per replica, enforced by the runtime shim.</summary>
    [JsonPropertyName("maxConcurrency")]
    [Range(1, 10000), DefaultValue(1)]
    public int MaxConcurrency { get; init; } = 1;

    /// <summary>
    /// Time from the last request finishing (with none in flight) before the function scales down to its
    /// minimum; a request in flight always keeps its pod, however long it runs.
    /// </summary>
    [JsonPropertyName("scaledownWindow")]
    [RegularExpression(Patterns.Duration), DefaultValue("60s")]
    public string ScaledownWindow { get; init; } = "60s";
}

/// <summary>
/// How pods of an older template (after a change of the spec, or of <c>pilotlight.dev/restartedAt</c>) are replaced,
/// as a Deployment's RollingUpdate does: each an integer, or a percentage of the desired replicas.
/// </summary>
public sealed record RolloutPolicy
{
    /// <summary>
    /// Pods of the new template made above the desired replicas while old ones remain (a percentage rounds up).
    /// Each needs a free replica's GPUs: on a pool with none spare, set 0 and <c>maxUnavailable</c> 1 or more.
    /// </summary>
    [JsonPropertyName("maxSurge")]
    [RegularExpression(Patterns.Percentage), DefaultValue(1)]
    public IntOrString MaxSurge { get; init; } = 1;

    /// <summary>
    /// Ready pods the rollout may take away below the desired replicas (a percentage rounds down). An old pod that
    /// goes drains the requests it has first. Not 0 together with <c>maxSurge</c> 0.
    /// </summary>
    [JsonPropertyName("maxUnavailable")]
    [RegularExpression(Patterns.Percentage), DefaultValue(0)]
    public IntOrString MaxUnavailable { get; init; } = 0;
}

/// <summary>Ways to make a cold start warm. Nothing is pre-warmed when absent.</summary>
public sealed record PrewarmPolicy
{
    /// <summary>Ready-but-idle replicas kept on standby and claimed on demand.</summary>
    [JsonPropertyName("warmReplicas")]
    [Range(0, 100), DefaultValue(0)]
    public int WarmReplicas { get; init; }

    /// <summary>
    /// Replica-sized GPU reservations held by low-priority placeholder pods, which
    /// the function's own pods preempt.
    /// </summary>
    [JsonPropertyName("reservedReplicas")]
    [Range(0, 100), DefaultValue(0)]
    public int ReservedReplicas { get; init; }

    /// <summary>Pull the image ahead of time on every node with a matching GPU.</summary>
    [JsonPropertyName("prePull")]
    [DefaultValue(false)]
    public bool PrePull { get; init; }

    /// <summary>How long before each scheduled invocation warm capacity is made ready.</summary>
    [JsonPropertyName("leadTime")]
    [RegularExpression(Patterns.Duration), DefaultValue("2m")]
    public string LeadTime { get; init; } = "2m";

    /// <summary>
    /// After the function's last request, at least one warm replica is kept for
    /// this long (recent traffic predicts more); <c>0s</c> turns the rule off.
    /// </summary>
    [JsonPropertyName("keepWarmFor")]
    [RegularExpression(Patterns.Duration), DefaultValue("10m")]
    public string KeepWarmFor { get; init; } = "10m";
}

/// <summary>Retries of failed invocations (Modal's Retries).</summary>
public sealed record RetryPolicy
{
    /// <summary>Retries after the first attempt.</summary>
    [JsonPropertyName("maxRetries")]
    [Required, Range(0, 10)]
    public required int MaxRetries { get; init; }

    /// <summary>Delay before the first retry.</summary>
    [JsonPropertyName("initialDelay")]
    [RegularExpression(Patterns.Duration), DefaultValue("1s")]
    public string InitialDelay { get; init; } = "1s";

    /// <summary>Factor each further delay grows by.</summary>
    [JsonPropertyName("backoffCoefficient")]
    [Range(1.0, 10.0), DefaultValue(2.0)]
    public double BackoffCoefficient { get; init; } = 2.0;

    /// <summary>Longest delay between attempts.</summary>
    [JsonPropertyName("maxDelay")]
    [RegularExpression(Patterns.Duration), DefaultValue("60s")]
    public string MaxDelay { get; init; } = "60s";
}

/// <summary>A cron schedule on which the function is invoked through the gateway.</summary>
public sealed record InvocationSchedule
{
    /// <summary>
    /// Five-field cron expression (minute hour day-of-month month day-of-week), e.g. <c>0 9 * * 1-5</c>,
    /// or @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually. Read by Cronos: when both
    /// day-of-month and day-of-week are restricted, a day must match both (<c>0 0 13 * 5</c> is Friday the 13th).
    /// </summary>
    [JsonPropertyName("cron")]
    [Required, RegularExpression(Patterns.Cron)]
    public required string Cron { get; init; }

    /// <summary>
    /// IANA time zone the expression is read in, e.g. <c>Europe/Berlin</c>. A wall-clock
    /// time skipped by a daylight saving change runs at the end of the gap; one repeated runs once.
    /// </summary>
    [JsonPropertyName("timeZone")]
    [DefaultValue("UTC"), MinLength(1)]
    public string TimeZone { get; init; } = "UTC";

    /// <summary>Path the scheduled request is sent to.</summary>
    [JsonPropertyName("path")]
    [RegularExpression(Patterns.HttpPath), DefaultValue("/")]
    public string Path { get; init; } = "/";
}
