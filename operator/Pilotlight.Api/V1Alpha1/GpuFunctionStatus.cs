using System.Text.Json.Serialization;
using k8s.Models;

namespace Pilotlight.Api.V1Alpha1;

/// <summary>What the operator observed of a <see cref="GpuFunction"/>. Follows kstatus conventions.</summary>
public sealed record GpuFunctionStatus
{
    /// <summary>The generation of the spec this status describes.</summary>
    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; init; }

    /// <summary>Conditions, <c>Ready</c> first, each with a stable reason.</summary>
    [JsonPropertyName("conditions")]
    [Schema.ListType("map", "type")]
    public IReadOnlyList<V1Condition>? Conditions { get; init; }

    /// <summary>Pods serving or starting to serve the function.</summary>
    [JsonPropertyName("replicas")]
    public int Replicas { get; init; }

    /// <summary>Pods ready to serve.</summary>
    [JsonPropertyName("readyReplicas")]
    public int ReadyReplicas { get; init; }

    /// <summary>Ready standby pods not yet serving.</summary>
    [JsonPropertyName("warmReplicas")]
    public int WarmReplicas { get; init; }

    /// <summary>Placeholder pods holding GPUs for the function (running, not preempted).</summary>
    [JsonPropertyName("reservedReplicas")]
    public int ReservedReplicas { get; init; }

    /// <summary>Nodes with a GPU the function can use, where its image is pre-pulled.</summary>
    [JsonPropertyName("prePulledNodes")]
    public int PrePulledNodes { get; init; }

    /// <summary>Nodes with a GPU the function can use (those pre-pull targets).</summary>
    [JsonPropertyName("prePullEligibleNodes")]
    public int PrePullEligibleNodes { get; init; }

    /// <summary>Replicas the autoscaler last asked for.</summary>
    [JsonPropertyName("desiredReplicas")]
    public int DesiredReplicas { get; init; }

    /// <summary>Label selector of the function's serving pods.</summary>
    [JsonPropertyName("selector")]
    public string? Selector { get; init; }

    /// <summary>GPU type the function's pods are running on, once resolved.</summary>
    [JsonPropertyName("gpu")]
    public string? Gpu { get; init; }

    /// <summary>Gateway path that invokes the function.</summary>
    [JsonPropertyName("endpoint")]
    public string? Endpoint { get; init; }

    /// <summary>When the gateway last saw a request for the function.</summary>
    [JsonPropertyName("lastRequestTime")]
    public DateTime? LastRequestTime { get; init; }

    /// <summary>
    /// Cold starts over the function's lifetime: requests a gateway held because no ready pod could take them and
    /// then served on a pod that was created, or still starting, when they arrived (a wake from zero, or a wait on a
    /// starting pod during a scale-up). A request served at once by a warm standby is not one, nor is one that waited
    /// for room on a pod already serving. Refreshed at a bounded rate (about every ten seconds while it grows); cold
    /// starts a gateway counted but had not reported when it stopped are not included.
    /// </summary>
    [JsonPropertyName("coldStarts")]
    public long ColdStarts { get; init; }

    /// <summary>
    /// Per gateway process, how many of its cold starts <see cref="ColdStarts"/> already includes, so that a report
    /// read twice (or by a new operator leader) is never counted twice. Bookkeeping of the operator.
    /// </summary>
    [JsonPropertyName("coldStartSources")]
    [Schema.ListType("map", "gateway")]
    [System.ComponentModel.DataAnnotations.MaxLength(256)]
    public IReadOnlyList<ColdStartSource>? ColdStartSources { get; init; }

    /// <summary>Usage accumulated over the function's lifetime.</summary>
    [JsonPropertyName("usage")]
    public UsageTotals? Usage { get; init; }

    /// <summary>
    /// The scheduled time of the last tick of <c>spec.schedule</c> the operator
    /// took on: recorded before its request is sent, so no tick is sent twice,
    /// across restarts and leader changes. Written by the schedule loop only.
    /// </summary>
    [JsonPropertyName("lastScheduleTime")]
    public DateTime? LastScheduleTime { get; init; }

    /// <summary>What became of the tick at <see cref="LastScheduleTime"/>. Written by the schedule loop only.</summary>
    [JsonPropertyName("lastScheduleResult")]
    public ScheduleResult? LastScheduleResult { get; init; }
}

/// <summary>How many cold starts one gateway process counted for a function.</summary>
public sealed record ColdStartSource
{
    /// <summary>The gateway process (its signals' epoch, random per process start).</summary>
    [JsonPropertyName("gateway")]
    [System.ComponentModel.DataAnnotations.MaxLength(64)]
    public required string Gateway { get; init; }

