using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Scaling;

namespace Pilotlight.Tests.Operator.Scaling;

public class ScaleDeciderTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private static readonly AutoscalerSettings Settings = new();

    private static ScalingPolicy Policy(int min = 0, int max = 10, int buffer = 0, int? target = null, int maxConcurrency = 1, string window = "60s") =>
        new() { MinReplicas = min, MaxReplicas = max, BufferReplicas = buffer, TargetConcurrency = target, MaxConcurrency = maxConcurrency, ScaledownWindow = window };

    /// <summary>One sample a second for the last <paramref name="seconds"/> seconds at <paramref name="inFlight"/>.</summary>
    private static List<DemandSample> Steady(double inFlight, int seconds = 60) =>
        Enumerable.Range(0, seconds).Select(i => new DemandSample(Now.AddSeconds(-i), inFlight)).ToList();

    private static ScaleState Active(int desired = 0, DateTimeOffset? panicUntil = null) => new(desired, panicUntil, Now.AddSeconds(-1));

    [TestCase(1.0, 1, 1)]
    [TestCase(10.0, 1, 10)]
    [TestCase(10.0, 4, 3)]
    [TestCase(0.5, 1, 1)]
    public void Steady_demand_divided_by_target_concurrency(double inFlight, int target, int expected)
    {
        var next = ScaleDecider.Decide(Policy(target: target, max: 20), Active(expected), Steady(inFlight), expected, Now, Settings);
        Assert.That(next.Desired, Is.EqualTo(expected));
        Assert.That(next.PanicUntil, Is.Null);
    }

    [TestCase(0, null, 1, 0, 10, 1)]
    [TestCase(1, null, 1, 0, 10, 1)]
    [TestCase(7, 2, 4, 0, 10, 4)]
    [TestCase(7, null, 4, 0, 10, 2)]
    [TestCase(1000, null, 4, 0, 8, 8)]
    [TestCase(1, null, 1, 3, 10, 3)]
    public void Requests_waiting_at_zero_ask_for_waiting_over_target_pods_within_the_bounds(int waiting, int? target, int maxConcurrency, int min, int max, int expected)
    {
        var policy = Policy(min: min, max: max, target: target, maxConcurrency: maxConcurrency);
        Assert.That(WakeRequest.PodsFor(policy, waiting), Is.EqualTo(expected));

        // The same number from a decision at zero with nothing polled yet (at least 1, as any active function).
        var decided = ScaleDecider.Decide(policy, new ScaleState(0, null, Now), [], 0, Now, Settings, new DemandNow(MayScaleDown: false, Waiting: waiting));
        Assert.That(decided.Desired, Is.EqualTo(Math.Max(expected, 1)));
    }

    [Test]
    public void Target_defaults_to_max_concurrency()
    {
        var next = ScaleDecider.Decide(Policy(maxConcurrency: 5), Active(2), Steady(10), 2, Now, Settings);
        Assert.That(next.Desired, Is.EqualTo(2));
    }

    [Test]
    public void A_burst_at_twice_ready_capacity_panics_and_scales_up_at_once()
    {
        // 54 s of quiet at 2, then the last 6 s at 20 with 2 ready pods: the stable average is still low.
        var samples = Steady(2, 60).Select(s => s.At >= Now.AddSeconds(-6) ? s with { InFlight = 20 } : s).ToList();
        var next = ScaleDecider.Decide(Policy(max: 50), Active(2), samples, 2, Now, Settings);

        Assert.That(next.Desired, Is.EqualTo(20));
        Assert.That(next.PanicUntil, Is.EqualTo(Now + Settings.StableWindow));
    }

    [Test]
    public void Panic_never_scales_down_until_it_has_been_off_for_a_stable_window()
    {
        var panicking = Active(20, panicUntil: Now.AddSeconds(30));
        var during = ScaleDecider.Decide(Policy(max: 50), panicking, Steady(1), 20, Now, Settings);
        Assert.That(during.Desired, Is.EqualTo(20));

        var after = ScaleDecider.Decide(Policy(max: 50), during, Steady(1), 20, Now.AddSeconds(31), Settings);
        Assert.That(after.Desired, Is.EqualTo(1));
        Assert.That(after.PanicUntil, Is.Null);
    }

    [Test]
    public void Requests_to_a_function_at_zero_panic_it_up()
    {
        var next = ScaleDecider.Decide(Policy(), new ScaleState(0, null, Now), [new DemandSample(Now, 3)], 0, Now, Settings);
        Assert.That(next.Desired, Is.EqualTo(3));
    }

    [Test]
    public void Clamped_to_min_and_max()
    {
        Assert.That(ScaleDecider.Decide(Policy(max: 4), Active(4), Steady(100), 4, Now, Settings).Desired, Is.EqualTo(4));
        Assert.That(ScaleDecider.Decide(Policy(min: 3), new ScaleState(0, null, null), [], 0, Now, Settings).Desired, Is.EqualTo(3));
    }

    [Test]
    public void Buffer_replicas_are_added_while_active_only()
    {
        Assert.That(ScaleDecider.Decide(Policy(buffer: 2), Active(1), Steady(1), 1, Now, Settings).Desired, Is.EqualTo(3));
        var idle = new ScaleState(3, null, Now.AddMinutes(-2));
        Assert.That(ScaleDecider.Decide(Policy(buffer: 2), idle, [], 3, Now, Settings).Desired, Is.Zero);
    }

    [Test]
    public void Zero_only_after_the_scaledown_window_without_a_request()
    {
        var policy = Policy(window: "90s");
        var recent = new ScaleState(1, null, Now.AddSeconds(-89));
        Assert.That(ScaleDecider.Decide(policy, recent, [], 1, Now, Settings).Desired, Is.EqualTo(1));
        var old = new ScaleState(1, null, Now.AddSeconds(-90));
        Assert.That(ScaleDecider.Decide(policy, old, [], 1, Now, Settings).Desired, Is.Zero);
    }

    [Test]
    public void A_request_in_flight_keeps_the_function_active_long_past_the_window()
    {
        // Arrived five minutes ago, still running; scaledownWindow 20 s.
        var state = new ScaleState(1, null, Now.AddMinutes(-5));
        var next = ScaleDecider.Decide(Policy(window: "20s"), state, Steady(1), 1, Now, Settings, new DemandNow(InFlight: 1, BusyPods: 1));
        Assert.That(next.Desired, Is.EqualTo(1));
        Assert.That(next.LastActive, Is.EqualTo(Now));
    }

    [Test]
    public void The_scaledown_window_counts_from_the_last_request_finishing()
    {
        var policy = Policy(window: "20s");
        var finished = new ScaleState(1, null, Now.AddMinutes(-5), LastActive: Now.AddSeconds(-19));
        Assert.That(ScaleDecider.Decide(policy, finished, [], 1, Now, Settings).Desired, Is.EqualTo(1));
        Assert.That(ScaleDecider.Decide(policy, finished, [], 1, Now.AddSeconds(1), Settings).Desired, Is.Zero);
    }

    [Test]
    public void A_scaledown_window_shorter_than_the_stable_window_beats_the_panic_hold()
    {
        // A cold request panicked the function up (hold until now + 60 s); it finished 20 s ago.
        var state = new ScaleState(1, Now.AddSeconds(40), Now.AddSeconds(-25), LastActive: Now.AddSeconds(-20));
        var samples = Steady(0, 20).Concat([new DemandSample(Now.AddSeconds(-25), 1)]).ToList();
        var next = ScaleDecider.Decide(Policy(window: "20s"), state, samples, 1, Now, Settings);
        Assert.That(next.Desired, Is.Zero);
        Assert.That(next.PanicUntil, Is.Null);
    }

    [Test]
    public void Never_fewer_than_the_pods_with_requests_in_flight()
    {
        // Averages say 1 pod (3 in flight, target 10), but three pods each have one in flight.
        var next = ScaleDecider.Decide(Policy(target: 10, maxConcurrency: 10), Active(3), Steady(3), 3, Now, Settings,
            new DemandNow(InFlight: 3, BusyPods: 3));
        Assert.That(next.Desired, Is.EqualTo(3));
    }

    [Test]
    public void Busy_pods_stay_even_above_a_lowered_max()
    {
        var next = ScaleDecider.Decide(Policy(max: 1), Active(3), Steady(3), 3, Now, Settings, new DemandNow(InFlight: 3, BusyPods: 3));
        Assert.That(next.Desired, Is.EqualTo(3));
    }

    [Test]
    public void Never_fewer_than_in_flight_over_max_concurrency()
    {
        // targetConcurrency 8 (the average asks for 1), but 6 in flight at maxConcurrency 2 need 3 pods.
        var next = ScaleDecider.Decide(Policy(target: 8, maxConcurrency: 2), Active(1), Steady(0), 1, Now, Settings,
            new DemandNow(InFlight: 6, BusyPods: 1));
        Assert.That(next.Desired, Is.EqualTo(3));
    }

    [Test]
    public void Unknown_demand_holds_the_last_decision_but_may_still_scale_up()
    {
        var idle = new ScaleState(3, null, Now.AddMinutes(-10));
        Assert.That(ScaleDecider.Decide(Policy(), idle, [], 3, Now, Settings, new DemandNow(MayScaleDown: false)).Desired, Is.EqualTo(3));

        var up = ScaleDecider.Decide(Policy(), Active(1), Steady(5), 1, Now, Settings, new DemandNow(InFlight: 5, BusyPods: 1, MayScaleDown: false));
        Assert.That(up.Desired, Is.EqualTo(5));
    }
}
