using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Operator.Scaling;

/// <summary>
/// The autoscaler: every tick (leader only) it reads demand from the
/// gateways, decides each function's replica count with
/// <see cref="ScaleDecider"/> and asks the function controller to reconcile
/// the functions whose count changed. A gateway wakes a function at zero at
/// once by stamping the <see cref="WakeAnnotation"/>; the reconcile that
/// follows sees it without waiting for a tick.
/// </summary>
public sealed class Autoscaler : IController
{
    /// <summary>Annotation a gateway sets (RFC 3339 time) when a request arrives for a function with no ready pod.</summary>
    public const string WakeAnnotation = "pilotlight.dev/wake-requested";

    private static readonly Gauge DesiredGauge = Metrics.CreateGauge("pilotlight_autoscaler_desired_replicas",
        "Replicas the autoscaler wants, per function.", "namespace", "function");
    private static readonly Gauge DemandGauge = Metrics.CreateGauge("pilotlight_autoscaler_in_flight",
        "In-flight requests the gateways report, per function.", "namespace", "function");
    private static readonly Gauge PanicGauge = Metrics.CreateGauge("pilotlight_autoscaler_panic",
        "1 while the function is in panic mode.", "namespace", "function");

    private readonly Informer<GpuFunction> _functions;
    private readonly IDemandSource _demand;
    private readonly AutoscalerSettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ObjectKey, Entry> _entries = new();

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

    /// <summary>Called with a function whose desired count changed; the controller's queue.</summary>
    public Action<ObjectKey>? Changed { get; set; }

    /// <inheritdoc />
    public string Name => "autoscaler";

    /// <inheritdoc />
    public IReadOnlyList<IInformer> Informers => [_functions];

    /// <summary>Replicas the function should have now; a fresh wake request counts at once.</summary>
    public int DesiredReplicas(GpuFunction function)
    {
        var key = ObjectKey.Of(function);
        var entry = _entries.GetOrAdd(key, _ => new Entry());
        lock (entry)
        {
            if (WakeTime(function) is { } wake && (entry.State.LastRequest is null || wake > entry.State.LastRequest))
            {
                // A request is waiting for a function with no ready pod: decide now, not at the next tick.
                entry.State = ScaleDecider.Decide(function.Spec.Scaling, entry.State with { LastRequest = wake }, entry.Samples,
                    function.Status?.ReadyReplicas ?? 0, _time.GetUtcNow(), _settings);
                entry.Initialized = true;
            }

            return Math.Clamp(entry.Initialized ? entry.State.Desired : function.Spec.Scaling.MinReplicas,
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
                _logger.LogError(ex, "Autoscaler tick failed");
            }
        }
    }

    /// <summary>One decision round over every function.</summary>
    public async Task TickAsync(CancellationToken cancellationToken)
    {
        var demand = (await _demand.PollAsync(cancellationToken).ConfigureAwait(false)).ToDictionary(d => d.Key);
        var now = _time.GetUtcNow();
        foreach (var function in _functions.List())
        {
            var key = ObjectKey.Of(function);
            var entry = _entries.GetOrAdd(key, _ => new Entry());
            bool changed;
            lock (entry)
            {
                var seen = demand.GetValueOrDefault(key);
                entry.Samples.Add(new DemandSample(now, seen?.InFlight ?? 0));
                entry.Samples.RemoveAll(s => s.At < now - _settings.StableWindow);
                entry.PodLoad = seen?.Pods ?? [];
                if (seen?.LastRequest is { } last && (entry.State.LastRequest is null || last > entry.State.LastRequest))
                {
                    entry.State = entry.State with { LastRequest = last };
                }

                if (WakeTime(function) is { } wake && (entry.State.LastRequest is null || wake > entry.State.LastRequest))
                {
                    entry.State = entry.State with { LastRequest = wake };
                }

                var before = entry.Initialized ? entry.State.Desired : (int?)null;
                entry.State = ScaleDecider.Decide(function.Spec.Scaling, entry.State, entry.Samples, function.Status?.ReadyReplicas ?? 0, now, _settings);
                entry.Initialized = true;
                changed = before != entry.State.Desired;

                string ns = key.Namespace ?? "", name = key.Name;
                DesiredGauge.WithLabels(ns, name).Set(entry.State.Desired);
                DemandGauge.WithLabels(ns, name).Set(seen?.InFlight ?? 0);
                PanicGauge.WithLabels(ns, name).Set(entry.State.PanicUntil is null ? 0 : 1);
            }

            if (changed)
            {
                _logger.LogInformation("{Function}: desired replicas {Desired}", key, entry.State.Desired);
                Changed?.Invoke(key);
            }
        }

        foreach (var gone in _entries.Keys.Where(k => _functions.Get(k) is null).ToList())
        {
            _entries.TryRemove(gone, out _);
            DesiredGauge.RemoveLabelled(gone.Namespace ?? "", gone.Name);
            DemandGauge.RemoveLabelled(gone.Namespace ?? "", gone.Name);
            PanicGauge.RemoveLabelled(gone.Namespace ?? "", gone.Name);
        }
    }

    private static DateTimeOffset? WakeTime(GpuFunction function) =>
        function.Metadata.Annotations?.TryGetValue(WakeAnnotation, out var value) == true
        && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : null;

    private sealed class Entry
    {
        public ScaleState State { get; set; } = new(0, null, null);

        public List<DemandSample> Samples { get; } = [];

        public IReadOnlyDictionary<string, int> PodLoad { get; set; } = new Dictionary<string, int>();

        public bool Initialized { get; set; }
    }
}