    /// <summary>Its count.</summary>
    [JsonPropertyName("count")]
    public long Count { get; init; }
}

/// <summary>
/// The outcome of one scheduled invocation: the request <c>POST schedule.path</c>
/// sent through the gateway at a tick of <c>spec.schedule</c>.
/// </summary>
public sealed record ScheduleResult
{
    /// <summary>The tick this result belongs to (its scheduled time).</summary>
    [JsonPropertyName("scheduleTime")]
    public DateTime? ScheduleTime { get; init; }

    /// <summary>
    /// <c>Pending</c> while the request runs (or if the operator stopped before its answer came),
    /// <c>Succeeded</c> for a 2xx answer, <c>Failed</c> for any other answer or none,
    /// <c>Missed</c> when the tick came while no operator led and was too old to run when one did.
    /// </summary>
    [JsonPropertyName("outcome")]
    [System.ComponentModel.DataAnnotations.RegularExpression("^(Pending|Succeeded|Failed|Missed)$")]
    public string? Outcome { get; init; }

    /// <summary>The HTTP status code the gateway answered, when it answered.</summary>
    [JsonPropertyName("statusCode")]
    public int? StatusCode { get; init; }

    /// <summary>Why the invocation failed or was not sent, when it did not succeed.</summary>
    [JsonPropertyName("message")]
    [System.ComponentModel.DataAnnotations.MaxLength(1024)]
    public string? Message { get; init; }

    /// <summary>When the request was sent.</summary>
    [JsonPropertyName("startTime")]
    public DateTime? StartTime { get; init; }

    /// <summary>When its answer (or failure) came.</summary>
    [JsonPropertyName("finishTime")]
    public DateTime? FinishTime { get; init; }
}

/// <summary>
/// The operator's usage ledger for a function or a sandbox, from pod lifetimes
/// in the API: a pod is billed for its GPUs, CPU and memory requests from its
/// start to its deletion, whether or not its metering sidecar flushed (or was
/// killed, or lied). Totals never go backwards.
/// </summary>
public sealed record UsageTotals
{
    /// <summary>GPU-seconds allocated (GPU count times seconds held), up to <see cref="AsOf"/>.</summary>
    [JsonPropertyName("gpuSeconds")]
    public double GpuSeconds { get; init; }

    /// <summary>GPU-seconds of pods that are gone.</summary>
    [JsonPropertyName("closedGpuSeconds")]
    public double ClosedGpuSeconds { get; init; }

    /// <summary>When the totals were computed; a pod that vanished unseen is billed up to here.</summary>
    [JsonPropertyName("asOf")]
    public DateTime? AsOf { get; init; }

    /// <summary>Pods still being billed.</summary>
    [JsonPropertyName("openPods")]
    [Schema.ListType("map", "uid")]
    [System.ComponentModel.DataAnnotations.MaxLength(1024)]
    public IReadOnlyList<BilledPod>? OpenPods { get; init; }

    /// <summary>CPU-seconds allocated (CPU requests in cores times seconds held), up to <see cref="AsOf"/>.</summary>
    [JsonPropertyName("cpuSeconds")]
    public double CpuSeconds { get; init; }

    /// <summary>CPU-seconds allocated to pods that are gone.</summary>
    [JsonPropertyName("closedCpuSeconds")]
    public double ClosedCpuSeconds { get; init; }

    /// <summary>Memory byte-seconds allocated (memory requests times seconds held), up to <see cref="AsOf"/>.</summary>
    [JsonPropertyName("memoryByteSeconds")]
    public double MemoryByteSeconds { get; init; }

    /// <summary>Memory byte-seconds allocated to pods that are gone.</summary>
    [JsonPropertyName("closedMemoryByteSeconds")]
    public double ClosedMemoryByteSeconds { get; init; }
}

/// <summary>A pod the ledger bills: its GPUs from <see cref="Start"/> until it is gone.</summary>
public sealed record BilledPod
{
    /// <summary>The pod's UID.</summary>
    [JsonPropertyName("uid")]
    public required string Uid { get; init; }

    /// <summary>GPUs the pod holds.</summary>
    [JsonPropertyName("gpus")]
    public int Gpus { get; init; }

    /// <summary>CPU cores the pod requests (the sum of its containers' requests, else limits).</summary>
    [JsonPropertyName("cpu")]
    public double Cpu { get; init; }

    /// <summary>Memory bytes the pod requests (the sum of its containers' requests, else limits).</summary>
    [JsonPropertyName("memoryBytes")]
    public double MemoryBytes { get; init; }

    /// <summary>When billing started (the pod's start, else its creation; for a sandbox never before the sandbox's creation).</summary>
    [JsonPropertyName("start")]
    public DateTime Start { get; init; }
}
