using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator.Scaling;

namespace Pilotlight.Tests.Gateway;

public class FunctionRouteTests
{
    private static readonly HashSet<string> Nothing = [];

    private static FunctionRoute Route(params string[] pods)
    {
        var route = new FunctionRoute(new ObjectKey("ns", "fn"));
        route.SetReady(pods.Select(p => new PodEndpoint(p, new Uri($"http://{p}.local:8099"))).ToList());
        return route;
    }

    private static Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> Except(params string[] pods)
    {
        var set = pods.ToHashSet();
        return _ => set;
    }

    private static readonly Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> Any = _ => Nothing;

    private long _arrival;

    /// <summary>Holds a request arriving after every one before it.</summary>
    private FunctionRoute.HeldRequest Hold(FunctionRoute route, int maxConcurrency = 1, Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>>? exclude = null) =>
        route.TryHold(10_000, maxConcurrency, exclude ?? Any, ++_arrival)!;

    [Test]
    public void The_pod_with_the_fewest_requests_in_flight_is_picked()
    {
        var route = Route("a", "b", "c");
        var picks = Enumerable.Range(0, 6).Select(i => route.TryAcquire(4, Any)!.Name).ToList();
        Assert.That(picks, Is.EqualTo(new[] { "a", "b", "c", "a", "b", "c" }));
    }

    [Test]
    public void No_pod_takes_more_than_max_concurrency_and_a_release_hands_the_slot_to_the_held_request()
    {
        var route = Route("a");
        Assert.That(route.TryAcquire(2, Any), Is.Not.Null);
        var second = route.TryAcquire(2, Any)!;
        Assert.That(route.TryAcquire(2, Any), Is.Null);
        var held = Hold(route, 2);
        Assert.That(held.Pod.IsCompleted, Is.False);
        Assert.That(route.Held, Is.EqualTo(1));

        route.Release(second);

        Assert.That(held.Pod.IsCompletedSuccessfully, Is.True);
        Assert.That(held.Pod.Result.Name, Is.EqualTo("a"));
        Assert.That(route.Held, Is.Zero);
        Assert.That(route.Ready.Single().InFlight, Is.EqualTo(2), "the slot went with the hand-over, not back to the pool");
        Assert.That(route.TryAcquire(2, Any), Is.Null);
    }

    [Test]
    public void Pods_already_tried_are_skipped()
    {
        var route = Route("a", "b");
        Assert.That(route.TryAcquire(1, Except("a"))?.Name, Is.EqualTo("b"));
        Assert.That(route.TryAcquire(1, Except("a")), Is.Null, "a was tried and b has no room left");
    }

    [Test]
    public void A_pod_set_change_keeps_in_flight_counts_and_hands_the_new_pod_to_the_held_request()
    {
        var route = Route("a");
        route.TryAcquire(1, Any);
        var held = Hold(route);

        route.SetReady([new PodEndpoint("a", new Uri("http://a.local:8099")), new PodEndpoint("b", new Uri("http://b.local:8099"))]);

        Assert.That(held.Pod.Result.Name, Is.EqualTo("b"));
        Assert.That(route.Ready.Single(p => p.Name == "a").InFlight, Is.EqualTo(1));
        Assert.That(route.Ready.Single(p => p.Name == "b").InFlight, Is.EqualTo(1));
    }

    [Test]
    public void A_starting_pod_whose_shim_said_ready_serves_until_the_api_catches_up_or_it_goes()
    {
        var route = Route();
        var a = new PodEndpoint("a", new Uri("http://a.local:8099"));
        route.SetReady([], [a]);
        Assert.That(route.TryAcquire(1, Any), Is.Null, "starting, not ready");
        var held = Hold(route);

        route.MarkProbedReady(a);
        Assert.That(held.Pod.Result.Name, Is.EqualTo("a"), "the probe's answer hands the pod to the held request");
        route.Release(held.Pod.Result);

        route.SetReady([], [new PodEndpoint("a", new Uri("http://a.local:8099"))]);
        Assert.That(route.Ready.Select(p => p.Name), Is.EqualTo(new[] { "a" }), "a watch event before the API says Ready keeps it");

        route.SetReady([], []);
        Assert.That(route.Ready, Is.Empty, "gone from the watch, gone from the route");
        route.MarkProbedReady(a);
        Assert.That(route.Ready, Is.Empty, "a late probe answer for a pod no longer starting is ignored");
    }

    [Test]
    public void The_hold_queue_is_bounded()
    {
        var route = Route();
        var first = route.TryHold(2, 1, Any, 1);
        Assert.That(route.TryHold(2, 1, Any, 2), Is.Not.Null);
        Assert.That(route.TryHold(2, 1, Any, 3), Is.Null);
        Assert.That(first!.Cancel(), Is.True);
        Assert.That(route.TryHold(2, 1, Any, 4), Is.Not.Null);
    }

