using System.Net.Http.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Operator.Scaling;

/// <summary>
/// The leader's side of <see cref="GatewaySignals"/>: one long poll per gateway (the same gateways the autoscaler
/// reads demand from), so a gateway's wake or a caller's terminate reaches the controllers within a round trip, with
/// no write to the API by the gateway. What each gateway last said is merged: the latest wake of a function, the
/// latest activity of a sandbox (remembered for the term even after its gateway went), calls running on it, and any
/// terminate request. Idle timeouts wait for <see cref="Complete"/>: until every gateway answered in this term, a
/// sandbox may have activity the operator has not heard of.
/// </summary>
public sealed partial class GatewaySignalFeed : IController
{
    private static readonly Gauge UnheardGauge = Metrics.CreateGauge("pilotlight_operator_gateway_signals_unheard",
        "Gateways whose signals (wakes, sandbox activity) the operator has not read in this term, or lost.");

    private static readonly TimeSpan Retry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Spacing = TimeSpan.FromMilliseconds(50);

    private readonly HttpClient _http;
    private readonly Func<GatewaySet> _gateways;
    private readonly Func<HttpRequestMessage, CancellationToken, ValueTask> _authenticate;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<Uri, Poller> _pollers = [];
    private readonly Dictionary<ObjectKey, (string Uid, DateTimeOffset At)> _activity = [];

    /// <summary>Per function, per gateway epoch: the latest count heard (kept for the term, like activity).</summary>
    private readonly Dictionary<ObjectKey, Dictionary<string, (string Uid, long Count)>> _coldStarts = [];
    private GatewaySet _set = GatewaySet.Empty;
    private bool _leading;

