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

    [Test]
    public void The_pod_with_the_fewest_requests_in_flight_is_picked()
    {
        var route = Route("a", "b", "c");
        var picks = Enumerable.Range(0, 6).Select(i => route.TryAcquire(4, Nothing, out var _)!.Name).ToList();
        Assert.That(picks, Is.EqualTo(new[] { "a", "b", "c", "a", "b", "c" }));
    }

    [Test]
    public void No_pod_takes_more_than_max_concurrency_and_a_release_wakes_waiters()
    {
        var route = Route("a");
        Assert.That(route.TryAcquire(2, Nothing, out _), Is.Not.Null);
        var second = route.TryAcquire(2, Nothing, out _)!;
        Assert.That(route.TryAcquire(2, Nothing, out var changed), Is.Null);
        Assert.That(changed.IsCompleted, Is.False);

        route.Release(second);

        Assert.That(changed.IsCompleted, Is.True);
        Assert.That(route.TryAcquire(2, Nothing, out _)?.Name, Is.EqualTo("a"));
    }

    [Test]
    public void Pods_already_tried_are_skipped()
    {
        var route = Route("a", "b");
        Assert.That(route.TryAcquire(1, new HashSet<string> { "a" }, out _)?.Name, Is.EqualTo("b"));
        Assert.That(route.TryAcquire(1, new HashSet<string> { "a" }, out _), Is.Null, "a was tried and b has no room left");
    }

    [Test]
    public void A_pod_set_change_keeps_in_flight_counts_and_wakes_waiters()
    {
        var route = Route("a");
        route.TryAcquire(1, Nothing, out _);
        Assert.That(route.TryAcquire(1, Nothing, out var changed), Is.Null);

        route.SetReady([new PodEndpoint("a", new Uri("http://a.local:8099")), new PodEndpoint("b", new Uri("http://b.local:8099"))]);

        Assert.That(changed.IsCompleted, Is.True);
        Assert.That(route.Ready.Single(p => p.Name == "a").InFlight, Is.EqualTo(1));
        Assert.That(route.TryAcquire(1, Nothing, out _)?.Name, Is.EqualTo("b"));
    }

    [Test]
    public void A_starting_pod_whose_shim_said_ready_serves_until_the_api_catches_up_or_it_goes()
    {
        var route = Route();
        var a = new PodEndpoint("a", new Uri("http://a.local:8099"));
        route.SetReady([], [a]);
        Assert.That(route.TryAcquire(1, Nothing, out _), Is.Null, "starting, not ready");

        route.MarkProbedReady(a);
        var taken = route.TryAcquire(1, Nothing, out _);
        Assert.That(taken?.Name, Is.EqualTo("a"));
        route.Release(taken!);

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
        Assert.That(route.TryHold(2), Is.True);
        Assert.That(route.TryHold(2), Is.True);
        Assert.That(route.TryHold(2), Is.False);
        route.Unhold();
        Assert.That(route.TryHold(2), Is.True);
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
}
