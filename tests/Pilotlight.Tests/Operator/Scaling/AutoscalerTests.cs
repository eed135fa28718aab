using System.Runtime.CompilerServices;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Pilotlight.Operator.Scaling;
using Pilotlight.Tests.Integration;

namespace Pilotlight.Tests.Operator.Scaling;

/// <summary>The autoscaler's memory across ticks, restarts and unread gateways, on a fake clock.</summary>
public sealed class AutoscalerTests
{
    private static readonly AutoscalerSettings Settings = new()
    {
        StableWindow = TimeSpan.FromSeconds(60), PanicWindow = TimeSpan.FromSeconds(6), Tick = TimeSpan.FromSeconds(2),
    };

    private static readonly Uri GatewayA = new("http://gateway-a:8080");
    private FakeTimeProvider _time = null!;
    private ScriptedDemand _demand = null!;
    private CancellationTokenSource _stop = null!;
    private WakeSignal? _wake;

    [SetUp]
    public void SetUp()
    {
        // An odd start and tick, as YARP's tests do, to catch assumptions about round times.
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 23, 12, 0, 0, 137, TimeSpan.Zero));
        _demand = new ScriptedDemand();
        _stop = new CancellationTokenSource();
        _wake = null;
    }

    [TearDown]
    public void TearDown()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    private static GpuFunction Function(string window = "10s", GpuFunctionStatus? status = null, int maxConcurrency = 1) => new()
    {
        Metadata = new V1ObjectMeta { Name = "llm", NamespaceProperty = "team" },
        Spec = new GpuFunctionSpec
        {
            Image = "example/llm:1",
            Scaling = new ScalingPolicy { MinReplicas = 0, MaxReplicas = 10, MaxConcurrency = maxConcurrency, ScaledownWindow = window },
        },
        Status = status,
    };

    private static FunctionDemand Demand(int inFlight, DateTimeOffset? lastRequest, DateTimeOffset? lastFinished = null, Dictionary<string, int>? pods = null) => new()
    {
        Namespace = "team", Name = "llm", InFlight = inFlight, LastRequest = lastRequest, LastFinished = lastFinished, Pods = pods ?? [],
    };

    private async Task<Autoscaler> StartAsync(GpuFunction function, OperatorMetrics? metrics = null)
    {
        var informer = new Informer<GpuFunction>(new ListWatch<GpuFunction>("gpufunctions",
            (_, _, _) => Task.FromResult(new ListPage<GpuFunction>([function], "1", null)),
            (_, _, _, ct) => Forever(ct)));
        _ = informer.RunAsync(_stop.Token);
        await informer.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        return new Autoscaler(informer, _demand, Settings, _time) { Wakes = _ => _wake, Metrics = metrics ?? OperatorMetrics.Detached() };
    }

    private static async IAsyncEnumerable<(WatchEventType, GpuFunction)> Forever([EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
        yield break;
    }

    /// <summary>Ticks every <see cref="AutoscalerSettings.Tick"/> for <paramref name="span"/> of fake time.</summary>
    private async Task TickForAsync(Autoscaler autoscaler, TimeSpan span)
    {
        for (var elapsed = TimeSpan.Zero; elapsed < span; elapsed += Settings.Tick)
        {
            await autoscaler.TickAsync(CancellationToken.None);
            _time.Advance(Settings.Tick);
        }
    }

    [Test]
    public async Task After_a_restart_the_status_seeds_the_decision_until_demand_is_settled()
    {
        // The previous leader ran two busy pods; this instance has not polled yet.
        var fn = Function(status: new GpuFunctionStatus { DesiredReplicas = 2, ReadyReplicas = 2, LastRequestTime = _time.GetUtcNow().AddMinutes(-30).UtcDateTime });
        var autoscaler = await StartAsync(fn);

        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(2), "a reconcile before the first poll keeps the pods");

        // Complete reports of no demand: still nothing goes until they cover a full stable window.
        await TickForAsync(autoscaler, Settings.StableWindow - Settings.Tick);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(2));
        Assert.That(autoscaler.DemandSettled, Is.False);

        await TickForAsync(autoscaler, Settings.Tick * 2);
        Assert.That(autoscaler.DemandSettled, Is.True);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero, "idle for 30 min and demand known: down to min");
    }

    [Test]
    public async Task A_function_has_gauge_series_only_while_it_has_something_to_report()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var metrics = new OperatorMetrics(registry);
        using var term = new CancellationTokenSource();
        var lead = metrics.LeaderScope().RunAsync(new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()), term.Token);
        async Task<string> ScrapeAsync()
        {
            using var stream = new MemoryStream();
            await registry.CollectAndExportAsTextAsync(stream);
            return System.Text.Encoding.UTF8.GetString(stream.ToArray());
        }

        var fn = Function(window: "10s");
        var autoscaler = await StartAsync(fn, metrics);
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick);
        var idle = await ScrapeAsync();
        Assert.That(idle, Does.Not.Contain("pilotlight_autoscaler_desired_replicas{"), "at zero: no series (absent reads as 0)");
        Assert.That(idle, Does.Not.Contain("pilotlight_autoscaler_in_flight{"));
        Assert.That(idle, Does.Not.Contain("pilotlight_autoscaler_panic{"));

        var at = _time.GetUtcNow();
        _demand.Next = new DemandReport([Demand(2, at, pods: new() { ["p1"] = 1, ["p2"] = 1 })], []);
        await TickForAsync(autoscaler, Settings.Tick);
        var busy = await ScrapeAsync();
        Assert.That(busy, Does.Contain("pilotlight_autoscaler_desired_replicas{namespace=\"team\",function=\"llm\"} 2"));
        Assert.That(busy, Does.Contain("pilotlight_autoscaler_in_flight{namespace=\"team\",function=\"llm\"} 2"));
        Assert.That(busy, Does.Contain("pilotlight_autoscaler_panic{namespace=\"team\",function=\"llm\"} 1"), "a burst from zero panics");

        // Finished, and past the scaledown window and a stable window: back to zero, and the series go with it.
        _demand.Next = new DemandReport([Demand(0, at, _time.GetUtcNow())], []);
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick * 2);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero);
        var after = await ScrapeAsync();
        Assert.That(after, Does.Not.Contain("pilotlight_autoscaler_desired_replicas{"));
        Assert.That(after, Does.Not.Contain("pilotlight_autoscaler_in_flight{"));
        Assert.That(after, Does.Not.Contain("pilotlight_autoscaler_panic{"));
        await term.CancelAsync();
        await lead;
    }

    [Test]
    public async Task A_function_with_no_status_yet_starts_at_min()
    {
        var fn = Function();
        var autoscaler = await StartAsync(fn);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero);
    }

    [Test]
    public async Task A_gateway_that_stops_answering_scales_nothing_down()
    {
        var fn = Function(window: "10s");
        var autoscaler = await StartAsync(fn);
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick);

        var at = _time.GetUtcNow();
        _demand.Next = new DemandReport([Demand(1, at, pods: new() { ["p1"] = 1 })], []);
        await TickForAsync(autoscaler, Settings.Tick);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1));

        // The gateway goes silent with the request still running there: unknown, never zero.
        _demand.Next = new DemandReport([], [GatewayA]);
        await TickForAsync(autoscaler, TimeSpan.FromMinutes(3));
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1));
        Assert.That(autoscaler.PodLoad(ObjectKey.Of(fn))["p1"], Is.EqualTo(1), "the pod busy when the gateway went silent stays busy");

        // Back, and the request finished: after a full stable window of complete reports (and the scaledown window) it goes.
        var finished = _time.GetUtcNow();
        _demand.Next = new DemandReport([Demand(0, at, finished)], []);
        await TickForAsync(autoscaler, Settings.StableWindow - Settings.Tick);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1));
        await TickForAsync(autoscaler, Settings.Tick * 2);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero);
    }

    [Test]
    public async Task A_long_request_keeps_its_pod_and_the_window_counts_from_its_end()
    {
        var fn = Function(window: "10s");
        var autoscaler = await StartAsync(fn);
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick);

        var arrived = _time.GetUtcNow();
        _demand.Next = new DemandReport([Demand(1, arrived, pods: new() { ["p1"] = 1 })], []);
        await TickForAsync(autoscaler, TimeSpan.FromMinutes(5));
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1), "five minutes in, still running");

        var finished = _time.GetUtcNow();
        _demand.Next = new DemandReport([Demand(0, arrived, finished, new() { ["p1"] = 0 })], []);
        await TickForAsync(autoscaler, TimeSpan.FromSeconds(8));
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1), "within scaledownWindow of the finish");
        await TickForAsync(autoscaler, TimeSpan.FromSeconds(4));
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero, "scaledownWindow (10 s) after the finish, not the 60 s stable window");
    }

    [Test]
    public async Task A_cold_request_wakes_the_function_and_it_goes_after_the_short_window_despite_the_panic_hold()
    {
        var fn = Function(window: "10s");
        var autoscaler = await StartAsync(fn);
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick);

        var arrived = _time.GetUtcNow();
        _demand.Next = new DemandReport([Demand(1, arrived)], []);
        await TickForAsync(autoscaler, Settings.Tick);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1));

        _demand.Next = new DemandReport([Demand(0, arrived, _time.GetUtcNow())], []);
        await TickForAsync(autoscaler, TimeSpan.FromSeconds(12));
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero, "panic would hold it up to a minute");
    }

    /// <summary>The function, with a gateway's wake of <paramref name="held"/> requests now on the signal feed.</summary>
    private GpuFunction Woken(GpuFunction function, int held, DateTimeOffset? at = null)
    {
        _wake = new WakeSignal { Namespace = function.Metadata.NamespaceProperty, Name = function.Metadata.Name, At = at ?? _time.GetUtcNow(), Held = held };
        return function;
    }

    [Test]
    public async Task A_wake_with_many_held_asks_for_enough_pods_at_once_capped_by_max_replicas()
    {
        var fn = Function(maxConcurrency: 4);
        fn = fn with { Spec = fn.Spec with { Scaling = fn.Spec.Scaling with { TargetConcurrency = 2, MaxReplicas = 8 } } };
        var events = System.Threading.Channels.Channel.CreateUnbounded<(WatchEventType, GpuFunction)>();
        var informer = new Informer<GpuFunction>(new ListWatch<GpuFunction>("gpufunctions",
            (_, _, _) => Task.FromResult(new ListPage<GpuFunction>([fn], "1", null)),
            (_, _, _, ct) => events.Reader.ReadAllAsync(ct)));
        _ = informer.RunAsync(_stop.Token);
        await informer.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        var autoscaler = new Autoscaler(informer, _demand, Settings, _time) { Wakes = _ => _wake };
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick);
        Assert.That(autoscaler.DesiredReplicas(fn), Is.Zero);

        Assert.That(autoscaler.DesiredReplicas(Woken(fn, 1)), Is.EqualTo(1), "one held: one pod");
        _time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.That(autoscaler.DesiredReplicas(Woken(fn, 7)), Is.EqualTo(4), "seven held at two per pod: ceil(7 / 2), before any tick");
        _time.Advance(TimeSpan.FromMilliseconds(100));
        var burst = Woken(fn, 1000);
        Assert.That(autoscaler.DesiredReplicas(burst), Is.EqualTo(8), "a thousand: maxReplicas");

        // A tick whose poll missed the burst (it came after) keeps the pods the wake asked for.
        _demand.Next = new DemandReport([Demand(0, _time.GetUtcNow().AddSeconds(-1))], []);
        await autoscaler.TickAsync(CancellationToken.None);
        Assert.That(autoscaler.DesiredReplicas(burst), Is.EqualTo(8));
    }

    [Test]
    public async Task A_tick_counts_a_fresh_wake_no_poll_has_seen_and_a_stale_one_keeps_nothing_up()
    {
        var woken = Woken(Function(window: "10s"), 5);
        var autoscaler = await StartAsync(woken);
        await autoscaler.TickAsync(CancellationToken.None);
        Assert.That(autoscaler.DesiredReplicas(woken), Is.EqualTo(5), "five held that no gateway report shows yet");

        // The five gave up (startupTimeout) and nothing else came: the stamp stays, the pods go.
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick);
        Assert.That(autoscaler.DesiredReplicas(woken), Is.Zero);
    }

    [Test]
    public async Task A_new_term_forgets_the_old_one_and_waits_for_settled_demand_again()
    {
        var fn = Function(window: "10s", status: new GpuFunctionStatus { DesiredReplicas = 1, ReadyReplicas = 1 });
        var autoscaler = await StartAsync(fn);
        await TickForAsync(autoscaler, Settings.StableWindow + Settings.Tick * 2);
        Assert.That(autoscaler.DemandSettled, Is.True);

        using var term = new CancellationTokenSource();
        var run = autoscaler.RunAsync(new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()), term.Token);
        Assert.That(autoscaler.DemandSettled, Is.False, "leading again starts the settling over");
        Assert.That(autoscaler.DesiredReplicas(fn), Is.EqualTo(1), "seeded from status again");
        await term.CancelAsync();
        await run;
    }

    private sealed class ScriptedDemand : IDemandSource
    {
        public DemandReport Next { get; set; } = new([], []);

        public Task<DemandReport> PollAsync(CancellationToken cancellationToken) => Task.FromResult(Next);
    }
}