    [Test]
    public void A_thousand_held_requests_are_handed_one_pod_in_arrival_order_each_release_waking_one()
    {
        var route = Route();
        var held = Enumerable.Range(0, 1000).Select(_ => Hold(route)).ToList();
        Assert.That(route.Held, Is.EqualTo(1000));

        var a = new PodEndpoint("a", new Uri("http://a.local:8099"));
        route.SetReady([a]);
        for (var i = 0; i < held.Count; i++)
        {
            Assert.That(held[i].Pod.IsCompletedSuccessfully, Is.True, $"request {i} is next");
            Assert.That(held.Skip(i + 1).Count(h => h.Pod.IsCompleted), Is.Zero, $"only request {i} was handed the slot");
            Assert.That(a.InFlight, Is.EqualTo(1));
            route.Release(held[i].Pod.Result);
        }

        Assert.That(route.Held, Is.Zero);
        Assert.That(a.InFlight, Is.Zero);
    }

    [Test]
    public void With_several_slots_held_requests_still_go_in_arrival_order()
    {
        var route = Route();
        var held = Enumerable.Range(0, 100).Select(_ => Hold(route, maxConcurrency: 2)).ToList();
        route.SetReady([new PodEndpoint("a", new Uri("http://a.local:8099")), new PodEndpoint("b", new Uri("http://b.local:8099"))]);

        var handed = new List<int>();
        var running = new List<int>();
        var random = new Random(14);
        while (handed.Count < held.Count || running.Count > 0)
        {
            // Newly handed over since the last release, in queue order.
            var fresh = Enumerable.Range(0, held.Count).Where(i => held[i].Pod.IsCompleted && !handed.Contains(i)).ToList();
            handed.AddRange(fresh);
            running.AddRange(fresh);
            Assert.That(running, Has.Count.LessThanOrEqualTo(4), "two pods, two each");
            var done = running[random.Next(running.Count)];
            running.Remove(done);
            route.Release(held[done].Pod.Result);
        }

        Assert.That(handed, Is.EqualTo(Enumerable.Range(0, 100)), "whatever finishes first, the slot goes to the earliest held");
        Assert.That(route.Ready.Sum(p => p.InFlight), Is.Zero);
    }

    [Test]
    public void A_cancelled_held_request_leaves_its_place_and_takes_no_slot()
    {
        var route = Route("a");
        var busy = route.TryAcquire(1, Any)!;
        var held = Enumerable.Range(0, 5).Select(_ => Hold(route)).ToList();

        Assert.That(held[0].Cancel(), Is.True);
        Assert.That(held[2].Cancel(), Is.True);
        Assert.That(held[0].Pod.IsCanceled, Is.True);
        Assert.That(route.Held, Is.EqualTo(3));

        route.Release(busy);
        Assert.That(held[1].Pod.Result.Name, Is.EqualTo("a"), "the first still waiting");
        Assert.That(held[1].Cancel(), Is.False, "handed over already: its slot is the caller's to release");
        Assert.That(held[3].Pod.IsCompleted, Is.False);

        route.Release(held[1].Pod.Result);
        Assert.That(held[3].Pod.IsCompletedSuccessfully, Is.True, "the cancelled one is skipped");
        Assert.That(held[2].Pod.IsCanceled, Is.True);
        Assert.That(route.Ready.Single().InFlight, Is.EqualTo(1));
        Assert.That(route.Held, Is.EqualTo(1));
    }

    [Test]
    public void A_held_request_that_excludes_the_freed_pod_keeps_its_place_for_the_next_one()
    {
        var route = Route("a", "b");
        var onA = route.TryAcquire(1, Any)!;
        var onB = route.TryAcquire(1, Any)!;
        var retry = Hold(route, exclude: Except("a"));
        var next = Hold(route);
        var last = Hold(route);

        route.Release(onA);
        Assert.That(retry.Pod.IsCompleted, Is.False, "a failed it before: it waits for another pod");
        Assert.That(next.Pod.Result.Name, Is.EqualTo("a"), "the slot goes to the first that may use it");
        Assert.That(last.Pod.IsCompleted, Is.False);

        route.Release(onB);
        Assert.That(retry.Pod.Result.Name, Is.EqualTo("b"), "still ahead of the later one");
        Assert.That(last.Pod.IsCompleted, Is.False);
    }