    /// <summary>A feed over <paramref name="gateways"/>, asking with the credentials <paramref name="authenticate"/> adds.</summary>
    public GatewaySignalFeed(HttpClient http, Func<GatewaySet> gateways, Func<HttpRequestMessage, CancellationToken, ValueTask>? authenticate = null,
        TimeProvider? time = null, ILogger? logger = null)
    {
        _http = http;
        _gateways = gateways;
        _authenticate = authenticate ?? ((_, _) => ValueTask.CompletedTask);
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Called with a function a gateway woke (or woke again); the function controller's queue.</summary>
    public Action<ObjectKey>? FunctionWoken { get; set; }

    /// <summary>Called with a function whose cold-start count grew at a gateway; the function controller's queue.</summary>
    public Action<ObjectKey>? ColdStartsCounted { get; set; }

    /// <summary>Called with a sandbox a caller asked to terminate; the sandbox controller's queue.</summary>
    public Action<ObjectKey>? SandboxTerminated { get; set; }

    /// <inheritdoc />
    public string Name => "gateway-signals";

    /// <summary>Informers the gateway set reads (the gateway Service's Endpoints), run with the feed.</summary>
    public IReadOnlyList<IInformer> GatewayInformers { get; init; } = [];

    /// <inheritdoc />
    public IReadOnlyList<IInformer> Informers => GatewayInformers;

    /// <summary>
    /// True while this instance leads and every gateway known now has answered in this term, and none is known but
    /// unreadable: nothing a gateway knows is missing. With no gateway at all, true.
    /// </summary>
    public bool Complete
    {
        get
        {
            lock (_gate)
            {
                return _leading && _set.Unreadable.Count == 0 && _set.Poll.All(g => _pollers.TryGetValue(g.Url, out var p) && p.Last is not null && p.Healthy);
            }
        }
    }

    /// <summary>The latest wake of <paramref name="function"/> any gateway holds, or null.</summary>
    public WakeSignal? Wake(ObjectKey function)
    {
        lock (_gate)
        {
            return _pollers.Values.Select(p => p.Wakes.GetValueOrDefault(function)).OfType<WakeSignal>().MaxBy(w => w.At);
        }
    }

    /// <summary>
    /// The cold starts each gateway process heard in this term counted for the GpuFunction with <paramref name="uid"/>:
    /// one entry per process (its epoch), also from gateways gone since (their last count stands).
    /// </summary>
    public IReadOnlyList<Api.V1Alpha1.ColdStartSource> ColdStarts(ObjectKey function, string uid)
    {
        lock (_gate)
        {
            return _coldStarts.TryGetValue(function, out var counts)
                ? [.. counts.Where(c => c.Value.Uid == uid).Select(c => new Api.V1Alpha1.ColdStartSource { Gateway = c.Key, Count = c.Value.Count })]
                : [];
        }
    }

    /// <summary>
    /// What the gateways say of the Sandbox with <paramref name="uid"/>: its latest activity (also from gateways gone in
    /// this term), the calls running on it now, and whether a caller asked to terminate it.
    /// </summary>
    public (DateTimeOffset? LastActivity, int Active, bool TerminateRequested) Sandbox(ObjectKey sandbox, string uid)
    {
        lock (_gate)
        {
            var signals = _pollers.Values.Select(p => p.Sandboxes.GetValueOrDefault(sandbox)).OfType<SandboxSignal>().Where(s => s.Uid == uid).ToList();
            DateTimeOffset? last = _activity.TryGetValue(sandbox, out var seen) && seen.Uid == uid ? seen.At : null;
            return (last, signals.Sum(s => s.Active), signals.Any(s => s.TerminateRequested is not null));
        }
    }

    /// <summary>The sandbox is gone: so is what was remembered of it.</summary>
    public void Forget(ObjectKey sandbox)
    {
        lock (_gate)
        {
            _activity.Remove(sandbox);
        }
    }

    /// <inheritdoc />
    public async Task RunAsync(ControllerMetrics metrics, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            // A new term: what an earlier term heard may be stale, and every gateway must answer again.
            _pollers.Clear();
            _activity.Clear();
            _coldStarts.Clear();
            _leading = true;
        }

        var tasks = new Dictionary<Uri, (Task Task, CancellationTokenSource Stop)>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var set = _gateways();
                lock (_gate)
                {
                    _set = set;
                }

                var wanted = set.Poll.Select(g => g.Url).ToHashSet();
                foreach (var url in wanted.Where(u => !tasks.ContainsKey(u)))
                {
                    var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    var poller = new Poller();
                    lock (_gate)
                    {
                        _pollers[url] = poller;
                    }

                    tasks[url] = (PollAsync(url, poller, stop.Token), stop);
                }

                foreach (var (url, running) in tasks.Where(kv => !wanted.Contains(kv.Key)).ToList())
                {
                    await running.Stop.CancelAsync().ConfigureAwait(false);
                    running.Stop.Dispose();
                    tasks.Remove(url);
                    lock (_gate)
                    {
                        _pollers.Remove(url);
                    }
                }

                UnheardGauge.Set(set.Unreadable.Count + set.Poll.Count(g => !Heard(g.Url)));
                await Task.Delay(Retry, _time, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            lock (_gate)
            {
                _leading = false;
            }

            foreach (var (_, running) in tasks)
            {
                await running.Stop.CancelAsync().ConfigureAwait(false);
                await running.Task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                running.Stop.Dispose();
            }
        }
    }

    private bool Heard(Uri url)
    {
        lock (_gate)
        {
            return _pollers.TryGetValue(url, out var p) && p.Last is not null && p.Healthy;
        }
    }

