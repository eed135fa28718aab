using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The GpuFunction controller on the real control plane with simulated GPU
/// nodes. Each test gets a namespace and a node pool of its own, selected
/// through the function's nodeSelector, so capacity is the test's alone. The
/// operator is the shared one, with a catalog that lacks B200 and adds X1000 (<see cref="SharedOperator.Catalog"/>).
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class GpuFunctionControllerTests
{
    private const string PoolLabel = "pilotlight.dev/test-pool";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(45);
    private ControlPlane _plane = null!;
    private Kubernetes _client = null!;
    private NodeSimulator _sim = null!;
    private Kubectl _kubectl = null!;
    private Task _operator = Task.CompletedTask;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        _plane = await SharedControlPlane.GetAsync();
        _client = _plane.CreateClient();
        _kubectl = new Kubectl(_plane.KubeconfigPath);
        _sim = new NodeSimulator(_client, new NodeSimulatorOptions { PodNetwork = 4 });
        await _sim.StartAsync();

        _operator = (await SharedOperator.GetAsync()).Operator;
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        await _sim.DeleteNodesAsync();
        await _sim.DisposeAsync();
        _client.Dispose();
    }

    private async Task<string> PoolAsync(string ns, params (string Suffix, GpuNodePreset Preset)[] nodes)
    {
        foreach (var (suffix, preset) in nodes)
        {
            await _sim.AddNodeAsync($"{ns}-{suffix}", preset, new Dictionary<string, string> { [PoolLabel] = ns });
        }

        return ns;
    }

    private async Task ApplyAsync(string ns, string yaml) => (await _kubectl.ApplyAsync(yaml, ns)).EnsureSuccess();

    private static string Manifest(string name, string pool, string gpu, int replicas, string image = "example/llm:1", bool clusterService = false) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: {image}
          gpu: {gpu}
          clusterService: {(clusterService ? "true" : "false")}
          scaling:
            minReplicas: {replicas}
          nodeSelector:
            {PoolLabel}: {pool}
        """;

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        _client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<IList<V1Pod>> PodsAsync(string ns, string name) =>
        (await _client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items;

    private Task<V1Condition> ReadyConditionAsync(string ns, string name, Func<V1Condition, bool> until, string what,
        string type = FunctionConditions.Ready) =>
        Eventually.GetAsync(async () =>
        {
            var fn = await GetAsync(ns, name);
            var ready = fn.Status?.Conditions?.FirstOrDefault(c => c.Type == type);
            return ready is not null && fn.Status!.ObservedGeneration == fn.Metadata.Generation && until(ready) ? ready : null;
        }, Timeout, what);

    [Test]
    public async Task Pods_land_on_the_requested_gpu_then_the_fallback_and_status_says_why_when_nothing_fits()
    {
        var ns = await _plane.CreateNamespaceAsync("placement");
        var pool = await PoolAsync(ns, ("h100", GpuNodePreset.H100.WithGpus(2)), ("a100", GpuNodePreset.A100x80GB.WithGpus(2)), ("l4", GpuNodePreset.L4));

        await ApplyAsync(ns, Manifest("llm", pool, "{type: H100, count: 2, fallbacks: [A100-80GB]}", replicas: 2));
        // Ready is True once one replica serves; ScaledUp once both are ready.
        await ReadyConditionAsync(ns, "llm", c => c.Status == "True", "llm scaled up", FunctionConditions.ScaledUp);

        var pods = await PodsAsync(ns, "llm");
        Assert.That(pods.Select(p => p.Spec.NodeName).Order(), Is.EqualTo(new[] { $"{ns}-a100", $"{ns}-h100" }),
            "one pod fills the H100 node, the second falls back to A100-80GB, none goes to L4");
        var fn = await GetAsync(ns, "llm");
        Assert.That(fn.Status!.Gpu, Is.EqualTo("A100-80GB,H100"));
        Assert.That(fn.Status.ReadyReplicas, Is.EqualTo(2));
        Assert.That(fn.Status.Selector, Is.EqualTo($"{FunctionLabels.Function}=llm"));

        // Everything with H100s or A100s is now full.
        await ApplyAsync(ns, Manifest("late", pool, "{type: H100, count: 1, fallbacks: [A100-80GB]}", replicas: 1));
        var unschedulable = await ReadyConditionAsync(ns, "late", c => c.Reason == FunctionConditions.Reasons.Unschedulable, "late Unschedulable");
        Assert.That(unschedulable.Status, Is.EqualTo("False"));
        Assert.That(unschedulable.Message, Does.Contain("Insufficient nvidia.com/gpu"));

        // The Event follows the status write that the condition came with.
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=late")).Items
            .Any(e => e.Reason == FunctionConditions.Reasons.Unschedulable && e.Type == "Warning"), TimeSpan.FromSeconds(30), "a Warning Event Unschedulable for late");
    }

    [Test]
    public async Task Changing_the_image_rolls_pods_without_dropping_below_the_ready_count_and_deletion_removes_everything()
    {
        var ns = await _plane.CreateNamespaceAsync("rollout");
        var pool = await PoolAsync(ns, ("l4", GpuNodePreset.L4));
        await ApplyAsync(ns, Manifest("img", pool, "{type: L4}", replicas: 2, clusterService: true));
        await ReadyConditionAsync(ns, "img", c => c.Reason == FunctionConditions.Reasons.PodsReady, "img ready");
        var before = (await PodsAsync(ns, "img")).Select(p => p.Metadata.Name).ToHashSet();
        Assert.That(await _client.CoreV1.ReadNamespacedServiceAsync("img", ns), Is.Not.Null);

        // Follow every pod change during the rollout and keep the lowest ready count.
        var pods = new ConcurrentDictionary<string, V1Pod>((await PodsAsync(ns, "img")).ToDictionary(p => p.Metadata.Name));
        var minReady = int.MaxValue;
        var informer = new Informer<V1Pod>(ListWatch.ForPods(_client, $"{FunctionLabels.Function}=img", $"metadata.namespace={ns}"));
        informer.AddHandler(e =>
        {
            if (e.Type == WatchEventType.Deleted || e.Object.Metadata.DeletionTimestamp is not null)
            {
                pods.TryRemove(e.Object.Metadata.Name, out _);
            }
            else
            {
                pods[e.Object.Metadata.Name] = e.Object;
            }

            var ready = pods.Values.Count(PodReadiness.IsReady);
            InterlockedMin(ref minReady, ready);
        });
        using var watching = new CancellationTokenSource();
        var watch = informer.RunAsync(watching.Token);
        await informer.Synced;

        await ApplyAsync(ns, Manifest("img", pool, "{type: L4}", replicas: 2, image: "example/llm:2", clusterService: true));
        await Eventually.HoldsAsync(async () =>
        {
            var now = await PodsAsync(ns, "img");
            return now.Count == 2 && now.All(p => p.Spec.Containers[0].Image == "example/llm:2" && PodReadiness.IsReady(p));
        }, Timeout, "two ready pods of the new image only");
        await ReadyConditionAsync(ns, "img", c => c.Reason == FunctionConditions.Reasons.PodsReady, "rollout complete");
        await watching.CancelAsync();
        await watch;

        Assert.That(minReady, Is.EqualTo(2), "never fewer ready pods than before the rollout (and the watch saw the rollout)");
        Assert.That((await PodsAsync(ns, "img")).Select(p => p.Metadata.Name), Has.None.AnyOf(before.ToArray()));

        await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", "img",
            body: new V1DeleteOptions { PropagationPolicy = "Background" });
        await Eventually.HoldsAsync(async () =>
            (await PodsAsync(ns, "img")).Count == 0
            && (await _client.CoreV1.ListNamespacedServiceAsync(ns, fieldSelector: "metadata.name=img")).Items.Count == 0,
            Timeout, "pods and Service garbage-collected");
    }

    [Test]
    public async Task A_gpu_type_only_the_platforms_catalog_names_lands_on_nodes_with_its_product_label()
    {
        // X1000 is in no shipped catalog: the platform's gpuTypes map it to the product label GFD would put on its nodes.
        Assert.That(GpuCatalog.Default.Find(new GpuType("X1000")), Is.Null, "the shipped catalog must not know the type");
        var ns = await _plane.CreateNamespaceAsync("custom");
        var pool = await PoolAsync(ns, ("x1000", new GpuNodePreset("NVIDIA-X1000", 2, 196608)), ("h100", GpuNodePreset.H100.WithGpus(2)));

        await ApplyAsync(ns, Manifest("new-gpu", pool, "{type: X1000, count: 2}", replicas: 1));
        await ReadyConditionAsync(ns, "new-gpu", c => c.Status == "True", "new-gpu Ready");

        var pod = (await PodsAsync(ns, "new-gpu")).Single();
        Assert.That(pod.Spec.NodeName, Is.EqualTo($"{ns}-x1000"));
        var required = pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms.Single().MatchExpressions
            .Single(e => e.Key == GpuCatalog.ProductLabel);
        Assert.That(required.Values, Is.EqualTo(new[] { "NVIDIA-X1000" }));
        Assert.That((await GetAsync(ns, "new-gpu")).Status!.Gpu, Is.EqualTo("X1000"));
    }

    [Test]
    public async Task On_a_pool_with_no_spare_gpu_the_default_surge_waits_and_max_surge_0_rolls_one_pod_at_a_time()
    {
        var ns = await _plane.CreateNamespaceAsync("fullpool");
        var pool = await PoolAsync(ns, ("l4", GpuNodePreset.L4.WithGpus(2)));
        string Full(string image, string rollout) => Manifest("full", pool, "{type: L4}", replicas: 2, image: image) + $"\n  rollout: {rollout}\n";
        await ApplyAsync(ns, Full("example/llm:1", "{maxSurge: 1, maxUnavailable: 0}"));
        await ReadyConditionAsync(ns, "full", c => c.Reason == FunctionConditions.Reasons.PodsReady, "full ready");
        var before = (await PodsAsync(ns, "full")).Select(p => p.Metadata.Name).ToHashSet();

        // The default: a surge pod that finds no GPU, and both old pods serving on.
        await ApplyAsync(ns, Full("example/llm:2", "{maxSurge: 1, maxUnavailable: 0}"));
        await Eventually.HoldsAsync(async () => (await PodsAsync(ns, "full")).Any(p => p.Spec.Containers[0].Image == "example/llm:2"
            && p.Status?.Conditions?.Any(c => c.Type == "PodScheduled" && c.Reason == "Unschedulable") == true), Timeout, "the surge pod unschedulable");
        var stuck = await PodsAsync(ns, "full");
        Assert.That(stuck.Where(p => before.Contains(p.Metadata.Name) && p.Metadata.DeletionTimestamp is null && PodReadiness.IsReady(p)).Count(), Is.EqualTo(2),
            "no old pod taken away for a surge pod that cannot start");

        // Follow every pod change from here and keep the lowest ready count and the most pods holding GPUs at once.
        var pods = new ConcurrentDictionary<string, V1Pod>(stuck.ToDictionary(p => p.Metadata.Name));
        var minReady = int.MaxValue;
        var informer = new Informer<V1Pod>(ListWatch.ForPods(_client, $"{FunctionLabels.Function}=full", $"metadata.namespace={ns}"));
        informer.AddHandler(e =>
        {
            if (e.Type == WatchEventType.Deleted)
            {
                pods.TryRemove(e.Object.Metadata.Name, out _);
            }
            else
            {
                pods[e.Object.Metadata.Name] = e.Object;
            }

            InterlockedMin(ref minReady, pods.Values.Count(p => p.Metadata.DeletionTimestamp is null && PodReadiness.IsReady(p)));
        });
        using var watching = new CancellationTokenSource();
        var watch = informer.RunAsync(watching.Token);
        await informer.Synced;

        // No surge, one unavailable: an old pod goes, its GPU goes to a new one, then the next.
        await ApplyAsync(ns, Full("example/llm:2", "{maxSurge: 0, maxUnavailable: 1}"));
        await Eventually.HoldsAsync(async () =>
        {
            var now = await PodsAsync(ns, "full");
            return now.Count == 2 && now.All(p => p.Spec.Containers[0].Image == "example/llm:2" && PodReadiness.IsReady(p));
        }, Timeout, "two ready pods of the new image only");
        await watching.CancelAsync();
        await watch;

        Assert.That(minReady, Is.EqualTo(1), "one pod unavailable at a time, never two (and the watch saw the rollout)");
        Assert.That((await PodsAsync(ns, "full")).Select(p => p.Metadata.Name), Has.None.AnyOf(before.ToArray()));
    }

    [TestCase("{type: B200}", "spec.gpu.type: GPU type 'B200' is not in the platform's GPU catalog (known: A10, A100-40GB", TestName = "A type missing from the operator's catalog")]
    [TestCase("{type: H100, fallbacks: [L4, GB300]}", "spec.gpu.fallbacks[1]: GPU type 'GB300'", TestName = "A fallback missing from the operator's catalog")]
    [TestCase("{type: H100, fallbacks: [H100]}", "the requested type itself", TestName = "Fallbacks equal to the type")]
    public async Task An_invalid_spec_ends_in_a_clear_condition_without_pods_or_retries(string gpu, string expected)
    {
        var ns = await _plane.CreateNamespaceAsync("invalid");
        await ApplyAsync(ns, Manifest("bad", ns, gpu, replicas: 1));

        var ready = await ReadyConditionAsync(ns, "bad", c => c.Reason == FunctionConditions.Reasons.InvalidSpec, "InvalidSpec");
        Assert.That(ready.Status, Is.EqualTo("False"));
        Assert.That(ready.Message, Does.Contain(expected));
        if (expected.Contains("GPU catalog", StringComparison.Ordinal))
        {
            Assert.That(ready.Message, Does.Contain(string.Join(", ", SharedOperator.Catalog.Names)), "every known type listed");
        }

        var fn = await GetAsync(ns, "bad");
        Assert.That(fn.Status!.Conditions, Has.Some.Matches<V1Condition>(c => c!.Type == FunctionConditions.Stalled && c.Status == "True"));
        Assert.That(await PodsAsync(ns, "bad"), Is.Empty);

        // The operator carries on: a valid function next to it is served.
        var pool = await PoolAsync(ns, ("t4", GpuNodePreset.T4));
        await ApplyAsync(ns, Manifest("good", pool, "{type: T4}", replicas: 1));
        await ReadyConditionAsync(ns, "good", c => c.Status == "True", "good Ready");
        Assert.That(_operator.IsCompleted, Is.False);
    }

    [Test]
    public async Task A_function_has_a_service_only_while_it_asks_for_one_made_with_its_first_pod_kept_at_zero_and_deleted_when_no_longer_asked()
    {
        var ns = await _plane.CreateNamespaceAsync("zero");
        var pool = await PoolAsync(ns, ("l4", GpuNodePreset.L4));

        // By default none, even with a pod: the Service is made before the pods, so a function serving without one
        // was never going to get one.
        await ApplyAsync(ns, Manifest("plain", pool, "{type: L4}", replicas: 1));
        await ReadyConditionAsync(ns, "plain", c => c.Reason == FunctionConditions.Reasons.PodsReady, "plain serving");
        Assert.That((await _client.CoreV1.ListNamespacedServiceAsync(ns)).Items, Is.Empty, "no Service for a function that did not ask for one");

        await ApplyAsync(ns, Manifest("idle", pool, "{type: L4}", replicas: 0, clusterService: true));
        var ready = await ReadyConditionAsync(ns, "idle", c => c.Status == "True", "idle Ready");
        Assert.That(ready.Reason, Is.EqualTo(FunctionConditions.Reasons.ScaledToZero));
        Assert.That(await PodsAsync(ns, "idle"), Is.Empty);
        Assert.That((await _client.CoreV1.ListNamespacedServiceAsync(ns)).Items, Is.Empty, "no Service (no ClusterIP, no Endpoints) for a function that never ran");
        Assert.That(await ReadyConditionAsync(ns, "idle", c => true, "idle ServiceReady", FunctionConditions.ServiceReady),
            Has.Property(nameof(V1Condition.Reason)).EqualTo(FunctionConditions.Reasons.WaitingForFirstPod).And.Property(nameof(V1Condition.Status)).EqualTo("False"));
        Assert.That((await GetAsync(ns, "plain")).Status!.Conditions!.Select(c => c.Type), Has.None.EqualTo(FunctionConditions.ServiceReady),
            "no ServiceReady condition for a function that asks for no Service");

        await ApplyAsync(ns, Manifest("idle", pool, "{type: L4}", replicas: 1, clusterService: true));
        await ReadyConditionAsync(ns, "idle", c => c.Reason == FunctionConditions.Reasons.PodsReady, "idle scaled up");
        var service = await _client.CoreV1.ReadNamespacedServiceAsync("idle", ns);
        await ReadyConditionAsync(ns, "idle", c => c is { Status: "True", Reason: FunctionConditions.Reasons.ServiceOwned }, "idle ServiceReady", FunctionConditions.ServiceReady);
        Assert.That(service.Spec.Selector[FunctionLabels.Function], Is.EqualTo("idle"));
        Assert.That(service.Metadata.OwnerReferences.Single(o => o.Controller == true).Name, Is.EqualTo("idle"));

        await ApplyAsync(ns, Manifest("idle", pool, "{type: L4}", replicas: 0, clusterService: true));
        await ReadyConditionAsync(ns, "idle", c => c.Reason == FunctionConditions.Reasons.ScaledToZero, "idle back at zero");
        await Eventually.HoldsAsync(async () => (await PodsAsync(ns, "idle")).Count == 0, Timeout, "the pod gone");
        var kept = await _client.CoreV1.ReadNamespacedServiceAsync("idle", ns);
        Assert.That(kept.Metadata.Uid, Is.EqualTo(service.Metadata.Uid), "the same Service kept at zero");
        Assert.That(kept.Spec.ClusterIP, Is.EqualTo(service.Spec.ClusterIP));

        // No longer asked for: deleted, said so, and the function's own Service only (a tenant's of another name stays).
        (await _kubectl.ApplyAsync($"""
            apiVersion: v1
            kind: Service
            metadata:
              name: mine
            spec:
              selector:
                {FunctionLabels.Function}: idle
              ports:
              - port: 80
            """, ns)).EnsureSuccess();
        await ApplyAsync(ns, Manifest("idle", pool, "{type: L4}", replicas: 0));
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedServiceAsync(ns)).Items.Select(s => s.Metadata.Name).SequenceEqual(["mine"]),
            Timeout, "the function's Service deleted, the tenant's kept");
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=idle")).Items
            .Any(e => e.Reason == "DeletedService" && e.Type == "Normal"), Timeout, "a DeletedService Event for idle");
    }

    [Test]
    public async Task A_tenants_service_under_the_functions_name_is_left_alone_and_said_while_the_function_serves_then_replaced_once_gone()
    {
        var ns = await _plane.CreateNamespaceAsync("taken");
        var pool = await PoolAsync(ns, ("l4", GpuNodePreset.L4));
        (await _kubectl.ApplyAsync("""
            apiVersion: v1
            kind: Service
            metadata:
              name: clash
            spec:
              selector: {app: theirs}
              ports:
              - port: 8080
            """, ns)).EnsureSuccess();
        var theirs = await _client.CoreV1.ReadNamespacedServiceAsync("clash", ns);

        // The function asks for a Service of a name that is taken: it serves anyway (through the gateway), and says why it has none.
        await ApplyAsync(ns, Manifest("clash", pool, "{type: L4}", replicas: 1, clusterService: true));
        await ReadyConditionAsync(ns, "clash", c => c.Reason == FunctionConditions.Reasons.PodsReady, "clash serving");
        var condition = await ReadyConditionAsync(ns, "clash", c => c.Reason == FunctionConditions.Reasons.ServiceNotOwned, "ServiceNotOwned",
            FunctionConditions.ServiceReady);
        Assert.That(condition.Status, Is.EqualTo("False"));
        Assert.That(condition.Message, Does.Contain("clash").And.Contain("spec.clusterService"));
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=clash")).Items
            .Any(e => e is { Reason: FunctionConditions.Reasons.ServiceNotOwned, Type: "Warning", InvolvedObject.Kind: GpuFunction.KindName }),
            Timeout, "a ServiceNotOwned Warning Event");
        var left = await _client.CoreV1.ReadNamespacedServiceAsync("clash", ns);
        Assert.That(left.Metadata.ResourceVersion, Is.EqualTo(theirs.Metadata.ResourceVersion), "the tenant's Service untouched");
        Assert.That(left.Metadata.OwnerReferences, Is.Null.Or.Empty);

        // Gone: the function looks again on its own (nothing watches the tenant's Service) and makes its own.
        try
        {
            await _client.CoreV1.DeleteNamespacedServiceAsync("clash", ns);
        }
        catch (System.Text.Json.JsonException)
        {
            // Deleted: this API server answers a Service's deletion with a Status, which the client cannot read as a Service.
        }

        await Eventually.HoldsAsync(async () =>
        {
            var fn = await GetAsync(ns, "clash");
            return fn.Status?.Conditions?.FirstOrDefault(c => c.Type == FunctionConditions.ServiceReady) is { Status: "True", Reason: FunctionConditions.Reasons.ServiceOwned };
        }, Timeout + TimeSpan.FromSeconds(30), "ServiceReady once the name is free");
        var own = await _client.CoreV1.ReadNamespacedServiceAsync("clash", ns);
        Assert.That(own.Metadata.OwnerReferences.Single(o => o.Controller == true).Uid, Is.EqualTo((await GetAsync(ns, "clash")).Metadata.Uid));
        Assert.That(own.Spec.Selector[FunctionLabels.Function], Is.EqualTo("clash"));
    }

    private static void InterlockedMin(ref int target, int value)
    {
        int current;
        while (value < (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
