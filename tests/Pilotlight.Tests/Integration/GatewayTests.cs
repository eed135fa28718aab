using System.Net;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Scale to zero and back through the gateway, end to end: the shared
/// operator and gateway, simulated nodes whose function pods run the real
/// runtime shim and the sample model server on loopback IPs.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class GatewayTests
{
    private const string PoolLabel = "pilotlight.dev/test-pool";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private ControlPlane _plane = null!;
    private Kubernetes _client = null!;
    private NodeSimulator _sim = null!;
    private Kubectl _kubectl = null!;
    private HttpClient _http = null!;
    private string _gateway = "";
    private string _pool = "";

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
            PodNetwork = 5,
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(_plane.Directory, "pods")),
        });
        await _sim.StartAsync();
        _pool = $"gw-{Guid.NewGuid():N}"[..10];
        await _sim.AddNodeAsync($"{_pool}-l4", GpuNodePreset.L4, new Dictionary<string, string> { [PoolLabel] = _pool });
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

    private string Manifest(string name, int maxConcurrency = 2, string timeout = "30s", int computeMs = 20, string startupTimeout = "1m",
        string gpu = "{type: L4}", string pool = "") => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          env:
            - {"{"}name: LOAD_SECONDS, value: "1"{"}"}
            - {"{"}name: COMPUTE_MS, value: "{computeMs}"{"}"}
          gpu: {gpu}
          scaling:
            minReplicas: 0
            maxReplicas: 2
            maxConcurrency: {maxConcurrency}
            scaledownWindow: 5s
          timeout: {timeout}
          startupTimeout: {startupTimeout}
          nodeSelector:
            {PoolLabel}: {(pool == "" ? _pool : pool)}
        """;

    private async Task<string> DeployAsync(string name, string manifest)
    {
        var ns = await _plane.CreateNamespaceAsync(name);
        (await _kubectl.ApplyAsync(manifest, ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.Conditions?.Any(c => c.Type == "Ready") == true,
            Timeout, $"{name} has status");
        return ns;
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        _client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<int> PodCountAsync(string ns, string name) =>
        (await _client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items.Count;

    [Test]
    public async Task A_request_to_a_function_at_zero_is_held_until_a_pod_is_ready_then_it_scales_back_to_zero()
    {
        var ns = await DeployAsync("wake", Manifest("wake"));
        Assert.That(await PodCountAsync(ns, "wake"), Is.Zero, "nothing runs before the first request");

        // Ten at once: every one is held, then answered, and marked cold.
        var colds = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            _http.PostAsync($"{_gateway}/{ns}/wake/predict?x={i}", new StringContent($"ping {i}"))));
        for (var i = 0; i < colds.Length; i++)
        {
            using var cold = colds[i];
            Assert.That(cold.StatusCode, Is.EqualTo(HttpStatusCode.OK), await cold.Content.ReadAsStringAsync());
            Assert.That(cold.Headers.GetValues("X-Pilotlight-Cold-Start"), Is.EqualTo(new[] { "true" }));
            Assert.That(await cold.Content.ReadAsStringAsync(), Does.Contain($"ping {i}"));
        }

        using (var warm = await _http.PostAsync($"{_gateway}/{ns}/wake/predict", new StringContent("again")))
        {
            Assert.That(warm.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(warm.Headers.GetValues("X-Pilotlight-Cold-Start"), Is.EqualTo(new[] { "false" }));
        }

        // A new gateway learns the ready pods from its watch and serves warm, without the operator.
        await using (var fresh = GatewayApp.Build(_client, $"http://127.0.0.1:{ControlPlane.FreePort()}", registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { }))
        {
            await fresh.StartAsync();
            var url = fresh.Urls.First();
            await Eventually.HoldsAsync(async () => (await _http.GetAsync($"{url}/readyz")).IsSuccessStatusCode, Timeout, "fresh gateway synced");
            using var viaFresh = await _http.PostAsync($"{url}/{ns}/wake/predict", new StringContent("fresh"));
            Assert.That(viaFresh.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(viaFresh.Headers.GetValues("X-Pilotlight-Cold-Start"), Is.EqualTo(new[] { "false" }));
            await fresh.StopAsync();
        }

        var fn = await GetAsync(ns, "wake");
        Assert.That(fn.Status!.LastRequestTime, Is.Not.Null);

        // scaledownWindow 5s without a request: back to zero, pods gone.
        await Eventually.HoldsAsync(async () =>
        {
            var now = await GetAsync(ns, "wake");
            return now.Status?.DesiredReplicas == 0 && await PodCountAsync(ns, "wake") == 0;
        }, Timeout, "scaled back to zero");
        var idle = await GetAsync(ns, "wake");
        Assert.That(idle.Status!.Conditions!.Single(c => c.Type == "Ready").Reason, Is.EqualTo(FunctionConditions.Reasons.ScaledToZero));
    }

    [Test]
    public async Task A_burst_scales_up_to_load_over_target_and_max_replicas_holds()
    {
        // maxConcurrency 1 and 3 s per request: 4 concurrent requests want 4 pods; maxReplicas 3 caps them.
        var ns = await DeployAsync("burst", Manifest("burst", maxConcurrency: 1, computeMs: 3000).Replace("maxReplicas: 2", "maxReplicas: 3"));
        var burst = Enumerable.Range(0, 4).Select(i => _http.PostAsync($"{_gateway}/{ns}/burst/predict", new StringContent($"b{i}"))).ToList();

        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "burst")).Status?.DesiredReplicas == 3, Timeout, "scaled to maxReplicas");
        foreach (var response in await Task.WhenAll(burst))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            response.Dispose();
        }

        Assert.That(await PodCountAsync(ns, "burst"), Is.LessThanOrEqualTo(3));
    }

    [Test]
    public async Task When_a_pod_crashes_requests_go_to_the_other_pod_and_the_function_recovers()
    {
        var ns = await DeployAsync("crash", Manifest("crash").Replace("minReplicas: 0", "minReplicas: 2"));
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "crash")).Status?.ReadyReplicas == 2, Timeout, "two ready pods");
        var pods = (await _client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=crash")).Items;
        var victim = pods[0].Metadata.Name;
        Assert.That((await _http.PostAsync($"{_gateway}/{ns}/crash/predict", new StringContent("warm"))).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        Assert.That(_sim.CrashPod(ns, victim), Is.True);

        // The gateway still lists the dead pod until the watch says otherwise: refused connections go elsewhere.
        for (var i = 0; i < 20; i++)
        {
            using var response = await _http.PostAsync($"{_gateway}/{ns}/crash/predict", new StringContent($"after {i}"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
            Assert.That(await response.Content.ReadAsStringAsync(), Does.Not.Contain(victim));
        }

        await Eventually.HoldsAsync(async () =>
        {
            var pod = await _client.CoreV1.ReadNamespacedPodAsync(victim, ns);
            return pod.Status.ContainerStatuses.Any(c => c.RestartCount > 0) && FunctionStatusBuilder.IsReady(pod);
        }, Timeout, "the crashed pod restarted and is Ready again");
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "crash")).Status?.ReadyReplicas == 2, Timeout, "two ready pods again");
    }

    [Test]
    public async Task Scaling_down_never_kills_a_request_in_flight()
    {
        // maxConcurrency 1, 2 s per request: two concurrent requests bring a second pod;
        // then one request at a time keeps one pod busy while the other goes.
        var ns = await DeployAsync("drain", Manifest("drain", maxConcurrency: 1, computeMs: 2000));
        var pairTask = Task.WhenAll(Enumerable.Range(0, 2).Select(i => _http.PostAsync($"{_gateway}/{ns}/drain/predict", new StringContent($"p{i}"))));
        await Eventually.HoldsAsync(async () => await PodCountAsync(ns, "drain") == 2, Timeout, "two pods for two concurrent requests");
        Assert.That((await pairTask).Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.OK));

        var statuses = new List<HttpStatusCode>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
        while (DateTime.UtcNow < deadline && ((await GetAsync(ns, "drain")).Status?.Replicas != 1 || statuses.Count < 3))
        {
            using var response = await _http.PostAsync($"{_gateway}/{ns}/drain/predict", new StringContent("one at a time"));
            statuses.Add(response.StatusCode);
        }

        Assert.That((await GetAsync(ns, "drain")).Status?.Replicas, Is.EqualTo(1), "scaled down to the steady load of one");
        Assert.That(statuses, Is.All.EqualTo(HttpStatusCode.OK), "no request was lost while a pod went away");
    }

    [Test]
    public async Task Unknown_functions_get_404()
    {
        using var response = await _http.GetAsync($"{_gateway}/nowhere/nothing/predict");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_request_past_the_functions_timeout_gets_504()
    {
        var ns = await DeployAsync("slow", Manifest("slow", timeout: "2s", computeMs: 10000));
        using var response = await _http.PostAsync($"{_gateway}/{ns}/slow/predict", new StringContent("x"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("timeout"));
    }

    [Test]
    public async Task Requests_past_the_queue_bound_get_503_and_held_ones_504_after_the_startup_timeout()
    {
        // Nothing can schedule (no H100 in the pool), so requests are held.
        var ns = await DeployAsync("stuck", Manifest("stuck", gpu: "{type: H100}", startupTimeout: "3s"));
        await using var small = GatewayApp.Build(_client, $"http://127.0.0.1:{ControlPlane.FreePort()}", new GatewayOptions { QueueLimit = 2 },
            Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await small.StartAsync();
        var url = small.Urls.First();
        await Eventually.HoldsAsync(async () => (await _http.GetAsync($"{url}/readyz")).IsSuccessStatusCode, Timeout, "small gateway synced");

        var held = Enumerable.Range(0, 2).Select(_ => _http.GetAsync($"{url}/{ns}/stuck/predict")).ToList();
        await Eventually.HoldsAsync(async () => (await _http.GetStringAsync($"{url}/metrics")).Contains(
            $"pilotlight_gateway_queue_depth{{namespace=\"{ns}\",function=\"stuck\"}} 2", StringComparison.Ordinal), Timeout, "two held");

        using (var rejected = await _http.GetAsync($"{url}/{ns}/stuck/predict"))
        {
            Assert.That(rejected.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(rejected.Headers.RetryAfter, Is.Not.Null);
        }

        foreach (var response in await Task.WhenAll(held))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
            Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("startupTimeout"));
            response.Dispose();
        }

        await small.StopAsync();
    }
}