    private async Task PollAsync(Uri gateway, Poller poller, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var (epoch, version) = (poller.Last?.Epoch ?? "", poller.Last?.Version ?? -1);
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, $"{GatewaySignals.Path}?epoch={Uri.EscapeDataString(epoch)}&after={version}"));
                await _authenticate(request, ct).ConfigureAwait(false);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(GatewaySignals.MaxWait + TimeSpan.FromSeconds(10));
                using var response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                response.EnsureSuccessStatusCode();
                var signals = await response.Content.ReadFromJsonAsync<GatewaySignals>(timeout.Token).ConfigureAwait(false)
                    ?? throw new System.Text.Json.JsonException("null signals");
                Take(gateway, poller, signals);
                await Task.Delay(Spacing, _time, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                lock (_gate)
                {
                    if (poller.Healthy)
                    {
                        LogUnheard(_logger, gateway, ex.Message);
                    }

                    poller.Healthy = false;
                }

                await Task.Delay(Retry, _time, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private void Take(Uri gateway, Poller poller, GatewaySignals signals)
    {
        List<ObjectKey> woken, terminated, counted = [];
        lock (_gate)
        {
            var before = poller.Last;
            woken = [.. signals.Wakes.Where(w => poller.Wakes.GetValueOrDefault(w.Key) is not { } b || b.At != w.At || b.Held != w.Held)
                .Select(w => w.Key)];
            terminated = [.. signals.Sandboxes.Where(s => s.TerminateRequested is not null
                    && (poller.Sandboxes.GetValueOrDefault(s.Key) is not { } b || b.Uid != s.Uid || b.TerminateRequested is null))
                .Select(s => s.Key)];
            foreach (var s in signals.Sandboxes)
            {
                if (s.LastActivity is { } at && (!_activity.TryGetValue(s.Key, out var seen) || seen.Uid != s.Uid || seen.At < at))
                {
                    _activity[s.Key] = (s.Uid, at);
                }
            }

            foreach (var c in signals.ColdStarts)
            {
                if (!_coldStarts.TryGetValue(c.Key, out var counts))
                {
                    _coldStarts[c.Key] = counts = new Dictionary<string, (string, long)>(StringComparer.Ordinal);
                }

                if (!counts.TryGetValue(signals.Epoch, out var heard) || heard.Uid != c.Uid || heard.Count != c.Count)
                {
                    counts[signals.Epoch] = (c.Uid, c.Count);
                    counted.Add(c.Key);
                }
            }

            // A function this gateway listed before and no longer does was deleted (the gateway forgot it).
            var listed = signals.ColdStarts.Select(c => c.Key).ToHashSet();
            foreach (var gone in poller.ColdStartKeys.Where(k => !listed.Contains(k)))
            {
                if (_coldStarts.TryGetValue(gone, out var counts) && counts.Remove(signals.Epoch) && counts.Count == 0)
                {
                    _coldStarts.Remove(gone);
                }
            }

            poller.ColdStartKeys = listed;

            if (!poller.Healthy && before is not null)
            {
                LogHeard(_logger, gateway);
            }

            poller.Last = signals;
            poller.Wakes = signals.Wakes.GroupBy(w => w.Key).ToDictionary(g => g.Key, g => g.MaxBy(w => w.At)!);
            poller.Sandboxes = signals.Sandboxes.GroupBy(x => x.Key).ToDictionary(g => g.Key, g => g.Last());
            poller.Healthy = true;
        }

        foreach (var key in woken)
        {
            FunctionWoken?.Invoke(key);
        }

        foreach (var key in counted)
        {
            ColdStartsCounted?.Invoke(key);
        }

        foreach (var key in terminated)
        {
            SandboxTerminated?.Invoke(key);
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Gateway {Gateway} signals not read ({Error}); no sandbox ends idle until it answers")]
    private static partial void LogUnheard(ILogger logger, Uri gateway, string error);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Gateway {Gateway} signals read again")]
    private static partial void LogHeard(ILogger logger, Uri gateway);

    private sealed class Poller
    {
        public GatewaySignals? Last { get; set; }

        /// <summary>The last answer's wakes and sandboxes by key, for lookups per reconcile and per tick.</summary>
        public Dictionary<ObjectKey, WakeSignal> Wakes { get; set; } = [];

        public Dictionary<ObjectKey, SandboxSignal> Sandboxes { get; set; } = [];

        /// <summary>Functions the last answer counted cold starts for.</summary>
        public HashSet<ObjectKey> ColdStartKeys { get; set; } = [];

        public bool Healthy { get; set; } = true;
    }
}
