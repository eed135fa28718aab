using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>Routing to warm standby pods from the gateway's cache: which pod, only the function's own, and what follows.</summary>
public class WarmRouteTests
{
    private const string Uid = "4d7c1b9e-function-uid";
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private static readonly IReadOnlySet<string> Nothing = new HashSet<string>();
    private static readonly Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> Any = _ => Nothing;

    private static PodEndpoint Pod(string name, string? owner = Uid, int age = 0) =>
        new(name, new Uri($"http://{name}.local:8099"), T0.AddSeconds(-age), T0.AddSeconds(-age + 1), owner);

    private static FunctionRoute Route(IEnumerable<PodEndpoint> serving, IEnumerable<PodEndpoint> warm, Action<FunctionRoute>? served = null)
    {
        var route = new FunctionRoute(new ObjectKey("ns", "fn")) { WarmServed = served };
        route.SetReady(serving.ToList(), [], warm.ToList());
        return route;
    }

    [Test]
    public void With_no_serving_pod_a_request_takes_the_functions_warm_pod_at_once()
    {
        var route = Route([], [Pod("w")]);

        var pod = route.TryAcquire(1, Any, Uid);

        Assert.That(pod?.Name, Is.EqualTo("w"));
        Assert.That(pod!.Warm, Is.True);
        Assert.That(route.TryAcquire(1, Any, Uid), Is.Null, "maxConcurrency holds for warm pods too");
    }

    [Test]
    public void A_serving_pod_with_room_comes_before_any_warm_pod()
    {
        var route = Route([Pod("s")], [Pod("w", age: 60)]);

        Assert.That(route.TryAcquire(2, Any, Uid)?.Name, Is.EqualTo("s"));
        Assert.That(route.TryAcquire(2, Any, Uid)?.Name, Is.EqualTo("s"));
        Assert.That(route.WouldRouteWarm(2, Uid), Is.True, "the serving pod is full now");
        Assert.That(route.TryAcquire(2, Any, Uid)?.Name, Is.EqualTo("w"));
    }

    [Test]
    public void A_warm_pod_not_controlled_by_the_function_is_never_routed_to()
    {
        // Right labels (they put it in the cache) but no controller reference, or another function's UID.
        var route = Route([], [Pod("forged", owner: null, age: 90), Pod("other", owner: "another-uid", age: 60)]);

        Assert.That(route.TryAcquire(1, Any, Uid), Is.Null);
        Assert.That(route.WouldRouteWarm(1, Uid), Is.False);
        Assert.That(route.TryAcquire(1, Any, functionUid: null), Is.Null, "without the function's UID nothing warm is trusted");
    }

    [Test]
    public void Warm_routing_packs_onto_a_busy_standby_then_takes_the_oldest()
    {
        IReadOnlyList<PodEndpoint> warm = [Pod("young", age: 5), Pod("old", age: 50), Pod("forged-oldest", owner: null, age: 500)];
        Assert.That(FunctionRoute.ChooseWarm(warm, Uid, 4, Nothing)?.Name, Is.EqualTo("old"), "the oldest, as the operator would claim it");

        var route = Route([], warm);
        Assert.That(route.TryAcquire(4, Any, Uid)?.Name, Is.EqualTo("old"));
        Assert.That(route.TryAcquire(4, Any, Uid)?.Name, Is.EqualTo("old"), "a burst takes as few pods out of the pool as it can");
        Assert.That(FunctionRoute.ChooseWarm(warm, Uid, 4, new HashSet<string> { "old" })?.Name, Is.EqualTo("young"), "a pod the request failed on is left");
        Assert.That(FunctionRoute.ChooseWarm(warm, "", 4, Nothing), Is.Null);
    }

