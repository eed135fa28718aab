using System.Net.Http.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Scaling;

/// <summary>One function's demand at one gateway (or summed over all of them).</summary>
public sealed record FunctionDemand
{
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

    /// <summary>In-flight requests by pod name, so scale-down can pick idle pods.</summary>
    [JsonPropertyName("pods")]
    public Dictionary<string, int> Pods { get; init; } = [];

    /// <summary>The function's key.</summary>
    [JsonIgnore]
    public ObjectKey Key => new(Namespace, Name);
}

/// <summary>Where the autoscaler reads demand from.</summary>
public interface IDemandSource
{
    /// <summary>Demand per function, summed over every gateway.</summary>
    Task<IReadOnlyList<FunctionDemand>> PollAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Polls every gateway's <c>/internal/demand</c> and adds them up, so with
/// several gateway replicas their demand adds. An unreachable gateway is
/// skipped for that tick (logged), not fatal.
/// </summary>
public sealed class GatewayDemandSource(HttpClient http, Func<IReadOnlyList<Uri>> gateways, ILogger logger) : IDemandSource
{
    /// <inheritdoc />
    public async Task<IReadOnlyList<FunctionDemand>> PollAsync(CancellationToken cancellationToken)
    {
        var reports = await Task.WhenAll(gateways().Select(async g =>
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(1));
                return await http.GetFromJsonAsync<List<FunctionDemand>>(new Uri(g, "/internal/demand"), timeout.Token).ConfigureAwait(false) ?? [];
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("Gateway {Gateway} did not report demand: {Error}", g, ex.Message);
                return [];
            }
        })).ConfigureAwait(false);

        return Sum(reports.SelectMany(r => r));
    }

    /// <summary>Adds up reports of the same function from several gateways.</summary>
    public static IReadOnlyList<FunctionDemand> Sum(IEnumerable<FunctionDemand> reports) =>
        reports.GroupBy(r => r.Key).Select(g => new FunctionDemand
        {
            Namespace = g.Key.Namespace!,
            Name = g.Key.Name,
            InFlight = g.Sum(r => r.InFlight),
            LastRequest = g.Max(r => r.LastRequest),
            Pods = g.SelectMany(r => r.Pods).GroupBy(p => p.Key).ToDictionary(p => p.Key, p => p.Sum(x => x.Value)),
        }).ToList();
}
