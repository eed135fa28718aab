using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Contracts;
using Prometheus;

namespace Pilotlight.Operator.Scaling;

/// <summary>
/// The autoscaler: every tick (leader only) it reads demand from the
/// gateways, decides each function's replica count with
/// <see cref="ScaleDecider"/> and asks the function controller to reconcile
/// the functions whose count changed. A gateway wakes a function at zero at
/// once through its signals (<see cref="GatewaySignalFeed"/>, read as <see cref="Wakes"/>); the
/// reconcile that follows sees the wake without waiting for a tick. Nothing scales down while any
/// gateway goes unread, nor before every gateway has been read for a full
/// stable window since this instance started leading; until its first tick a
/// function keeps what its status says (desired and ready replicas).
/// </summary>
public sealed partial class Autoscaler : IController
{
    private readonly Informer<GpuFunction> _functions;
    private readonly IDemandSource _demand;
    private readonly AutoscalerSettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>The pod load of a function no gateway reports: one shared empty map, not one per function.</summary>
    private static readonly IReadOnlyDictionary<string, int> NoLoad = new Dictionary<string, int>();

    private readonly ConcurrentDictionary<ObjectKey, Entry> _entries = new();
    private readonly Lock _gate = new();
    private DateTimeOffset? _completeSince;

    /// <summary>An autoscaler over the functions in <paramref name="functions"/>.</summary>
    public Autoscaler(Informer<GpuFunction> functions, IDemandSource demand, AutoscalerSettings? settings = null,
        TimeProvider? time = null, ILogger? logger = null)
    {
        _functions = functions;
        _demand = demand;
        _settings = settings ?? new AutoscalerSettings();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The operator's series (the autoscaler's are exported by the leader only).</summary>
    public OperatorMetrics Metrics { get; init; } = OperatorMetrics.Detached();

    /// <summary>The latest wake the gateways hold for a function (<see cref="GatewaySignalFeed.Wake"/>); none by default.</summary>
    public Func<ObjectKey, WakeSignal?> Wakes { get; init; } = _ => null;

    /// <summary>Called with a function whose desired count changed; the controller's queue.</summary>
    public Action<ObjectKey>? Changed { get; set; }

    /// <inheritdoc />
    public string Name => "autoscaler";

    /// <summary>Informers the demand source reads (the gateway Service's Endpoints), run and synced with the autoscaler's own.</summary>
    public IReadOnlyList<IInformer> DemandInformers { get; init; } = [];

    /// <inheritdoc />
    public IReadOnlyList<IInformer> Informers => [_functions, .. DemandInformers];

    /// <summary>
    /// True once every gateway has answered every poll for a full stable window since this
    /// instance started leading; until then nothing scales down (a restart or failover must not
    /// read "no report yet" as "no demand").
    /// </summary>
    public bool DemandSettled
    {
        get
        {
            lock (_gate)
            {
                return _completeSince is { } since && _time.GetUtcNow() - since >= _settings.StableWindow;
            }
        }
    }

    /// <summary>
    /// Replicas the function should have now; a fresh wake request counts at once. Before the first
    /// tick the function's own status seeds it (what the previous leader decided, and the pods that
    /// are ready), so a reconcile that runs first never deletes serving pods.
    /// </summary>
    public int DesiredReplicas(GpuFunction function)
    {
        var entry = EntryOf(function);
        lock (entry)
        {
            if (Wakes(ObjectKey.Of(function)) is { } wake && (entry.State.LastRequest is null || wake.At > entry.State.LastRequest))
            {
                // A request is waiting for a function with no ready pod: decide now, not at the next tick.
                entry.State = ScaleDecider.Decide(function.Spec.Scaling, entry.State with { LastRequest = wake.At }, entry.Samples,
                    function.Status?.ReadyReplicas ?? 0, _time.GetUtcNow(), _settings, new DemandNow(MayScaleDown: false, Waiting: wake.Held));
            }

            return Math.Clamp(entry.State.Desired,
                function.Spec.Scaling.MinReplicas, Math.Max(function.Spec.Scaling.MinReplicas, function.Spec.Scaling.MaxReplicas));
        }
    }

    /// <summary>When a request last arrived for the function, as far as the autoscaler knows.</summary>
    public DateTimeOffset? LastRequest(ObjectKey key) => _entries.TryGetValue(key, out var e) ? e.State.LastRequest : null;

    /// <summary>In-flight requests per pod of the function at the last tick (idle pods leave first).</summary>
    public IReadOnlyDictionary<string, int> PodLoad(ObjectKey key) =>
        _entries.TryGetValue(key, out var e) ? e.PodLoad : new Dictionary<string, int>();

    /// <inheritdoc />
    public async Task RunAsync(ControllerMetrics metrics, CancellationToken cancellationToken)
    {
        // A new term: what this instance knew when it last led may be stale, and demand must be
        // complete for a stable window again before anything scales down.
        lock (_gate)
        {
            _entries.Clear();
            _completeSince = null;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await TickAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(_settings.Tick, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogTickFailed(_logger, ex);
            }
        }
    }

