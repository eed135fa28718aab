using k8s.Models;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Operator;

/// <summary>
/// The operator's own series besides the controller runtime's. Most describe what the leader decides or bills, and a
/// replica that does not lead exports none of those: an ex-leader drops them when it stops leading, so that
/// <c>sum()</c> over every replica counts each function once. They are:
/// <list type="bullet">
/// <item><c>pilotlight_function_gpu_seconds_total</c>: the ledger's running total (the new leader carries it on from status,
/// so a copy left on the ex-leader would be counted twice);</item>
/// <item>the per-function gauges (warm, reserved, pre-pulled replicas; the autoscaler's desired replicas, in-flight
/// requests, panic; demand unknown), which would otherwise keep the ex-leader's last value (a function's series exists
/// only while its value is not 0, see <see cref="SetPerFunction"/>);</item>
/// <item>the condition gauges of functions and sandboxes, read from the leader's caches at each scrape.</item>
/// </list>
/// Counters of things that happened (warm claims, sandbox claims, sandbox GPU-seconds counted as deltas, scheduled
/// invocations) stay on the replica that counted them: each event is counted once, by whoever led at the time.
/// One instance per registry: each registers a clean-up that drops the leader-only series while it does not lead.
/// </summary>
public sealed class OperatorMetrics
{
    private readonly List<Collector> _leaderOnly = [];
    private volatile Func<DateTime, IEnumerable<(ObjectKey Key, double GpuSeconds)>>? _liveGpuSeconds;
    private volatile Func<IEnumerable<(ObjectKey Key, IReadOnlyList<V1Condition>? Conditions)>>? _functionConditions;
    private volatile Func<IEnumerable<(ObjectKey Key, IReadOnlyList<V1Condition>? Conditions)>>? _sandboxConditions;
    private volatile bool _leading;

    /// <summary>Series in <paramref name="registry"/> (the default registry when null).</summary>
    public OperatorMetrics(CollectorRegistry? registry = null, TimeProvider? time = null)
    {
        Registry = registry ?? Metrics.DefaultRegistry;
        var factory = Metrics.WithCustomRegistry(Registry);
        FunctionGpuSeconds = LeaderOnly(factory.CreateCounter("pilotlight_function_gpu_seconds_total",
            "GPU-seconds billed per function by the operator's ledger (from pod lifetimes), up to the scrape. Exported by the leader only.",
            "namespace", "function"));
        WarmReplicas = LeaderOnly(factory.CreateGauge("pilotlight_warm_replicas",
            "Ready warm standby pods per function. Exported by the leader only.", "namespace", "function"));
        ReservedReplicas = LeaderOnly(factory.CreateGauge("pilotlight_reserved_replicas",
            "Placeholder pods holding GPUs per function. Exported by the leader only.", "namespace", "function"));
        PrePulledNodes = LeaderOnly(factory.CreateGauge("pilotlight_prepulled_nodes",
            "Eligible nodes with the function's image pre-pulled. Exported by the leader only.", "namespace", "function"));
        DesiredReplicas = LeaderOnly(factory.CreateGauge("pilotlight_autoscaler_desired_replicas",
            "Replicas the autoscaler wants, per function. Exported by the leader only.", "namespace", "function"));
        InFlight = LeaderOnly(factory.CreateGauge("pilotlight_autoscaler_in_flight",
            "In-flight requests the gateways report, per function. Exported by the leader only.", "namespace", "function"));
        Panic = LeaderOnly(factory.CreateGauge("pilotlight_autoscaler_panic",
            "1 while the function is in panic mode. Exported by the leader only.", "namespace", "function"));
        DemandUnknown = LeaderOnly(factory.CreateGauge("pilotlight_autoscaler_demand_unknown",
            "1 while the last demand poll missed a gateway (nothing scales down then). Exported by the leader only."));
        FunctionConditions = LeaderOnly(factory.CreateGauge("pilotlight_function_condition",
            "1 for each condition of each GpuFunction that is not healthy (Ready not True, or Stalled True), labelled with "
            + "its current status and reason: alert on condition=\"Stalled\",status=\"True\". A healthy function has no "
            + "series here (pilotlight_functions_by_condition counts every function). Exported by the leader only.",
            "namespace", "function", "condition", "status", "reason"));
        SandboxConditions = LeaderOnly(factory.CreateGauge("pilotlight_sandbox_condition",
            "1 for each condition of each Sandbox that is not healthy (Ready not True, or Stalled True), labelled with its "
            + "current status and reason (pilotlight_sandboxes_by_condition counts every sandbox). Exported by the leader only.",
            "namespace", "sandbox", "condition", "status", "reason"));
        FunctionsByCondition = LeaderOnly(factory.CreateGauge("pilotlight_functions_by_condition",
            "GpuFunctions by condition, status and reason, whatever their health. Exported by the leader only.",
            "condition", "status", "reason"));
        SandboxesByCondition = LeaderOnly(factory.CreateGauge("pilotlight_sandboxes_by_condition",
            "Sandboxes by condition, status and reason, whatever their health. Exported by the leader only.",
            "condition", "status", "reason"));
        WarmClaims = factory.CreateCounter("pilotlight_warm_claims_total",
            "Warm pods claimed to serve (each a cold start avoided), counted by the replica that led at the time.", "namespace", "function");
        var clock = time ?? TimeProvider.System;

        // The GPU-seconds counters follow the ledger up to the scrape itself, not to the last reconcile (a function
        // whose pods do not change is not reconciled for minutes).
        // A replica that does not lead drops them at every scrape, so that nothing a reconcile still in flight when
        // leadership ended wrote after the scope's own clean-up is exported.
        Registry.AddBeforeCollectCallback(() =>
        {
            if (!_leading)
            {
                DropLeaderSeries();
                return;
            }

            Mirror(FunctionConditions, FunctionsByCondition, _functionConditions);
            Mirror(SandboxConditions, SandboxesByCondition, _sandboxConditions);
            if (_liveGpuSeconds is not { } live)
            {
                return;
            }

            foreach (var (key, seconds) in live(clock.GetUtcNow().UtcDateTime))
            {
                // A function never billed has no series (at 10,000 mostly idle functions, a series at 0 each was most of
                // the exposition); its first appears at its first scrape with a pod open, a few seconds' worth.
                if (seconds > 0)
                {
                    FunctionGpuSeconds.WithLabels(key.Namespace ?? "", key.Name).IncTo(seconds);
                }
            }
        });
    }