    [Test]
    public void A_new_request_takes_a_slot_no_held_request_may_use_but_never_one_they_may()
    {
        var route = Route("a");
        var busy = route.TryAcquire(1, Any)!;
        var picky = Hold(route, exclude: Except("a"));
        route.Release(busy);
        Assert.That(picky.Pod.IsCompleted, Is.False);

        Assert.That(route.TryAcquire(1, Any)?.Name, Is.EqualTo("a"), "nobody held may use a");
        var waiting = Hold(route);
        Assert.That(route.TryAcquire(1, Any), Is.Null, "a is busy again");
        Assert.That(waiting.Pod.IsCompleted, Is.False);
    }

    [Test]
    public void A_retry_keeps_its_place_ahead_of_later_arrivals()
    {
        var route = Route("a");
        var busy = route.TryAcquire(1, Any)!;
        var later = route.TryHold(100, 1, Any, arrived: 20)!;
        var retry = route.TryHold(100, 1, Any, arrived: 10)!;

        route.Release(busy);
        Assert.That(retry.Pod.IsCompletedSuccessfully, Is.True);
        Assert.That(later.Pod.IsCompleted, Is.False);
    }

    [Test]
    public async Task Held_requests_cancelled_while_slots_are_handed_out_leak_no_slot()
    {
        var route = Route("a", "b");
        var held = Enumerable.Range(0, 2000).Select(_ => Hold(route, maxConcurrency: 3)).ToList();
        var served = 0;
        var serving = held.Select(async (h, i) =>
        {
            if (i % 3 == 0)
            {
                await Task.Yield();
                if (!h.Cancel())
                {
                    route.Release(await h.Pod);
                    Interlocked.Increment(ref served);
                }

                return;
            }

            var pod = await h.Pod;
            await Task.Yield();
            route.Release(pod);
            Interlocked.Increment(ref served);
        }).ToList();

        await Task.WhenAll(serving).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(route.Held, Is.Zero);
        Assert.That(route.Ready.Sum(p => p.InFlight), Is.Zero);
        Assert.That(served, Is.GreaterThanOrEqualTo(2000 * 2 / 3));
    }

    [Test]
    public void Demand_from_several_gateways_adds_up()
    {
        var t1 = DateTimeOffset.Parse("2026-11-23T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var sum = GatewayDemandSource.Sum(
        [
            new FunctionDemand { Namespace = "ns", Name = "fn", InFlight = 3, LastRequest = t1, Pods = new() { ["a"] = 2, ["b"] = 1 } },
            new FunctionDemand { Namespace = "ns", Name = "fn", InFlight = 4, LastRequest = t1.AddSeconds(5), Pods = new() { ["a"] = 1 } },
            new FunctionDemand { Namespace = "ns", Name = "other", InFlight = 1 },
        ]);

        var fn = sum.Single(d => d.Name == "fn");
        Assert.That(fn.InFlight, Is.EqualTo(7));
        Assert.That(fn.LastRequest, Is.EqualTo(t1.AddSeconds(5)));
        Assert.That(fn.Pods, Is.EquivalentTo(new Dictionary<string, int> { ["a"] = 3, ["b"] = 1 }));
        Assert.That(sum.Single(d => d.Name == "other").InFlight, Is.EqualTo(1));
    }

    [Test]
    public void A_finished_request_stamps_when_it_finished_and_several_gateways_keep_the_latest()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));
        var route = new FunctionRoute(new ObjectKey("ns", "fn"), time);
        var arrived = time.GetUtcNow();
        route.Arrived(arrived);
        Assert.That(route.LastFinished, Is.Null);

        time.Advance(TimeSpan.FromSeconds(40));
        route.Finished();

        Assert.That(route.InFlight, Is.Zero);
        Assert.That(route.LastRequest, Is.EqualTo(arrived));
        Assert.That(route.LastFinished, Is.EqualTo(arrived.AddSeconds(40)), "a 40 s request finishes 40 s after it arrived");

        var sum = GatewayDemandSource.Sum(
        [
            new FunctionDemand { Namespace = "ns", Name = "fn", LastFinished = arrived.AddSeconds(40) },
            new FunctionDemand { Namespace = "ns", Name = "fn", LastFinished = arrived.AddSeconds(2) },
            new FunctionDemand { Namespace = "ns", Name = "fn" },
        ]);
        Assert.That(sum.Single().LastFinished, Is.EqualTo(arrived.AddSeconds(40)));
    }

    [Test]
    public void The_demand_report_serialises_last_finished()
    {
        var report = new FunctionDemand { Namespace = "ns", Name = "fn", LastFinished = DateTimeOffset.UnixEpoch };
        Assert.That(System.Text.Json.JsonSerializer.Serialize(report), Does.Contain("\"lastFinished\":"));
    }
}
