using System.Net;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Gateway;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Scale to zero and back through the gateway, end to end: the shared
/// operator and gateway, simulated nodes whose function pods run the real
/// runtime shim and the sample model server on loopback IPs.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class GatewayTests() : ServingFixture(5, "gw")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
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
            {PoolLabel}: {(pool == "" ? Pool : pool)}
        """;

    private async Task<string> DeployAsync(string name, string manifest)
    {
        var ns = await Plane.CreateNamespaceAsync(name);
        (await Kubectl.ApplyAsync(manifest, ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.Conditions?.Any(c => c.Type == "Ready") == true,
            Timeout, $"{name} has status");
        return ns;
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<int> PodCountAsync(string ns, string name) =>
        (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items.Count;

    [Test]
    public async Task A_request_to_a_function_at_zero_is_held_until_a_pod_is_ready_then_it_scales_back_to_zero()
    {
        var ns = await DeployAsync("wake", Manifest("wake"));
        Assert.That(await PodCountAsync(ns, "wake"), Is.Zero, "nothing runs before the first request");

        // Ten at once: every one is held, then answered, and marked cold.
        var colds = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            Http.PostAsync($"{GatewayUrl}/{ns}/wake/predict?x={i}", new StringContent($"ping {i}"))));
        for (var i = 0; i < colds.Length; i++)
        {
            using var cold = colds[i];
            Assert.That(cold.StatusCode, Is.EqualTo(HttpStatusCode.OK), await cold.Content.ReadAsStringAsync());
            Assert.That(cold.Headers.GetValues("X-Pilotlight-Cold-Start"), Is.EqualTo(new[] { "true" }));
            Assert.That(await cold.Content.ReadAsStringAsync(), Does.Contain($"ping {i}"));
        }

        using (var warm = await Http.PostAsync($"{GatewayUrl}/{ns}/wake/predict", new StringContent("again")))
        {
            Assert.That(warm.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(warm.Headers.GetValues("X-Pilotlight-Cold-Start"), Is.EqualTo(new[] { "false" }));
        }

        // A new gateway learns the ready pods from its watch and serves warm, without the operator.
        await using (var fresh = GatewayApp.Build(Client, $"http://127.0.0.1:{ControlPlane.FreePort()}", registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { }))
        {
            await fresh.StartAsync();
            var url = fresh.Urls.First();
            await Eventually.HoldsAsync(async () => (await Http.GetAsync($"{url}/readyz")).IsSuccessStatusCode, Timeout, "fresh gateway synced");
            using var viaFresh = await Http.PostAsync($"{url}/{ns}/wake/predict", new StringContent("fresh"));
            Assert.That(viaFresh.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(viaFresh.Headers.GetValues("X-Pilotlight-Cold-Start"), Is.EqualTo(new[] { "false" }));
            await fresh.StopAsync();
        }

        var fn = await GetAsync(ns, "wake");
        Assert.That(fn.Status!.LastRequestTime, Is.Not.Null);

        // scaledownWindow 5s without a request: back to zero, pods gone.
        // The status says so once the reconcile after the last pod's deletion has written it.
        await Eventually.HoldsAsync(async () =>
        {
            var now = await GetAsync(ns, "wake");
            return now.Status?.DesiredReplicas == 0 && await PodCountAsync(ns, "wake") == 0
                && now.Status.Conditions?.SingleOrDefault(c => c.Type == "Ready")?.Reason == FunctionConditions.Reasons.ScaledToZero;
        }, Timeout, "scaled back to zero, and the status says so");
    }

    [Test]
    public async Task A_wake_from_zero_is_one_cold_start_in_status_and_requests_served_warm_add_none()
    {
        var ns = await DeployAsync("coldcount", Manifest("coldcount").Replace("scaledownWindow: 5s", "scaledownWindow: 60s", StringComparison.Ordinal));
        Assert.That((await GetAsync(ns, "coldcount")).Status!.ColdStarts, Is.Zero);

        using (var cold = await Http.PostAsync($"{GatewayUrl}/{ns}/coldcount/predict", new StringContent("wake")))
        {
            Assert.That(cold.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(cold.Headers.GetValues(InvocationProxy.StartHeader), Is.EqualTo(new[] { "cold" }));
        }

        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "coldcount")).Status?.ColdStarts == 1, Timeout, "status.coldStarts counts the wake");
        var counted = (await GetAsync(ns, "coldcount")).Status!;
        Assert.That(counted.ColdStartSources?.Select(s => s.Count), Is.EqualTo(new[] { 1L }), "one gateway process, its one cold start taken");

        // Requests to the warm pod until status shows one arrived after the wake: a status write that took the
        // gateways' counts again after they were served. Each touch of an annotation brings a reconcile (a request
        // alone writes no status). Every request was served at once, and the count stays.
        var wokenAt = counted.LastRequestTime;
        var starts = new List<string>();
        var touch = 0;
        await Eventually.HoldsAsync(async () =>
        {
            using (var warm = await Http.PostAsync($"{GatewayUrl}/{ns}/coldcount/predict", new StringContent("again")))
            {
                starts.Add(string.Join(",", warm.Headers.GetValues(InvocationProxy.StartHeader)));
            }

            var patch = new System.Text.Json.Nodes.JsonObject
            {
                ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["annotations"] = new System.Text.Json.Nodes.JsonObject { ["test.pilotlight.dev/touch"] = $"{++touch}" } },
            }.ToJsonString();
            await Client.CustomObjects.PatchNamespacedCustomObjectAsync(new k8s.Models.V1Patch(patch, k8s.Models.V1Patch.PatchType.MergePatch),
                Group.Name, Group.Version, ns, "gpufunctions", "coldcount");
            var last = (await GetAsync(ns, "coldcount")).Status?.LastRequestTime;
            return wokenAt is null ? last is not null : last > wokenAt;
        }, Timeout, "status shows a request after the wake");
        Assert.That(starts, Is.Not.Empty.And.All.EqualTo("ready"));
        Assert.That((await GetAsync(ns, "coldcount")).Status!.ColdStarts, Is.EqualTo(1), "requests served by a ready pod are no cold starts");
    }

    [Test]
    public async Task A_burst_scales_up_to_load_over_target_and_max_replicas_holds()
    {
        // maxConcurrency 1 and 3 s per request: 4 concurrent requests want 4 pods; maxReplicas 3 caps them.
        var ns = await DeployAsync("burst", Manifest("burst", maxConcurrency: 1, computeMs: 3000).Replace("maxReplicas: 2", "maxReplicas: 3"));
        var burst = Enumerable.Range(0, 4).Select(i => Http.PostAsync($"{GatewayUrl}/{ns}/burst/predict", new StringContent($"b{i}"))).ToList();

        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "burst")).Status?.DesiredReplicas == 3, Timeout, "scaled to maxReplicas");
        foreach (var response in await Task.WhenAll(burst))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            response.Dispose();
        }

        Assert.That(await PodCountAsync(ns, "burst"), Is.LessThanOrEqualTo(3));
    }

    /// <summary>Requests the gateway holds for a function now, from its queue-depth gauge.</summary>
    private async Task<int> HeldAsync(string gateway, string ns, string name)
    {
        var prefix = $"pilotlight_gateway_queue_depth{{namespace=\"{ns}\",function=\"{name}\"}} ";
        var line = (await Http.GetStringAsync($"{gateway}/metrics")).Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? 0 : (int)double.Parse(line[prefix.Length..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Test]
    public async Task Two_hundred_requests_held_at_zero_are_served_in_arrival_order()
    {
        // The function's pool has no node until all 200 wait: each is sent once the one before it is held.
        const int Requests = 200;
        var pool = $"fifo-{Guid.NewGuid():N}"[..12];
        var ns = await DeployAsync("fifo", Manifest("fifo", maxConcurrency: 1, computeMs: 5, startupTimeout: "5m", pool: pool)
            .Replace("maxReplicas: 2", "maxReplicas: 1"));
        async Task<(HttpStatusCode Status, string Body)> SendAsync(int n)
        {
            using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/fifo/predict?ms=5", new StringContent($"seq {n}"));
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var sent = new List<Task<(HttpStatusCode Status, string Body)>>();
        for (var n = 0; n < Requests; n++)
        {
            sent.Add(SendAsync(n));
            var held = n + 1;
            await Eventually.GetAsync(async () => await HeldAsync(GatewayUrl, ns, "fifo") >= held ? new object() : null, Timeout,
                $"request {n} held", TimeSpan.FromMilliseconds(5));
        }

        Assert.That(await HeldAsync(GatewayUrl, ns, "fifo"), Is.EqualTo(Requests));
        await Sim.AddNodeAsync($"{pool}-l4", GpuNodePreset.L4, new Dictionary<string, string> { [PoolLabel] = pool });

        var answers = await Task.WhenAll(sent).WaitAsync(TimeSpan.FromMinutes(2));
        for (var n = 0; n < Requests; n++)
        {
            Assert.That(answers[n].Status, Is.EqualTo(HttpStatusCode.OK), answers[n].Body);
            Assert.That(answers[n].Body, Does.Contain($"seq {n}\""));
        }

        // maxConcurrency 1 on one pod: the server began them one by one, in the order they arrived. (Read at the
        // server: the order the client's continuations ran in says less on a loaded machine.)
        var began = answers.Select(a => System.Text.Json.JsonDocument.Parse(a.Body).RootElement.GetProperty("started").GetInt32()).ToList();
        Assert.That(began, Is.Ordered.Ascending.And.Unique, "served in the order they arrived");
    }

    [Test]
    public async Task When_a_pod_crashes_requests_go_to_the_other_pod_and_the_function_recovers()
    {
        var ns = await DeployAsync("crash", Manifest("crash").Replace("minReplicas: 0", "minReplicas: 2"));
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "crash")).Status?.ReadyReplicas == 2, Timeout, "two ready pods");
        var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=crash")).Items;
        var victim = pods[0].Metadata.Name;
        Assert.That((await Http.PostAsync($"{GatewayUrl}/{ns}/crash/predict", new StringContent("warm"))).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        Assert.That(Sim.CrashPod(ns, victim), Is.True);

        // The gateway still lists the dead pod until the watch says otherwise: refused connections go elsewhere.
        for (var i = 0; i < 20; i++)
        {
            using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/crash/predict", new StringContent($"after {i}"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
            Assert.That(await response.Content.ReadAsStringAsync(), Does.Not.Contain(victim));
        }

        await Eventually.HoldsAsync(async () =>
        {
            var pod = await Client.CoreV1.ReadNamespacedPodAsync(victim, ns);
            return pod.Status.ContainerStatuses.Any(c => c.RestartCount > 0) && PodReadiness.IsReady(pod);
        }, Timeout, "the crashed pod restarted and is Ready again");
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "crash")).Status?.ReadyReplicas == 2, Timeout, "two ready pods again");
    }

    [Test]
    public async Task Scaling_down_never_kills_a_request_in_flight()
    {
        // maxConcurrency 1, 2 s per request: two concurrent requests bring a second pod;
        // then one request at a time keeps one pod busy while the other goes.
        var ns = await DeployAsync("drain", Manifest("drain", maxConcurrency: 1, computeMs: 2000));
        var pairTask = Task.WhenAll(Enumerable.Range(0, 2).Select(i => Http.PostAsync($"{GatewayUrl}/{ns}/drain/predict", new StringContent($"p{i}"))));
        await Eventually.HoldsAsync(async () => await PodCountAsync(ns, "drain") == 2, Timeout, "two pods for two concurrent requests");
        Assert.That((await pairTask).Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.OK));

        var statuses = new List<HttpStatusCode>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
        while (DateTime.UtcNow < deadline && ((await GetAsync(ns, "drain")).Status?.Replicas != 1 || statuses.Count < 3))
        {
            using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/drain/predict", new StringContent("one at a time"));
            statuses.Add(response.StatusCode);
        }

        Assert.That((await GetAsync(ns, "drain")).Status?.Replicas, Is.EqualTo(1), "scaled down to the steady load of one");
        Assert.That(statuses, Is.All.EqualTo(HttpStatusCode.OK), "no request was lost while a pod went away");
    }

    [Test]
    public async Task A_pod_labelled_with_a_functions_name_but_not_owned_by_it_gets_no_traffic()
    {
        var ns = await DeployAsync("owned", Manifest("owned").Replace("minReplicas: 0", "minReplicas: 1"));
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "owned")).Status?.ReadyReplicas == 1, Timeout, "one ready pod");
        var genuine = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=owned")).Items.Single();

        // A namespace member's pod with the function's labels, running a server that names itself in every answer;
        // first by name, so a route by labels would pick it first.
        var impostor = KubernetesJson.Deserialize<k8s.Models.V1Pod>(KubernetesJson.Serialize(genuine));
        impostor.Metadata = new k8s.Models.V1ObjectMeta { Name = "aaa-impostor", Labels = new Dictionary<string, string>(genuine.Metadata.Labels) };
        impostor.Status = null;
        foreach (var container in impostor.Spec.Containers)
        {
            container.Resources?.Limits?.Remove(FunctionPods.GpuResource);
            container.Resources?.Requests?.Remove(FunctionPods.GpuResource);
        }

        await Client.CoreV1.CreateNamespacedPodAsync(impostor, ns);
        await Eventually.HoldsAsync(async () => PodReadiness.IsReady(await Client.CoreV1.ReadNamespacedPodAsync("aaa-impostor", ns)), Timeout,
            "the impostor is ready and answering");

        for (var i = 0; i < 20; i++)
        {
            using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/owned/predict", new StringContent($"call {i}"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(text, Does.Contain(genuine.Metadata.Name).And.Not.Contain("aaa-impostor"));
        }

        Assert.That((await GetAsync(ns, "owned")).Status?.ReadyReplicas, Is.EqualTo(1), "the operator does not count it either");
    }

    [Test]
    public async Task Unknown_functions_get_404()
    {
        using var response = await Http.GetAsync($"{GatewayUrl}/nowhere/nothing/predict");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_request_past_the_functions_timeout_gets_504()
    {
        var ns = await DeployAsync("slow", Manifest("slow", timeout: "2s", computeMs: 10000));
        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/slow/predict", new StringContent("x"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("timeout"));
    }

    [Test]
    public async Task Requests_past_the_queue_bound_get_503_and_held_ones_504_after_the_startup_timeout()
    {
        // Nothing can schedule (no H100 in the pool), so requests are held.
        var ns = await DeployAsync("stuck", Manifest("stuck", gpu: "{type: H100}", startupTimeout: "3s"));
        await using var small = GatewayApp.Build(Client, $"http://127.0.0.1:{ControlPlane.FreePort()}", new GatewayOptions { QueueLimit = 2 },
            Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await small.StartAsync();
        var url = small.Urls.First();
        await Eventually.HoldsAsync(async () => (await Http.GetAsync($"{url}/readyz")).IsSuccessStatusCode, Timeout, "small gateway synced");

        var held = Enumerable.Range(0, 2).Select(_ => Http.GetAsync($"{url}/{ns}/stuck/predict")).ToList();
        await Eventually.HoldsAsync(async () => (await Http.GetStringAsync($"{url}/metrics")).Contains(
            $"pilotlight_gateway_queue_depth{{namespace=\"{ns}\",function=\"stuck\"}} 2", StringComparison.Ordinal), Timeout, "two held");

        using (var rejected = await Http.GetAsync($"{url}/{ns}/stuck/predict"))
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
