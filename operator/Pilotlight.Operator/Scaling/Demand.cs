using System.Net.Http.Json;
using Microsoft.Extensions.Logging;
using Pilotlight.ControllerRuntime;
using Pilotlight.Contracts;
using Prometheus;

namespace Pilotlight.Operator.Scaling;

/// <summary>One poll of every gateway's demand.</summary>
/// <param name="Functions">Demand per function, summed over the gateways that answered.</param>
/// <param name="Unread">Gateways that could not be read this poll (unreachable, slow, a bad answer, or listed as not ready).</param>
public sealed record DemandReport(IReadOnlyList<FunctionDemand> Functions, IReadOnlyList<Uri> Unread)
{
    /// <summary>
    /// True when every configured gateway answered, so a function missing from
    /// <see cref="Functions"/> really has no demand. An incomplete report is unknown demand, never zero.
    /// </summary>
    public bool Complete => Unread.Count == 0;
}

/// <summary>Where the autoscaler reads demand from.</summary>
public interface IDemandSource
{
    /// <summary>Demand per function, summed over every gateway, and which gateways could not be read.</summary>
    Task<DemandReport> PollAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Polls every gateway's <c>/internal/demand</c> and adds them up, so with
/// several gateway replicas their demand adds. A gateway that does not answer
/// (within a second), or one known to exist that cannot be polled (a not-ready
/// address of the gateway Service), makes the report incomplete: the autoscaler
/// then scales nothing down that tick. An empty gateway set is a complete report
/// of no demand: an operator run without gateways (<c>--gateways</c> empty, or a
/// gateway Service with no pods) has nothing that could serve a request, so
/// functions stay at minReplicas.
/// </summary>
public sealed partial class GatewayDemandSource(HttpClient http, Func<GatewaySet> gateways, ILogger logger) : IDemandSource
{
    private static readonly Counter UnreadCounter = Metrics.CreateCounter("pilotlight_autoscaler_gateway_unread_total",
        "Demand reads of a gateway that failed or could not be made, per configured gateway URL, or per gateway Service for its pods.", "gateway");

    private static readonly Gauge UnreadGauge = Metrics.CreateGauge("pilotlight_autoscaler_gateway_unread",
        "Gateways unread at the last demand poll, per configured gateway URL (0 or 1), or per gateway Service (its pods not read).", "gateway");

    /// <summary>A source over gateways named by URL only (<c>--gateways</c>).</summary>
    public GatewayDemandSource(HttpClient http, Func<IReadOnlyList<Uri>> gateways, ILogger logger)
        : this(http, () => GatewaySet.Of(gateways()), logger)
    {
    }

    /// <summary>Adds the operator's credentials to a read (see <c>--gateway-token-file</c>); nothing by default.</summary>
    public Func<HttpRequestMessage, CancellationToken, ValueTask> Authenticate { get; init; } = (_, _) => ValueTask.CompletedTask;

    /// <inheritdoc />
    public async Task<DemandReport> PollAsync(CancellationToken cancellationToken)
    {
        var set = gateways();
        var polls = await Task.WhenAll(set.Poll.Select(async g =>
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(1));
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(g.Url, FunctionDemand.ReportPath));
                await Authenticate(request, timeout.Token).ConfigureAwait(false);
                using var response = await http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                response.EnsureSuccessStatusCode();
                var functions = await response.Content.ReadFromJsonAsync<List<FunctionDemand>>(timeout.Token).ConfigureAwait(false)
                    ?? throw new System.Text.Json.JsonException("null demand report");
                return (Gateway: g, Functions: (IReadOnlyList<FunctionDemand>?)functions);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // Whatever went wrong (refused, timed out, not JSON), this gateway's demand is unknown.
                LogUnread(logger, g.Url, ex.Message);
                return (Gateway: g, Functions: null);
            }
        })).ConfigureAwait(false);

        foreach (var g in set.Unreadable)
        {
            LogUnread(logger, g.Url, "listed as not ready, or its Service's Endpoints are not known");
        }

        var unread = polls.Where(p => p.Functions is null).Select(p => p.Gateway).Concat(set.Unreadable).ToList();
        foreach (var g in unread)
        {
            UnreadCounter.WithLabels(g.Label).Inc();
        }

        foreach (var label in set.Labels)
        {
            UnreadGauge.WithLabels(label).Set(unread.Count(g => g.Label == label));
        }

        return new DemandReport(Sum(polls.SelectMany(p => p.Functions ?? [])), [.. unread.Select(g => g.Url)]);
    }

    /// <summary>Adds up reports of the same function from several gateways (latest times win).</summary>
    public static IReadOnlyList<FunctionDemand> Sum(IEnumerable<FunctionDemand> reports) =>
        reports.GroupBy(r => r.Key).Select(g => new FunctionDemand
        {
            Namespace = g.Key.Namespace!,
            Name = g.Key.Name,
            InFlight = g.Sum(r => r.InFlight),
            LastRequest = g.Max(r => r.LastRequest),
            LastFinished = g.Max(r => r.LastFinished),
            Pods = g.SelectMany(r => r.Pods).GroupBy(p => p.Key).ToDictionary(p => p.Key, p => p.Sum(x => x.Value)),
        }).ToList();

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Gateway {Gateway} did not report demand ({Error}); no function scales down until it does")]
    private static partial void LogUnread(ILogger logger, Uri gateway, string error);
}
