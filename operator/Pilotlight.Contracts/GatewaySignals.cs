using System.Text.Json.Serialization;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Contracts;

/// <summary>
/// What a gateway tells the operator without writing to the Kubernetes API: functions woken by requests that wait
/// with no ready pod, their cold starts, and sandboxes' last activity and termination requests. The operator's leader reads it from
/// every gateway pod at <see cref="Path"/> on the gateway's internal port, as a long poll: the gateway answers at once
/// when its <see cref="Version"/> moved past the one the operator already has (or its <see cref="Epoch"/> is not the
/// one the operator knows, after a restart), else when something changes or after <see cref="MaxWait"/>. Every answer
/// is the gateway's whole current state, so a new leader needs one answer per gateway to know everything.
/// </summary>
public sealed record GatewaySignals
{
    /// <summary>Where a gateway serves its signals: <c>GET {Path}?epoch=E&amp;after=V</c>.</summary>
    public const string Path = "/internal/signals";

    /// <summary>The longest a gateway holds a poll with nothing new.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(20);

    /// <summary>A random name of this gateway process: versions of another process are not comparable.</summary>
    [JsonPropertyName("epoch")]
    public required string Epoch { get; init; }

    /// <summary>Grows with every change of the gateway's signals.</summary>
    [JsonPropertyName("version")]
    public long Version { get; init; }

    /// <summary>Functions woken recently (the latest wake of each).</summary>
    [JsonPropertyName("wakes")]
    public List<WakeSignal> Wakes { get; init; } = [];

    /// <summary>
    /// Cold starts this gateway process counted per function, since it started: the operator adds what grew since
    /// the count it last took from this <see cref="Epoch"/> to <c>status.coldStarts</c>.
    /// </summary>
    [JsonPropertyName("coldStarts")]
    public List<ColdStartSignal> ColdStarts { get; init; } = [];

    /// <summary>Sandboxes used through this gateway (the latest activity of each, and whether a caller terminated it).</summary>
    [JsonPropertyName("sandboxes")]
    public List<SandboxSignal> Sandboxes { get; init; } = [];
}

/// <summary>Requests wait at a gateway for a function with no ready pod.</summary>
public sealed record WakeSignal
{
    /// <summary>Namespace of the function.</summary>
    [JsonPropertyName("namespace")]
    public required string Namespace { get; init; }

    /// <summary>Name of the function.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>When the gateway woke it (the latest time).</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>How many requests the gateway held for it then, so the first decision asks for enough pods (<see cref="WakeRequest.PodsFor"/>).</summary>
    [JsonPropertyName("held")]
    public int Held { get; init; }

    /// <summary>The function's key.</summary>
    [JsonIgnore]
    public ObjectKey Key => new(Namespace, Name);
}

/// <summary>
/// Requests for one function that a gateway held while a pod started (created, or still loading, when the request
/// arrived) and then served: its cold starts. A request a warm standby served is not one.
/// </summary>
public sealed record ColdStartSignal
{
    /// <summary>Namespace of the function.</summary>
    [JsonPropertyName("namespace")]
    public required string Namespace { get; init; }

    /// <summary>Name of the function.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>The UID of the GpuFunction counted: a new function of the same name starts from zero.</summary>
    [JsonPropertyName("uid")]
    public required string Uid { get; init; }

    /// <summary>Cold starts this gateway process counted for it; only grows.</summary>
    [JsonPropertyName("count")]
    public long Count { get; init; }

    /// <summary>When the last of them was counted.</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>The function's key.</summary>
    [JsonIgnore]
    public ObjectKey Key => new(Namespace, Name);
}

/// <summary>A sandbox used through a gateway.</summary>
public sealed record SandboxSignal
{
    /// <summary>Namespace of the sandbox.</summary>
    [JsonPropertyName("namespace")]
    public required string Namespace { get; init; }

    /// <summary>Name of the sandbox.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>The UID of the Sandbox the signal is for: a new Sandbox of the same name does not inherit it.</summary>
    [JsonPropertyName("uid")]
    public required string Uid { get; init; }

    /// <summary>When an exec, stdin or file call last began or ended (idleTimeout counts from it).</summary>
    [JsonPropertyName("lastActivity")]
    public DateTimeOffset? LastActivity { get; init; }

    /// <summary>Calls running now: a sandbox with one is not idle, however long it runs.</summary>
    [JsonPropertyName("active")]
    public int Active { get; init; }

    /// <summary>When a caller asked to terminate it; null: not asked.</summary>
    [JsonPropertyName("terminateRequested")]
    public DateTimeOffset? TerminateRequested { get; init; }

    /// <summary>The sandbox's key.</summary>
    [JsonIgnore]
    public ObjectKey Key => new(Namespace, Name);
}