    /// <summary>
    /// Series in a registry of their own that nothing exports: the default of a part built without the operator's
    /// (a unit test's). Never the default registry, where its clean-up, never leading, would drop the real series.
    /// </summary>
    public static OperatorMetrics Detached() => new(Metrics.NewCustomRegistry());

    /// <summary>The registry the series live in.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>The ledger's GPU-seconds per function.</summary>
    public Counter FunctionGpuSeconds { get; }

    /// <summary>Ready warm pods per function.</summary>
    public Gauge WarmReplicas { get; }

    /// <summary>Running placeholders per function.</summary>
    public Gauge ReservedReplicas { get; }

    /// <summary>Nodes with the function's image pre-pulled.</summary>
    public Gauge PrePulledNodes { get; }

    /// <summary>The autoscaler's desired replicas per function.</summary>
    public Gauge DesiredReplicas { get; }

    /// <summary>In-flight requests per function, as the gateways report them.</summary>
    public Gauge InFlight { get; }

    /// <summary>Panic mode per function.</summary>
    public Gauge Panic { get; }

    /// <summary>Whether the last demand poll missed a gateway.</summary>
    public Gauge DemandUnknown { get; }

    /// <summary>Each unhealthy function's conditions: one series per (function, condition) with value 1.</summary>
    public Gauge FunctionConditions { get; }

    /// <summary>Each unhealthy sandbox's conditions: one series per (sandbox, condition) with value 1.</summary>
    public Gauge SandboxConditions { get; }

    /// <summary>How many functions have each (condition, status, reason).</summary>
    public Gauge FunctionsByCondition { get; }

    /// <summary>How many sandboxes have each (condition, status, reason).</summary>
    public Gauge SandboxesByCondition { get; }

    /// <summary>Warm pods claimed.</summary>
    public Counter WarmClaims { get; }

    /// <summary>
    /// Sets a per-function gauge, whose series exists only while its value is not 0: at 10,000 functions mostly at zero,
    /// a series each for six gauges was the largest part of the operator's heap (a prometheus-net child is several
    /// hundred bytes). An absent series reads as 0 (<c>or on() vector(0)</c> where a query needs the zero).
    /// </summary>
    internal static void SetPerFunction(Gauge gauge, string ns, string function, double value)
    {
        if (value == 0)
        {
            gauge.RemoveLabelled(ns, function);
        }
        else
        {
            gauge.WithLabels(ns, function).Set(value);
        }
    }

    /// <summary>True while this replica leads (and exports the leader-only series).</summary>
    public bool Leading => _leading;

    /// <summary>
    /// Where the live GPU-seconds of every function come from at a scrape (the ledger's totals carried to the given
    /// time); set once by the function reconciler.
    /// </summary>
    internal void UseLiveGpuSeconds(Func<DateTime, IEnumerable<(ObjectKey Key, double GpuSeconds)>> live) => _liveGpuSeconds = live;

