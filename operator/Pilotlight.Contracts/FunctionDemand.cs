using System.Text.Json.Serialization;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Contracts;

/// <summary>One function's demand at one gateway (or summed over all of them).</summary>
public sealed record FunctionDemand
{
    /// <summary>Where a gateway serves its report: a JSON array of <see cref="FunctionDemand"/>, one per function with traffic.</summary>
    public const string ReportPath = "/internal/demand";

    /// <summary>Namespace of the function.</summary>
    [JsonPropertyName("namespace")]
    public required string Namespace { get; init; }

    /// <summary>Name of the function.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>Requests in flight, counting those held while the function wakes.</summary>
    [JsonPropertyName("inFlight")]
    public int InFlight { get; init; }

    /// <summary>When the last request arrived.</summary>
    [JsonPropertyName("lastRequest")]
    public DateTimeOffset? LastRequest { get; init; }

    /// <summary>
    /// When a request last finished (answered, failed or given up). With <see cref="InFlight"/> at 0,
    /// the scaledown window counts from here: a long request keeps its function active until it ends.
    /// </summary>
    [JsonPropertyName("lastFinished")]
    public DateTimeOffset? LastFinished { get; init; }

    /// <summary>
    /// In-flight requests by pod name, so scale-down can pick idle pods. Warm standby pods the gateway routed to
    /// are listed too: the operator counts them busy and claims them first.
    /// </summary>
    [JsonPropertyName("pods")]
    public Dictionary<string, int> Pods { get; init; } = [];

    /// <summary>The function's key.</summary>
    [JsonIgnore]
    public ObjectKey Key => new(Namespace, Name);
}
