using System.Net;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The pre-warm controller on the real control plane: warm pods claimed with no
/// pod created on the request path, placeholders preempted by the real
/// scheduler, pre-pull pods only on matching GPU nodes, warm capacity ahead of
/// a scheduled tick.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class PrewarmTests
{
    private const string PoolLabel = "pilotlight.dev/test-pool";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private ControlPlane _plane = null!;
    private string _gateway = "";
    private IKubernetes _client = null!;
    private Kubectl _kubectl = null!;
    private NodeSimulator _sim = null!;
    private HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        var shared = await SharedOperator.GetAsync();
        _plane = shared.Plane;
        _gateway = shared.GatewayUrl;
        _client = _plane.CreateClient();
        _kubectl = new Kubectl(_plane.KubeconfigPath);
        _sim = new NodeSimulator(_client, new NodeSimulatorOptions
        {
            PodNetwork = 8,
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(_plane.Directory, "pods")),
        });
        await _sim.StartAsync();
        _http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        _http.Dispose();
        await _sim.DeleteNodesAsync();
        await _sim.DisposeAsync();
        _client.Dispose();
    }

    private static string Manifest(string name, string pool, string prewarm, int minReplicas = 0, string gpu = "{type: L4}", string extra = "") => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata: {name: {{name}}}
        spec:
          image: example/model-server:1
          env:
            - {name: LOAD_SECONDS, value: "2"}
          gpu: {{gpu}}
          scaling: {minReplicas: {{minReplicas}}, maxReplicas: 3, scaledownWindow: 5s}
          prewarm: {{prewarm}}
          nodeSelector: {{{PoolLabel}}: {{pool}}}
        {{extra}}
        """;

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        _client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<List<V1Pod>> PodsAsync(string ns, string selector) =>
        [.. (await _client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: selector)).Items];

    private static V1Condition? Condition(GpuFunction f, string type) => f.Status?.Conditions?.FirstOrDefault(c => c.Type == type);

    private async Task<string> PoolAsync(string prefix, params GpuNodePreset[] presets)
    {
        var pool = $"{prefix}-{Guid.NewGuid():N}"[..12];
        for (var i = 0; i < presets.Length; i++)
        {
            await _sim.AddNodeAsync($"{pool}-{i}", presets[i], new Dictionary<string, string> { [PoolLabel] = pool });
        }

        return pool;
    }

    [Test]
    public async Task A_request_claims_a_warm_pod_without_creating_one_and_the_pool_refills()
    {
        var pool = await PoolAsync("warm", GpuNodePreset.L4);
        var ns = await _plane.CreateNamespaceAsync("warm");
        (await _kubectl.ApplyAsync(Manifest("claim", pool, "{warmReplicas: 1, keepWarmFor: 0s}"), ns)).EnsureSuccess();

        var standby = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "claim");
            var pods = await PodsAsync(ns, $"{FunctionLabels.Function}=claim");
            return f.Status?.WarmReplicas == 1 && Condition(f, FunctionConditions.Warm)?.Reason == FunctionConditions.Reasons.PoolReady && pods.Count == 1
                ? pods[0] : null;
        }, Timeout, "one ready warm pod, nothing serving");
        Assert.That(standby.Metadata.Labels[FunctionLabels.Role], Is.EqualTo(FunctionLabels.RoleWarm));

        using var response = await _http.PostAsync($"{_gateway}/{ns}/claim/predict", new StringContent("hello"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(body, Does.Contain(standby.Metadata.Name), "served by the warm pod that was waiting, not a new one");

        var claimed = await _client.CoreV1.ReadNamespacedPodAsync(standby.Metadata.Name, ns);
        Assert.That(claimed.Metadata.Labels[FunctionLabels.Role], Is.EqualTo(FunctionLabels.RoleServing));

        // The pool is back to size with a new pod.
        await Eventually.HoldsAsync(async () =>
        {
            var f = await GetAsync(ns, "claim");
            var warm = await PodsAsync(ns, $"{FunctionLabels.Function}=claim,{FunctionLabels.Role}={FunctionLabels.RoleWarm}");
            return f.Status?.WarmReplicas == 1 && warm.Count == 1 && warm[0].Metadata.Name != standby.Metadata.Name;
        }, Timeout, "the pool refilled");

        var events = await _client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "reason=ClaimedWarmPods");
        Assert.That(events.Items, Is.Not.Empty, "the claim is told as an Event");
    }

    [Test]
    public async Task A_function_pod_preempts_a_placeholder_which_returns_when_capacity_frees()
    {
        // One node with exactly one replica's GPUs: the placeholder and the function pod cannot both fit.
        var pool = await PoolAsync("reserve", GpuNodePreset.L4.WithGpus(2));
        var ns = await _plane.CreateNamespaceAsync("reserve");
        string Apply(int min) => Manifest("held", pool, "{reservedReplicas: 1}", minReplicas: min, gpu: "{type: L4, count: 2}");
        (await _kubectl.ApplyAsync(Apply(0), ns)).EnsureSuccess();

        var placeholder = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "held");
            var held = await PodsAsync(ns, $"{FunctionLabels.ReservationFor}=held");
            return Condition(f, FunctionConditions.Reserved)?.Reason == FunctionConditions.Reasons.ReservationsHeld && held.Count == 1 ? held[0] : null;
        }, Timeout, "the placeholder holds the node's GPUs");
        Assert.That(placeholder.Spec.PriorityClassName, Is.EqualTo("pilotlight-reservation"));
        Assert.That(placeholder.Spec.Priority, Is.LessThan(0));

        // A replica is wanted: the scheduler preempts the placeholder for it.
        (await _kubectl.ApplyAsync(Apply(1), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
        {
            var serving = await PodsAsync(ns, $"{FunctionLabels.Function}=held");
            var held = await PodsAsync(ns, $"{FunctionLabels.ReservationFor}=held");
            return serving.Count == 1 && serving[0].Status?.Phase == "Running"
                && held.All(p => p.Metadata.Uid != placeholder.Metadata.Uid)
                && held.Count == 1 && string.IsNullOrEmpty(held[0].Spec.NodeName);
        }, Timeout, "the function pod runs where the placeholder was; a new placeholder waits for capacity");
        var pending = await GetAsync(ns, "held");
        Assert.That(Condition(pending, FunctionConditions.Reserved)?.Reason, Is.EqualTo(FunctionConditions.Reasons.ReservationsPending).Or.EqualTo(FunctionConditions.Reasons.ReservationsHeld));

        // Capacity frees: the placeholder is scheduled again.
        (await _kubectl.ApplyAsync(Apply(0), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
        {
            var f = await GetAsync(ns, "held");
            var held = await PodsAsync(ns, $"{FunctionLabels.ReservationFor}=held");
            return Condition(f, FunctionConditions.Reserved)?.Reason == FunctionConditions.Reasons.ReservationsHeld
                && held.Count == 1 && held[0].Status?.Phase == "Running" && f.Status?.ReservedReplicas == 1;
        }, Timeout, "the reservation is back once the function pod left");
    }

    [Test]
    public async Task Pre_pull_pods_land_only_on_nodes_with_a_matching_gpu()
    {
        var pool = await PoolAsync("pull", GpuNodePreset.H100, GpuNodePreset.L4, GpuNodePreset.H100);
        var ns = await _plane.CreateNamespaceAsync("pull");
        (await _kubectl.ApplyAsync(Manifest("pulled", pool, "{prePull: true}", gpu: "{type: H100}"), ns)).EnsureSuccess();

        var f = await Eventually.GetAsync(async () =>
        {
            var fn = await GetAsync(ns, "pulled");
            return Condition(fn, FunctionConditions.PrePulled)?.Reason == FunctionConditions.Reasons.ImagePresent ? fn : null;
        }, Timeout, "the image is on every eligible node");

        var pullers = await PodsAsync(ns, $"{FunctionLabels.PrePullFor}=pulled");
        Assert.That(pullers.Select(p => p.Spec.NodeName), Is.EquivalentTo(new[] { $"{pool}-0", $"{pool}-2" }), "H100 nodes only");
        Assert.That(pullers.SelectMany(p => p.Spec.Containers).Select(c => c.Image), Is.All.EqualTo("example/model-server:1"));
        Assert.That(pullers.SelectMany(p => p.Spec.Containers).All(c => c.Resources.Limits?.ContainsKey("nvidia.com/gpu") != true), "pulling holds no GPU");
        Assert.That((f.Status!.PrePulledNodes, f.Status.PrePullEligibleNodes), Is.EqualTo((2, 2)));
        Assert.That(await PodsAsync(ns, $"{FunctionLabels.Function}=pulled"), Is.Empty, "pre-pull starts no replica");

        // A new image is pulled by the same DaemonSet, its template patched; turning pre-pull off removes it.
        (await _kubectl.ApplyAsync(Manifest("pulled", pool, "{prePull: true}", gpu: "{type: H100}").Replace("example/model-server:1", "example/model-server:2"), ns))
            .EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
            (await _client.AppsV1.ReadNamespacedDaemonSetAsync("pulled-prepull", ns)).Spec.Template.Spec.Containers[0].Image == "example/model-server:2",
            Timeout, "the pre-pull DaemonSet pulls the new image");
        (await _kubectl.ApplyAsync(Manifest("pulled", pool, "{prePull: false}", gpu: "{type: H100}").Replace("example/model-server:1", "example/model-server:2"), ns))
            .EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await _client.AppsV1.ListNamespacedDaemonSetAsync(ns)).Items.Count == 0, Timeout, "the pre-pull DaemonSet is gone");
    }

    [Test]
    public async Task A_scheduled_function_has_a_warm_pod_before_its_tick()
    {
        var pool = await PoolAsync("cron", GpuNodePreset.L4);
        var ns = await _plane.CreateNamespaceAsync("cron");

        // The next minute boundary at least 70 s away, warmed 45 s ahead: the window opens during the test.
        var now = DateTimeOffset.UtcNow;
        var tick = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, 0, TimeSpan.Zero).AddMinutes(1);
        while (tick - now < TimeSpan.FromSeconds(70))
        {
            tick = tick.AddMinutes(1);
        }

        var lead = TimeSpan.FromSeconds(45);
        var schedule = $"  schedule: {{cron: \"{tick.Minute} {tick.Hour} * * *\", timeZone: UTC}}";
        (await _kubectl.ApplyAsync(Manifest("cron", pool, "{leadTime: 45s, keepWarmFor: 0s}", extra: schedule), ns)).EnsureSuccess();

        var before = await Eventually.GetAsync(async () =>
        {
            var fn = await GetAsync(ns, "cron");
            return Condition(fn, FunctionConditions.Warm) is { } c ? c : null;
        }, Timeout, "the Warm condition is reported");
        Assert.That(before.Reason, Is.EqualTo(FunctionConditions.Reasons.NoneWanted), "nothing warm before the lead window");
        Assert.That(await PodsAsync(ns, $"{FunctionLabels.Function}=cron"), Is.Empty);

        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "cron")).Status?.WarmReplicas == 1, tick - DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30),
            "a warm pod is ready");
        var readyAt = DateTimeOffset.UtcNow;
        Assert.That(readyAt, Is.LessThan(tick), "ready before the tick");
        Assert.That(readyAt, Is.GreaterThan(tick - lead - TimeSpan.FromSeconds(1)), "not before the lead window");
    }

    [Test]
    public async Task A_namespace_quota_bounds_the_pool_and_says_so()
    {
        var pool = await PoolAsync("quota", GpuNodePreset.L4);
        var ns = await _plane.CreateNamespaceAsync("quota");
        await _client.CoreV1.CreateNamespacedResourceQuotaAsync(new V1ResourceQuota
        {
            Metadata = new V1ObjectMeta { Name = "pods" },
            Spec = new V1ResourceQuotaSpec { Hard = new Dictionary<string, ResourceQuantity> { ["pods"] = new("1") } },
        }, ns);
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ReadNamespacedResourceQuotaAsync("pods", ns)).Status?.Hard is not null,
            Timeout, "the quota controller has counted the namespace");

        (await _kubectl.ApplyAsync(Manifest("bounded", pool, "{warmReplicas: 2}"), ns)).EnsureSuccess();

        var condition = await Eventually.GetAsync(async () =>
            Condition(await GetAsync(ns, "bounded"), FunctionConditions.Warm) is { Reason: FunctionConditions.Reasons.QuotaExceeded } c ? c : null,
            Timeout, "the Warm condition names the quota");
        Assert.That(condition.Status, Is.EqualTo("False"));
        Assert.That(condition.Message, Does.Contain("exceeded quota"));
        Assert.That(await PodsAsync(ns, $"{FunctionLabels.Function}=bounded"), Has.Count.EqualTo(1), "one warm pod fits; the operator did not crash");
    }
}