    [Test]
    public void A_held_request_is_handed_a_warm_pod_that_turns_ready()
    {
        var route = Route([], []);
        Assert.That(route.TryAcquire(1, Any, Uid), Is.Null);
        var held = route.TryHold(100, 1, Any, 1, Uid)!;
        Assert.That(held.Pod.IsCompleted, Is.False);

        route.SetReady([], [], [Pod("forged", owner: null)]);
        Assert.That(held.Pod.IsCompleted, Is.False, "a forged standby does not take it");

        route.SetReady([], [], [Pod("w")]);
        Assert.That(held.Pod.IsCompletedSuccessfully, Is.True);
        Assert.That(held.Pod.Result.Name, Is.EqualTo("w"));
    }

    [Test]
    public void A_claimed_warm_pod_keeps_its_requests_when_it_turns_serving_and_its_release_then_stamps_nothing()
    {
        var stamped = 0;
        var route = Route([], [Pod("w"), Pod("w2")], _ => stamped++);
        var first = route.TryAcquire(2, Any, Uid)!;
        var second = route.TryAcquire(2, Any, Uid)!;
        Assert.That((first.Name, second.Name), Is.EqualTo(("w", "w")));

        route.Release(first);
        Assert.That(stamped, Is.EqualTo(1), "a request left a pod still unclaimed: the gateway stamps its wake");

        // The operator relabels it serving: the same endpoint moves over with the request it still has.
        route.SetReady([Pod("w")], [], [Pod("w2")]);
        var serving = route.Ready.Single();
        Assert.That(serving, Is.SameAs(second));
        Assert.That(serving.Warm, Is.False);
        Assert.That(serving.InFlight, Is.EqualTo(1));
        Assert.That(route.Warm.Select(p => p.Name), Is.EqualTo(new[] { "w2" }));

        route.Release(second);
        Assert.That(stamped, Is.EqualTo(1), "claimed already: nothing more to tell");
    }
}

/// <summary>What the gateway's pod watch makes of warm pods, and what its demand report says of them.</summary>
public sealed class WarmRoutesFromPodsTests
{
    private const string Uid = "0f6e2a8c-function-uid";
    private CancellationTokenSource _stop = null!;

    [SetUp]
    public void SetUp() => _stop = new CancellationTokenSource();

