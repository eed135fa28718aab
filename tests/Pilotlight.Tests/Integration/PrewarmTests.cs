using System.Net;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The pre-warm controller on the real control plane: warm pods claimed with no
/// pod created on the request path, placeholders preempted by the real
/// scheduler, pre-pull pods only on matching GPU nodes, warm capacity ahead of
/// a scheduled tick.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class PrewarmTests() : ServingFixture(8, "pw")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

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
        Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<List<V1Pod>> PodsAsync(string ns, string selector) =>
        [.. (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: selector)).Items];

    private static V1Condition? Condition(GpuFunction f, string type) => f.Status?.Conditions?.FirstOrDefault(c => c.Type == type);

    private async Task<string> PoolAsync(string prefix, params GpuNodePreset[] presets)
    {
        var pool = $"{prefix}-{Guid.NewGuid():N}"[..12];
        for (var i = 0; i < presets.Length; i++)
        {
            await Sim.AddNodeAsync($"{pool}-{i}", presets[i], new Dictionary<string, string> { [PoolLabel] = pool });
        }

        return pool;
    }

    /// <summary>A function's one ready warm pod, with nothing serving, once it has been Ready longer than the API's one-second timestamps.</summary>
    private async Task<V1Pod> StandbyAsync(string ns, string name)
    {
        var standby = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, name);
            var pods = await PodsAsync(ns, $"{FunctionLabels.Function}={name}");
            return f.Status?.WarmReplicas == 1 && Condition(f, FunctionConditions.Warm)?.Reason == FunctionConditions.Reasons.PoolReady && pods.Count == 1
                ? pods[0] : null;
        }, Timeout, "one ready warm pod, nothing serving");
        Assert.That(standby.Metadata.Labels[FunctionLabels.Role], Is.EqualTo(FunctionLabels.RoleWarm));

        // The start header tells a standby ready before the request from a pod that turned ready after it by the
        // API's timestamps, which have a one-second resolution.
        var readySince = standby.Status.Conditions.Single(c => c.Type == "Ready").LastTransitionTime!.Value.ToUniversalTime();
        await Eventually.HoldsAsync(() => DateTime.UtcNow - readySince > TimeSpan.FromSeconds(2), Timeout, "the warm pod ready for two seconds");
        return standby;
    }

    [Test]
    public async Task A_request_at_zero_goes_to_the_warm_pod_with_no_API_write_on_its_way_then_the_pod_is_claimed_and_the_pool_refills()
    {
        var pool = await PoolAsync("warm", GpuNodePreset.L4);
        var ns = await Plane.CreateNamespaceAsync("warm");
        (await Kubectl.ApplyAsync(Manifest("claim", pool, "{warmReplicas: 1, keepWarmFor: 0s}"), ns)).EnsureSuccess();
        var standby = await StandbyAsync(ns, "claim");

        // No compute time (?ms=0): the response starts as soon as the pod has the request.
        var sent = DateTimeOffset.UtcNow;
        using var response = await Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, $"{GatewayUrl}/{ns}/claim/predict?ms=0") { Content = new StringContent("hello") },
            HttpCompletionOption.ResponseHeadersRead);
        var started = DateTimeOffset.UtcNow;
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(body, Does.Contain(standby.Metadata.Name), "served by the warm pod that was waiting, not a new one");
        Assert.That(response.Headers.GetValues("X-Pilotlight-Start").Single(), Is.EqualTo("warm"));

        // Evictable by a node autoscaler while warm; not once it serves (the same patch as the claim).
        Assert.That(standby.Metadata.Annotations[FunctionLabels.SafeToEvict], Is.EqualTo("true"));
        Assert.That(standby.Metadata.Annotations, Does.Not.ContainKey(FunctionLabels.DoNotDisrupt));

        // Claimed afterwards: relabelled serving, and the pool is back to size with a new pod.
        await Eventually.HoldsAsync(async () =>
            (await Client.CoreV1.ReadNamespacedPodAsync(standby.Metadata.Name, ns)).Metadata.Labels[FunctionLabels.Role] == FunctionLabels.RoleServing,
            Timeout, "the warm pod relabelled serving");
        var claimed = await Client.CoreV1.ReadNamespacedPodAsync(standby.Metadata.Name, ns);
        Assert.That(claimed.Metadata.Annotations[FunctionLabels.SafeToEvict], Is.EqualTo("false"));
        Assert.That(claimed.Metadata.Annotations[FunctionLabels.DoNotDisrupt], Is.EqualTo("true"));
        await Eventually.HoldsAsync(async () =>
        {
            var f = await GetAsync(ns, "claim");
            var warm = await PodsAsync(ns, $"{FunctionLabels.Function}=claim,{FunctionLabels.Role}={FunctionLabels.RoleWarm}");
            return f.Status?.WarmReplicas == 1 && warm.Count == 1 && warm[0].Metadata.Name != standby.Metadata.Name;
        }, Timeout, "the pool refilled");
        var events = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "reason=ClaimedWarmPods");
        Assert.That(events.Items, Is.Not.Empty, "the claim is told as an Event");

        // The audit log (every request of the operator and the gateway) in this namespace: the gateway wrote
        // nothing while the request was on its way (its wake stamp follows the answer), and nothing at all was
        // written between the request's arrival and the response's start, or the claim if that came first:
        // on a loaded machine the request can outlast an autoscaler tick (500 ms here), whose demand poll shows
        // the standby busy, and the operator then claims it while it serves, which the request never waits for.
        var writes = await Eventually.GetAsync(() =>
        {
            var all = Plane.AuditEvents().Where(e => e.IsWrite && e.Request?.Namespace == ns && e.Received is not null).ToList();
            return Task.FromResult(all.Any(e => e.Request!.Resource == "pods" && e.Request.Name == standby.Metadata.Name && e.Verb == "patch") ? all : null);
        }, Timeout, "the relabel in the audit log");
        static string Show(AuditEvent e) => $"{e.Received:O} {e.User} {e.Verb} {e.RequestUri}";
        var relabel = writes.First(e => e.Request!.Resource == "pods" && e.Request.Name == standby.Metadata.Name && e.Verb == "patch");
        Assert.That(relabel.User, Is.EqualTo(ChartRbac.OperatorUser));
        Assert.That(relabel.Received, Is.GreaterThan(sent), $"claimed after the request arrived, never before (sent {sent:O}, response {started:O})");
        Assert.That(writes.Where(e => e.User == ChartRbac.GatewayUser && e.Received >= sent && e.Received <= started).Select(Show), Is.Empty,
            "the gateway writes nothing on the request's way");
        var quietUntil = relabel.Received < started ? relabel.Received : started;
        Assert.That(writes.Where(e => e.Received >= sent && e.Received < quietUntil).Select(Show), Is.Empty,
            $"no create, patch or update between the request's arrival and its response (sent {sent:O}, response {started:O})");
    }

    [Test]
    public async Task A_pod_with_warm_labels_but_no_controller_reference_is_never_routed_to()
    {
        var pool = await PoolAsync("forged", GpuNodePreset.L4);
        var ns = await Plane.CreateNamespaceAsync("forged");
        (await Kubectl.ApplyAsync(Manifest("real", pool, "{warmReplicas: 1, keepWarmFor: 0s}"), ns)).EnsureSuccess();
        var standby = await StandbyAsync(ns, "real");

        // An impostor anyone allowed to create pods could make: the standby's labels and containers, no owner
        // reference (and no GPU, so it fits beside the function's pods).
        var spec = KubernetesJson.Deserialize<V1PodSpec>(KubernetesJson.Serialize(standby.Spec));
        spec.NodeName = null;
        foreach (var container in spec.Containers.Concat(spec.InitContainers ?? []))
        {
            container.Resources?.Limits?.Remove("nvidia.com/gpu");
            container.Resources?.Requests?.Remove("nvidia.com/gpu");
        }

        await Client.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "impostor", Labels = new Dictionary<string, string>(standby.Metadata.Labels) },
            Spec = spec,
        }, ns);

        // The real standby leaves the pool; the impostor stays, ready, labelled warm.
        (await Kubectl.ApplyAsync(Manifest("real", pool, "{warmReplicas: 0, keepWarmFor: 0s}"), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
        {
            var pods = await PodsAsync(ns, $"{FunctionLabels.Function}=real");
            return pods.Count == 1 && pods[0].Metadata.Name == "impostor" && PodReadiness.IsReady(pods[0]);
        }, Timeout, "only the impostor left, ready");

        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/real/predict?ms=0", new StringContent("hello"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(body, Does.Not.Contain("impostor"), "served by a pod of the function's own");
        Assert.That(response.Headers.GetValues("X-Pilotlight-Start").Single(), Is.EqualTo("cold"));
        var impostor = await Client.CoreV1.ReadNamespacedPodAsync("impostor", ns);
        Assert.That(impostor.Metadata.Labels[FunctionLabels.Role], Is.EqualTo(FunctionLabels.RoleWarm), "never claimed either");
    }

    [Test]
    public async Task A_function_pod_preempts_a_placeholder_which_returns_when_capacity_frees()
    {
        // One node with exactly one replica's GPUs: the placeholder and the function pod cannot both fit.
        var pool = await PoolAsync("reserve", GpuNodePreset.L4.WithGpus(2));
        var ns = await Plane.CreateNamespaceAsync("reserve");
        string Apply(int min) => Manifest("held", pool, "{reservedReplicas: 1}", minReplicas: min, gpu: "{type: L4, count: 2}");
        (await Kubectl.ApplyAsync(Apply(0), ns)).EnsureSuccess();

        var placeholder = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "held");
            var held = await PodsAsync(ns, $"{FunctionLabels.ReservationFor}=held");
            return Condition(f, FunctionConditions.Reserved)?.Reason == FunctionConditions.Reasons.ReservationsHeld && held.Count == 1 ? held[0] : null;
        }, Timeout, "the placeholder holds the node's GPUs");
        Assert.That(placeholder.Spec.PriorityClassName, Is.EqualTo("pilotlight-reservation"));
        Assert.That(placeholder.Spec.Priority, Is.LessThan(0));

        // A replica is wanted: the scheduler preempts the placeholder for it.
        (await Kubectl.ApplyAsync(Apply(1), ns)).EnsureSuccess();
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
        (await Kubectl.ApplyAsync(Apply(0), ns)).EnsureSuccess();
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
        var ns = await Plane.CreateNamespaceAsync("pull");
        (await Kubectl.ApplyAsync(Manifest("pulled", pool, "{prePull: true}", gpu: "{type: H100}"), ns)).EnsureSuccess();

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
        (await Kubectl.ApplyAsync(Manifest("pulled", pool, "{prePull: true}", gpu: "{type: H100}").Replace("example/model-server:1", "example/model-server:2"), ns))
            .EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
            (await Client.AppsV1.ReadNamespacedDaemonSetAsync("pulled-prepull", ns)).Spec.Template.Spec.Containers[0].Image == "example/model-server:2",
            Timeout, "the pre-pull DaemonSet pulls the new image");
        (await Kubectl.ApplyAsync(Manifest("pulled", pool, "{prePull: false}", gpu: "{type: H100}").Replace("example/model-server:1", "example/model-server:2"), ns))
            .EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await Client.AppsV1.ListNamespacedDaemonSetAsync(ns)).Items.Count == 0, Timeout, "the pre-pull DaemonSet is gone");
    }

    [Test]
    public async Task A_scheduled_function_has_a_warm_pod_before_its_tick()
    {
        var pool = await PoolAsync("cron", GpuNodePreset.L4);
        var ns = await Plane.CreateNamespaceAsync("cron");

        // The next minute boundary at least 70 s away, warmed 45 s ahead: the window opens during the test.
        var now = DateTimeOffset.UtcNow;
        var tick = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, 0, TimeSpan.Zero).AddMinutes(1);
        while (tick - now < TimeSpan.FromSeconds(70))
        {
            tick = tick.AddMinutes(1);
        }

        var lead = TimeSpan.FromSeconds(45);
        var schedule = $"  schedule: {{cron: \"{tick.Minute} {tick.Hour} * * *\", timeZone: UTC}}";
        (await Kubectl.ApplyAsync(Manifest("cron", pool, "{leadTime: 45s, keepWarmFor: 0s}", extra: schedule), ns)).EnsureSuccess();

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
        var ns = await Plane.CreateNamespaceAsync("quota");
        await Client.CoreV1.CreateNamespacedResourceQuotaAsync(new V1ResourceQuota
        {
            Metadata = new V1ObjectMeta { Name = "pods" },
            Spec = new V1ResourceQuotaSpec { Hard = new Dictionary<string, ResourceQuantity> { ["pods"] = new("1") } },
        }, ns);
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ReadNamespacedResourceQuotaAsync("pods", ns)).Status?.Hard is not null,
            Timeout, "the quota controller has counted the namespace");

        (await Kubectl.ApplyAsync(Manifest("bounded", pool, "{warmReplicas: 2}"), ns)).EnsureSuccess();

        var condition = await Eventually.GetAsync(async () =>
            Condition(await GetAsync(ns, "bounded"), FunctionConditions.Warm) is { Reason: FunctionConditions.Reasons.QuotaExceeded } c ? c : null,
            Timeout, "the Warm condition names the quota");
        Assert.That(condition.Status, Is.EqualTo("False"));
        Assert.That(condition.Message, Does.Contain("exceeded quota"));
        Assert.That(await PodsAsync(ns, $"{FunctionLabels.Function}=bounded"), Has.Count.EqualTo(1), "one warm pod fits; the operator did not crash");
    }
}
