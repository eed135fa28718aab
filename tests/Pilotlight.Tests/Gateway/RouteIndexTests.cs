using System.Collections.Concurrent;
using System.Threading.Channels;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>
/// Routes kept from the pod cache's function index: a pod event rebuilds its own function's route (and the one it
/// left), never the others; the first list builds each route once; what the gateway caches of a pod is enough.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class RouteIndexTests
{
    private const int Functions = 200;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<(WatchEventType, V1Pod)> _podEvents = Channel.CreateUnbounded<(WatchEventType, V1Pod)>();
    private readonly ConcurrentQueue<ObjectKey> _rebuilt = new();
    private readonly ConcurrentDictionary<ObjectKey, TaskCompletionSource> _waiting = new();
    private int _version = 100;

    [TearDown]
    public void TearDown()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    private static string Uid(string function) => $"uid-{function}";

    private static ObjectKey Key(string function) => new("ns", function);

    private V1Pod Pod(string name, string function, string? owner = null, bool ready = true) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            NamespaceProperty = "ns",
            Uid = $"pod-{name}",
            ResourceVersion = Interlocked.Increment(ref _version).ToString(System.Globalization.CultureInfo.InvariantCulture),
            CreationTimestamp = new DateTime(2026, 11, 23, 9, 0, 0, DateTimeKind.Utc),
            Labels = new Dictionary<string, string> { [FunctionLabels.Function] = function, [FunctionLabels.Role] = FunctionLabels.RoleServing },
            OwnerReferences = [new V1OwnerReference { Kind = "GpuFunction", Uid = owner ?? Uid(function), Name = function, ApiVersion = "pilotlight.dev/v1alpha1", Controller = true }],
            Annotations = new Dictionary<string, string> { ["note"] = new string('x', 100) },
        },
        Spec = new V1PodSpec { Containers = [new V1Container { Name = "model", Image = "model:1", Env = [new V1EnvVar { Name = "A", Value = "b" }] }] },
        Status = new V1PodStatus
        {
            Phase = "Running",
            PodIP = "10.0.0.7",
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
            ContainerStatuses = [new V1ContainerStatus { Name = "model", Image = "model:1", ImageID = "sha", Ready = ready, RestartCount = 0 }],
        },
    };

    private static GpuFunction Function(string name) => new() { Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "ns", Uid = Uid(name), ResourceVersion = "1" } };

    /// <summary>Routes over <paramref name="listed"/> pods and one function per name in 0..<see cref="Functions"/>; pod events after that come from <see cref="SendAsync"/>.</summary>
    private async Task<(FunctionRoutes Routes, Informer<V1Pod> Pods)> RoutesAsync(List<V1Pod> listed, Func<object, object>? transform = null,
        Func<object, object>? functionTransform = null)
    {
        var pods = new Informer<V1Pod>(new ListWatch<V1Pod>("pods",
            (_, _, _) => Task.FromResult(new ListPage<V1Pod>(listed, "100", null)),
            (_, _, _, ct) => _podEvents.Reader.ReadAllAsync(ct)), transform is null ? null : new InformerOptions { Transform = transform });
        var known = Enumerable.Range(0, Functions).Select(i => Function($"fn-{i}")).ToList();
        var functions = new Informer<GpuFunction>(new ListWatch<GpuFunction>("gpufunctions",
            (_, _, _) => Task.FromResult(new ListPage<GpuFunction>(known, "1", null)),
            (_, _, _, ct) => Forever<GpuFunction>(ct)), functionTransform is null ? null : new InformerOptions { Transform = functionTransform });
        var routes = new FunctionRoutes(pods, functions, 8099);
        routes.PodsChanged += route =>
        {
            _rebuilt.Enqueue(route.Key);
            if (_waiting.TryRemove(route.Key, out var waiter))
            {
                waiter.TrySetResult();
            }
        };
        _ = functions.RunAsync(_stop.Token);
        await functions.Synced.WaitAsync(Patience);
        // Every listed function's route is built once the list is in (after Synced, off the watch's thread).
        var built = Task.WhenAll(listed.Select(p => p.Metadata.Labels[FunctionLabels.Function]).Distinct().Select(Rebuilt));
        _ = pods.RunAsync(_stop.Token);
        await pods.Synced.WaitAsync(Patience);
        await built.WaitAsync(Patience);
        return (routes, pods);
    }

    private static async IAsyncEnumerable<(WatchEventType, T)> Forever<T>([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
        yield break;
    }

    /// <summary>A task that completes when the route of <paramref name="function"/> is next rebuilt.</summary>
    private Task Rebuilt(string function) =>
        _waiting.GetOrAdd(Key(function), _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    private async Task SendAsync(WatchEventType type, V1Pod pod) => await _podEvents.Writer.WriteAsync((type, pod));

    /// <summary>
    /// Sends a pod event for a function no test uses and waits for its rebuild: events are handled in order, so every
    /// rebuild an earlier event caused has happened by then.
    /// </summary>
    private async Task SettleAsync()
    {
        var marker = Rebuilt("fn-marker");
        await SendAsync(WatchEventType.Added, Pod($"marker-{Guid.NewGuid():N}", "fn-marker"));
        await marker.WaitAsync(Patience);
    }

    private List<string> RebuiltSinceLast()
    {
        var seen = new List<string>();
        while (_rebuilt.TryDequeue(out var key))
        {
            seen.Add(key.Name);
        }

        return seen;
    }

    private static List<V1Pod> PodsOfEveryFunction(Func<string, string, V1Pod> pod, int perFunction) =>
        [.. Enumerable.Range(0, Functions).SelectMany(i => Enumerable.Range(0, perFunction).Select(j => pod($"fn-{i}-{j}", $"fn-{i}")))];

    [Test]
    public async Task The_first_list_builds_each_functions_route_once_and_only_from_its_own_pods()
    {
        var (routes, _) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn), perFunction: 3));
        await SettleAsync();

        var rebuilt = RebuiltSinceLast();
        Assert.That(rebuilt.Where(n => n != "fn-marker"), Is.EquivalentTo(Enumerable.Range(0, Functions).Select(i => $"fn-{i}")),
            "each listed function once, not once per pod");
        for (var i = 0; i < Functions; i++)
        {
            Assert.That(routes.Get(Key($"fn-{i}")).Ready.Select(p => p.Name), Is.EquivalentTo(Enumerable.Range(0, 3).Select(j => $"fn-{i}-{j}")));
        }
    }

    [Test]
    public async Task A_pod_event_changes_its_functions_route_and_no_other()
    {
        var (routes, _) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn), perFunction: 2));
        var others = Enumerable.Range(0, Functions).Where(i => i != 7).Select(i => routes.Get(Key($"fn-{i}"))).ToList();
        var before = others.ToDictionary(r => r.Key, r => r.Ready);
        await SettleAsync();
        RebuiltSinceLast();

        await SendAsync(WatchEventType.Added, Pod("fn-7-new", "fn-7"));
        await SettleAsync();
        Assert.That(RebuiltSinceLast(), Is.EqualTo(new[] { "fn-7", "fn-marker" }));
        Assert.That(routes.Get(Key("fn-7")).Ready.Select(p => p.Name), Is.EquivalentTo(new[] { "fn-7-0", "fn-7-1", "fn-7-new" }));

        await SendAsync(WatchEventType.Modified, Pod("fn-7-0", "fn-7", ready: false));
        await SendAsync(WatchEventType.Deleted, Pod("fn-7-1", "fn-7"));
        await SettleAsync();
        Assert.That(RebuiltSinceLast(), Is.EqualTo(new[] { "fn-7", "fn-7", "fn-marker" }));
        Assert.That(routes.Get(Key("fn-7")).Ready.Select(p => p.Name), Is.EqualTo(new[] { "fn-7-new" }));
        Assert.That(routes.Get(Key("fn-7")).Starting.Select(p => p.Name), Is.EqualTo(new[] { "fn-7-0" }));

        foreach (var route in others)
        {
            Assert.That(route.Ready, Is.SameAs(before[route.Key]), $"{route.Key} was left as it was");
        }
    }

    [Test]
    public async Task A_pod_relabelled_to_another_function_leaves_the_old_functions_route()
    {
        var (routes, _) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn), perFunction: 2));
        await SettleAsync();
        RebuiltSinceLast();

        // Relabelled and re-owned: it now serves fn-4.
        await SendAsync(WatchEventType.Modified, Pod("fn-3-0", "fn-4"));
        await SettleAsync();

        Assert.That(RebuiltSinceLast(), Is.EquivalentTo(new[] { "fn-3", "fn-4", "fn-marker" }), "both functions' routes, no other");
        Assert.That(routes.Get(Key("fn-3")).Ready.Select(p => p.Name), Is.EqualTo(new[] { "fn-3-1" }));
        Assert.That(routes.Get(Key("fn-4")).Ready.Select(p => p.Name), Is.EquivalentTo(new[] { "fn-3-0", "fn-4-0", "fn-4-1" }));
    }

    [Test]
    public async Task A_pod_whose_controller_changes_to_another_function_leaves_the_route_though_its_label_stays()
    {
        var (routes, _) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn), perFunction: 2));
        await SettleAsync();
        RebuiltSinceLast();

        await SendAsync(WatchEventType.Modified, Pod("fn-5-0", "fn-5", owner: Uid("fn-6")));
        await SettleAsync();

        Assert.That(RebuiltSinceLast(), Is.EqualTo(new[] { "fn-5", "fn-marker" }));
        Assert.That(routes.Get(Key("fn-5")).Ready.Select(p => p.Name), Is.EqualTo(new[] { "fn-5-1" }), "labels alone do not make a pod the function's");
        Assert.That(routes.Get(Key("fn-6")).Ready.Select(p => p.Name), Is.EquivalentTo(new[] { "fn-6-0", "fn-6-1" }), "nor does a controller reference without the label");
    }

    [Test]
    public async Task A_pod_losing_its_function_label_leaves_the_route()
    {
        var (routes, _) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn), perFunction: 2));
        await SettleAsync();
        RebuiltSinceLast();

        var unlabelled = Pod("fn-9-0", "fn-9");
        unlabelled.Metadata.Labels.Remove(FunctionLabels.Function);
        await SendAsync(WatchEventType.Modified, unlabelled);
        await SettleAsync();

        Assert.That(RebuiltSinceLast(), Is.EqualTo(new[] { "fn-9", "fn-marker" }));
        Assert.That(routes.Get(Key("fn-9")).Ready.Select(p => p.Name), Is.EqualTo(new[] { "fn-9-1" }));
    }

    [Test]
    public async Task Pods_cached_with_only_the_routing_fields_route_as_whole_ones_do()
    {
        var (routes, pods) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn), perFunction: 2), GatewayPods.KeepRoutingFields);

        var route = routes.Get(Key("fn-1"));
        Assert.That(route.Ready.Select(p => (p.Name, p.Uri.ToString(), p.OwnerUid)),
            Is.EquivalentTo(new[] { ("fn-1-0", "http://10.0.0.7:8099/", (string?)Uid("fn-1")), ("fn-1-1", "http://10.0.0.7:8099/", Uid("fn-1")) }));
        var cached = pods.Get(new ObjectKey("ns", "fn-1-0"))!;
        Assert.That(cached.Spec, Is.Null);
        Assert.That(cached.Metadata.Annotations, Is.Null);
        Assert.That(cached.Status.ContainerStatuses, Is.Null);
        Assert.That((cached.Metadata.Uid, cached.Status.PodIP, cached.Status.Phase), Is.EqualTo(("pod-fn-1-0", "10.0.0.7", "Running")));
        Assert.That(PodReadiness.IsReady(cached), Is.True);
    }

    [Test]
    public async Task Functions_cached_with_only_the_invocation_fields_own_their_pods_as_whole_ones_do()
    {
        var (routes, _) = await RoutesAsync(PodsOfEveryFunction((name, fn) => Pod(name, fn, owner: fn == "fn-2" ? Uid("fn-3") : null), perFunction: 2),
            GatewayPods.KeepRoutingFields, GatewayFunctions.KeepInvocationFields);

        Assert.That(routes.Get(Key("fn-1")).Ready.Select(p => (p.Name, p.OwnerUid)),
            Is.EquivalentTo(new[] { ("fn-1-0", (string?)Uid("fn-1")), ("fn-1-1", Uid("fn-1")) }));
        Assert.That(routes.Get(Key("fn-2")).Ready, Is.Empty, "a pod another function's UID controls is not this one's");
    }

    [Test]
    public void The_routing_transform_keeps_what_routing_and_the_sandbox_api_read()
    {
        var pod = Pod("p", "fn-1");
        pod.Metadata.DeletionTimestamp = new DateTime(2026, 11, 23, 10, 0, 0, DateTimeKind.Utc);
        pod.Metadata.ManagedFields = [new V1ManagedFieldsEntry { Manager = "kubectl" }];

        var kept = (V1Pod)GatewayPods.KeepRoutingFields(pod);

        Assert.That(kept.Metadata.ManagedFields, Is.Null);
        Assert.That(kept.Metadata.Labels, Does.ContainKey(FunctionLabels.Function));
        Assert.That(kept.Metadata.OwnerReferences.Single().Uid, Is.EqualTo(Uid("fn-1")));
        Assert.That(kept.Metadata.DeletionTimestamp, Is.Not.Null);
        Assert.That(kept.Metadata.CreationTimestamp, Is.Not.Null);
        Assert.That(kept.Metadata.ResourceVersion, Is.Not.Null);
        Assert.That(kept.Status.Conditions, Has.Count.EqualTo(1));
        Assert.That(GatewayPods.KeepRoutingFields("not a pod"), Is.EqualTo("not a pod"));
    }

    [Test]
    public void A_pod_is_indexed_under_the_function_its_label_names()
    {
        Assert.That(FunctionRoutes.ByFunction(Pod("p", "fn-1")), Is.EqualTo(new[] { "ns/fn-1" }));
        Assert.That(FunctionRoutes.FunctionIndexValue(Key("fn-1")), Is.EqualTo("ns/fn-1"));
        var unlabelled = Pod("q", "fn-1");
        unlabelled.Metadata.Labels.Remove(FunctionLabels.Function);
        Assert.That(FunctionRoutes.ByFunction(unlabelled), Is.Empty);
    }
}