    /// <summary>
    /// Where the conditions of every function and sandbox come from at a scrape (the leader's informer caches); set once
    /// when the operator is wired.
    /// </summary>
    internal void UseConditions(Func<IEnumerable<(ObjectKey Key, IReadOnlyList<V1Condition>? Conditions)>> functions,
        Func<IEnumerable<(ObjectKey Key, IReadOnlyList<V1Condition>? Conditions)>> sandboxes)
    {
        _functionConditions = functions;
        _sandboxConditions = sandboxes;
    }

    /// <summary>
    /// Sets <paramref name="perObject"/> to exactly the conditions of the objects <paramref name="source"/> lists now that
    /// are not healthy, and <paramref name="counts"/> to how many objects have each (condition, status, reason): a
    /// condition whose status or reason changed, or whose object is gone or healthy again, loses its old series. At
    /// thousands of healthy functions a series for each of their four conditions would be most of the operator's
    /// exposition; the ones worth a label of their own are those that need someone.
    /// </summary>
    private static void Mirror(Gauge perObject, Gauge counts, Func<IEnumerable<(ObjectKey Key, IReadOnlyList<V1Condition>? Conditions)>>? source)
    {
        if (source is null)
        {
            return;
        }

        var perObjectNow = new Dictionary<string[], int>(LabelsComparer.Instance);
        var countsNow = new Dictionary<string[], int>(LabelsComparer.Instance);
        foreach (var (key, conditions) in source())
        {
            var healthy = Healthy(conditions);
            foreach (var condition in conditions ?? [])
            {
                if (string.IsNullOrEmpty(condition.Type))
                {
                    continue;
                }

                string[] state = [condition.Type, condition.Status ?? "Unknown", condition.Reason ?? ""];
                countsNow[state] = countsNow.GetValueOrDefault(state) + 1;
                if (!healthy)
                {
                    perObjectNow[[key.Namespace ?? "", key.Name, .. state]] = 1;
                }
            }
        }

        Set(perObject, perObjectNow);
        Set(counts, countsNow);
    }

    /// <summary>Ready is True and nothing is Stalled (how kstatus reads the two; the same types for functions and sandboxes).</summary>
    private static bool Healthy(IReadOnlyList<V1Condition>? conditions) => conditions is not null
        && conditions.Any(c => c.Type == Functions.FunctionConditions.Ready && c.Status == "True")
        && !conditions.Any(c => c.Type == Functions.FunctionConditions.Stalled && c.Status == "True");

    /// <summary>Sets <paramref name="gauge"/> to exactly <paramref name="wanted"/>: a series not in it is removed.</summary>
    private static void Set(Gauge gauge, Dictionary<string[], int> wanted)
    {
        foreach (var labels in gauge.GetAllLabelValues().ToList())
        {
            if (!wanted.ContainsKey(labels))
            {
                gauge.RemoveLabelled(labels);
            }
        }

        foreach (var (labels, value) in wanted)
        {
            gauge.WithLabels(labels).Set(value);
        }
    }

    private sealed class LabelsComparer : IEqualityComparer<string[]>
    {
        public static readonly LabelsComparer Instance = new();

        public bool Equals(string[]? x, string[]? y) => x is null ? y is null : y is not null && x.AsSpan().SequenceEqual(y);

        public int GetHashCode(string[] obj)
        {
            var hash = default(HashCode);
            foreach (var s in obj)
            {
                hash.Add(s, StringComparer.Ordinal);
            }

            return hash.ToHashCode();
        }
    }

    /// <summary>
    /// An <see cref="IController"/> for the <see cref="ControllerHost"/>: it runs exactly while this replica leads, and
    /// on the way out removes every leader-only series.
    /// </summary>
    public IController LeaderScope() => new Scope(this);

    /// <summary>Removes every labelled child (and resets the unlabelled value) of the leader-only series.</summary>
    internal void DropLeaderSeries()
    {
        foreach (var collector in _leaderOnly)
        {
            switch (collector)
            {
                case Counter counter:
                    Drop(counter);
                    break;
                case Gauge { LabelNames.Length: 0 } gauge:
                    // Published again by its next update, while leading.
                    gauge.Unpublish();
                    break;
                case Gauge gauge:
                    Drop(gauge);
                    break;
            }
        }
    }

    private static void Drop<TChild>(Collector<TChild> collector) where TChild : ChildBase
    {
        foreach (var labels in collector.GetAllLabelValues().ToList())
        {
            collector.RemoveLabelled(labels);
        }
    }

    private T LeaderOnly<T>(T collector) where T : Collector
    {
        _leaderOnly.Add(collector);
        return collector;
    }

    private sealed class Scope(OperatorMetrics metrics) : IController
    {
        public string Name => "leader-metrics";

        public IReadOnlyList<IInformer> Informers => [];

        public async Task RunAsync(ControllerMetrics runtime, CancellationToken cancellationToken)
        {
            metrics._leading = true;
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                metrics._leading = false;
                metrics.DropLeaderSeries();
            }
        }
    }
}