    [TearDown]
    public void TearDown()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    private static k8s.Models.V1Pod Pod(string name, string role, bool ready = true, string? owner = Uid) => new()
    {
        Metadata = new k8s.Models.V1ObjectMeta
        {
            Name = name,
            NamespaceProperty = "ns",
            CreationTimestamp = new DateTime(2026, 11, 23, 9, 0, 0, DateTimeKind.Utc),
            Labels = new Dictionary<string, string> { [Pilotlight.Contracts.FunctionLabels.Function] = "fn", [Pilotlight.Contracts.FunctionLabels.Role] = role },
            OwnerReferences = owner is null ? null : [new k8s.Models.V1OwnerReference { Kind = "GpuFunction", Uid = owner, Name = "fn", ApiVersion = "pilotlight.dev/v1alpha1", Controller = true }],
        },
        Status = new k8s.Models.V1PodStatus
        {
            Phase = "Running",
            PodIP = $"10.0.0.{name.Length}",
            Conditions = [new k8s.Models.V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
        },
    };

    private async Task<FunctionRoutes> RoutesAsync(params k8s.Models.V1Pod[] pods)
    {
        var informer = new Informer<k8s.Models.V1Pod>(new ListWatch<k8s.Models.V1Pod>("pods",
            (_, _, _) => Task.FromResult(new ListPage<k8s.Models.V1Pod>(pods, "1", null)),
            (_, _, _, ct) => Forever<k8s.Models.V1Pod>(ct)));
        var function = new Pilotlight.Api.V1Alpha1.GpuFunction { Metadata = new k8s.Models.V1ObjectMeta { Name = "fn", NamespaceProperty = "ns", Uid = Uid } };
        var functions = new Informer<Pilotlight.Api.V1Alpha1.GpuFunction>(new ListWatch<Pilotlight.Api.V1Alpha1.GpuFunction>("gpufunctions",
            (_, _, _) => Task.FromResult(new ListPage<Pilotlight.Api.V1Alpha1.GpuFunction>([function], "1", null)),
            (_, _, _, ct) => Forever<Pilotlight.Api.V1Alpha1.GpuFunction>(ct)));
        var routes = new FunctionRoutes(informer, functions, 8099);
        _ = functions.RunAsync(_stop.Token);
        await functions.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        _ = informer.RunAsync(_stop.Token);
        await informer.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        return routes;
    }

    private static async IAsyncEnumerable<(k8s.WatchEventType, T)> Forever<T>([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
        yield break;
    }

    [Test]
    public async Task Ready_warm_pods_are_kept_with_their_owner_and_a_busy_one_is_in_the_demand_report()
    {
        var routes = await RoutesAsync(Pod("w1", "warm"), Pod("w-starting", "warm", ready: false), Pod("w-forged", "warm", owner: null));
        var route = routes.Get(new ObjectKey("ns", "fn"));

        Assert.That(route.Ready, Is.Empty, "a warm pod is not a serving one");
        Assert.That(route.Warm.Select(p => (p.Name, p.OwnerUid)), Is.EquivalentTo(new[] { ("w1", (string?)Uid) }),
            "only ready warm pods the function controls; the forged one is not even kept");

        route.Arrived(DateTimeOffset.UtcNow);
        var pod = route.TryAcquire(1, _ => new HashSet<string>(), Uid);
        Assert.That(pod?.Name, Is.EqualTo("w1"));

        var report = routes.Demand().Single();
        Assert.That(report.Pods, Does.ContainKey("w1").WithValue(1), "the operator learns the standby is busy: it counts it and claims it first");
    }

    [Test]
    public async Task A_route_asked_for_right_after_the_first_list_is_already_built_from_it()
    {
        // The first list builds every route on a pool thread while requests may already ask for them; one asked for
        // in between was once handed created but empty (no pods where there were some). Many functions widen the window.
        const int count = 400;
        var functions = Enumerable.Range(0, count).Select(i => new Pilotlight.Api.V1Alpha1.GpuFunction
        {
            Metadata = new k8s.Models.V1ObjectMeta { Name = $"fn{i}", NamespaceProperty = "ns", Uid = $"uid-{i}" },
        }).ToList();
        var pods = Enumerable.Range(0, count).Select(i =>
        {
            var pod = Pod($"w{i}", "warm", owner: $"uid-{i}");
            pod.Metadata.Labels[Pilotlight.Contracts.FunctionLabels.Function] = $"fn{i}";
            return pod;
        }).ToList();
        var podInformer = new Informer<k8s.Models.V1Pod>(new ListWatch<k8s.Models.V1Pod>("pods",
            (_, _, _) => Task.FromResult(new ListPage<k8s.Models.V1Pod>(pods, "1", null)),
            (_, _, _, ct) => Forever<k8s.Models.V1Pod>(ct)));
        var functionInformer = new Informer<Pilotlight.Api.V1Alpha1.GpuFunction>(new ListWatch<Pilotlight.Api.V1Alpha1.GpuFunction>("gpufunctions",
            (_, _, _) => Task.FromResult(new ListPage<Pilotlight.Api.V1Alpha1.GpuFunction>(functions, "1", null)),
            (_, _, _, ct) => Forever<Pilotlight.Api.V1Alpha1.GpuFunction>(ct)));
        var routes = new FunctionRoutes(podInformer, functionInformer, 8099);
        _ = functionInformer.RunAsync(_stop.Token);
        await functionInformer.Synced.WaitAsync(TimeSpan.FromSeconds(10));

        _ = podInformer.RunAsync(_stop.Token);
        await podInformer.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        var empty = Enumerable.Range(0, count).Reverse()
            .Where(i => routes.Get(new ObjectKey("ns", $"fn{i}")).Warm.Count == 0)
            .Select(i => $"fn{i}")
            .ToList();

        Assert.That(empty, Is.Empty, "every function's route has its warm pod the moment it is handed out");
    }
}