    /// <summary>One decision round over every function.</summary>
    public async Task TickAsync(CancellationToken cancellationToken)
    {
        var report = await _demand.PollAsync(cancellationToken).ConfigureAwait(false);
        var demand = report.Functions.ToDictionary(d => d.Key);
        var now = _time.GetUtcNow();
        bool mayScaleDown;
        lock (_gate)
        {
            // Scale-down needs a full stable window of complete reports: after a start, a failover or an
            // unread gateway, the samples of that window undercount.
            _completeSince = report.Complete ? _completeSince ?? now : null;
            mayScaleDown = _completeSince is { } since && now - since >= _settings.StableWindow;
        }

        Metrics.DemandUnknown.Set(report.Complete ? 0 : 1);
        if (!report.Complete)
        {
            LogIncomplete(_logger, report.Unread.Count);
        }

        // Most functions have nothing in flight: their lists share this tick's one zero sample (at 10,000 functions
        // and a sample a tick over a stable window, an object each was about 12 MB).
        var idle = new DemandSample(now, 0);
        foreach (var function in _functions.List())
        {
            var key = ObjectKey.Of(function);
            var entry = EntryOf(function);
            bool changed, moved;
            lock (entry)
            {
                var seen = demand.GetValueOrDefault(key);
                entry.Samples.Add(seen is { InFlight: not 0 } ? new DemandSample(now, seen.InFlight) : idle);
                entry.Samples.RemoveAll(s => s.At < now - _settings.StableWindow);
                var load = seen?.Pods ?? NoLoad;
                entry.PodLoad = report.Complete
                    ? load
                    // A gateway unread: its requests are unknown, so a pod busy at the last tick stays busy.
                    : load.Concat(entry.PodLoad).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Max(p => p.Value));
                if (seen?.LastRequest is { } last && (entry.State.LastRequest is null || last > entry.State.LastRequest))
                {
                    entry.State = entry.State with { LastRequest = last };
                }

                if (seen?.LastFinished is { } finished && (entry.State.LastActive is null || finished > entry.State.LastActive))
                {
                    entry.State = entry.State with { LastActive = finished };
                }

                // A wake stamped after the last arrival this poll saw: its held requests may not be in the report
                // yet. Only for a panic window: a later poll has them (or they went), and a stale stamp keeps nothing up.
                var wake = Wakes(key);
                var waiting = wake is { } woken && now - woken.At < _settings.PanicWindow
                    && (seen?.LastRequest is null || woken.At > seen.LastRequest) ? woken.Held : 0;
                if (wake is not null && (entry.State.LastRequest is null || wake.At > entry.State.LastRequest))
                {
                    entry.State = entry.State with { LastRequest = wake.At };
                }

                var before = entry.State.Desired;
                var current = new DemandNow(seen?.InFlight ?? 0, entry.PodLoad.Count(p => p.Value > 0), mayScaleDown, waiting);
                entry.State = ScaleDecider.Decide(function.Spec.Scaling, entry.State, entry.Samples, function.Status?.ReadyReplicas ?? 0, now,
                    _settings, current);
                moved = before != entry.State.Desired;
                changed = moved || !entry.Ticked;
                entry.Ticked = true;

                // Every tick, not only on a change: a scrape between two terms may have dropped the series.
                string ns = key.Namespace ?? "", name = key.Name;
                OperatorMetrics.SetPerFunction(Metrics.DesiredReplicas, ns, name, entry.State.Desired);
                OperatorMetrics.SetPerFunction(Metrics.InFlight, ns, name, seen?.InFlight ?? 0);
                OperatorMetrics.SetPerFunction(Metrics.Panic, ns, name, entry.State.PanicUntil is null ? 0 : 1);
            }

            if (changed)
            {
                // A function's first tick only states what it already had: logged at Information it was one line per
                // function at every leader start (10,000 lines at 10,000 functions).
                if (moved)
                {
                    LogDesired(_logger, key, entry.State.Desired);
                }

                Changed?.Invoke(key);
            }
        }

        foreach (var gone in _entries.Keys.Where(k => _functions.Get(k) is null).ToList())
        {
            _entries.TryRemove(gone, out _);
            Metrics.DesiredReplicas.RemoveLabelled(gone.Namespace ?? "", gone.Name);
            Metrics.InFlight.RemoveLabelled(gone.Namespace ?? "", gone.Name);
            Metrics.Panic.RemoveLabelled(gone.Namespace ?? "", gone.Name);
        }
    }

    /// <summary>
    /// The function's entry; a new one starts from the function's status: the replicas the last
    /// leader decided (or that are ready, if more) and its last request time.
    /// </summary>
    private Entry EntryOf(GpuFunction function) => _entries.GetOrAdd(ObjectKey.Of(function), _ => new Entry
    {
        State = new ScaleState(
            Math.Max(function.Status?.DesiredReplicas ?? 0, function.Status?.ReadyReplicas ?? 0),
            null,
            function.Status?.LastRequestTime is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : null),
    });

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Function}: desired replicas {Desired}")]
    private static partial void LogDesired(ILogger logger, ObjectKey function, int desired);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Demand unknown: {Unread} gateway(s) unread; no function scales down this tick")]
    private static partial void LogIncomplete(ILogger logger, int unread);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Autoscaler tick failed")]
    private static partial void LogTickFailed(ILogger logger, Exception error);

    private sealed class Entry
    {
        public ScaleState State { get; set; } = new(0, null, null);

        /// <summary>False until the first tick decided for this entry (which always tells the controller).</summary>
        public bool Ticked { get; set; }

        public List<DemandSample> Samples { get; } = [];

        public IReadOnlyDictionary<string, int> PodLoad { get; set; } = NoLoad;

    }
}
