using System.Net;
using System.Net.Http.Json;
using k8s;
using k8s.Autorest;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// A function pod's life at its edges, end to end on the real control plane with the shared operator and
/// gateway: a pod that must go finishes what it serves (the kubelet-like simulator runs the user container's
/// preStop hook, which waits for the shim to drain), a replica that cannot be placed leaves a serving function
/// Ready with the reason in ScaledUp, and a model that never loads turns the function Stalled past startupTimeout.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class FunctionLifecycleTests() : ServingFixture(10, "lc")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private string Manifest(string name, int minReplicas = 1, string timeout = "60s", string startupTimeout = "1m", int loadSeconds = 1) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          env:
            - {"{"}name: LOAD_SECONDS, value: "{loadSeconds}"{"}"}
          gpu: {"{"}type: L4{"}"}
          scaling:
            minReplicas: {minReplicas}
            maxReplicas: 2
            maxConcurrency: 1
            scaledownWindow: 5s
          timeout: {timeout}
          startupTimeout: {startupTimeout}
          nodeSelector:
            {PoolLabel}: {Pool}-{name}
        """;

    /// <summary>
    /// Deploys the function in a namespace of its own, on a node of its own with one GPU unless told otherwise:
    /// its second one-GPU replica cannot be placed, and no other test's pods take that GPU.
    /// </summary>
    private async Task<string> DeployAsync(string name, string manifest, int gpus = 1)
    {
        await Sim.AddNodeAsync($"{Pool}-{name}", GpuNodePreset.L4.WithGpus(gpus), new Dictionary<string, string> { [PoolLabel] = $"{Pool}-{name}" });
        var ns = await Plane.CreateNamespaceAsync(name);
        (await Kubectl.ApplyAsync(manifest, ns)).EnsureSuccess();
        return ns;
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private static k8s.Models.V1Condition? Condition(GpuFunction function, string type) =>
        function.Status?.Conditions?.FirstOrDefault(c => c.Type == type);

    private async Task<List<k8s.Models.V1Pod>> PodsAsync(string ns, string name) =>
        [.. (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items];

    [Test]
    public async Task A_pod_deleted_while_serving_finishes_its_request_and_new_requests_go_elsewhere()
    {
        // timeout 60s: the shim drains for up to 60 s. The request takes 30 s: longer than the shim's old fixed 15 s
        // drain plus its 5 s host shutdown, so without a drain that follows timeout it is cut off.
        // Two GPUs: the replacement is placed while the deleted pod still holds its GPU, so the request that
        // arrives meanwhile does not depend on how fast a busy machine tears the old pod down.
        var ns = await DeployAsync("drain", Manifest("drain", startupTimeout: "2m"), gpus: 2);
        var victim = await Eventually.GetAsync(async () =>
            (await PodsAsync(ns, "drain")).FirstOrDefault(PodReadiness.IsReady), Timeout, "a ready pod");
        var ip = Sim.PodIp(ns, victim.Metadata.Name)!;

        var longRequest = Http.PostAsync($"{GatewayUrl}/{ns}/drain/predict?ms=30000", new StringContent("long"));
        await Eventually.HoldsAsync(async () =>
            (await Http.GetFromJsonAsync<Pilotlight.RuntimeShim.ShimStats>($"http://{ip}:8099/stats"))?.InFlight == 1, Timeout, "the long request in flight on the pod");

        // Deleted, not crashed: a node drain, a rollout or someone's kubectl delete.
        await Client.CoreV1.DeleteNamespacedPodAsync(victim.Metadata.Name, ns);

        // A request that arrives meanwhile is not sent to the draining pod: it waits for (or goes to) another.
        using (var during = await Http.PostAsync($"{GatewayUrl}/{ns}/drain/predict?ms=10", new StringContent("during")))
        {
            var text = await during.Content.ReadAsStringAsync();
            Assert.That(during.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(text, Does.Not.Contain(victim.Metadata.Name));
        }

        using (var answered = await longRequest)
        {
            var text = await answered.Content.ReadAsStringAsync();
            Assert.That(answered.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            Assert.That(text, Does.Contain(victim.Metadata.Name).And.Contain("\"computeMs\":30000"), "finished on the pod that was deleted");
        }

        await Eventually.HoldsAsync(async () =>
        {
            try
            {
                await Client.CoreV1.ReadNamespacedPodAsync(victim.Metadata.Name, ns);
                return false;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                return true;
            }
        }, Timeout, "the deleted pod gone once drained");
    }

    [Test]
    public async Task A_scale_up_that_cannot_place_its_second_pod_leaves_the_function_ready_with_the_reason_shown()
    {
        var ns = await DeployAsync("pending", Manifest("pending", minReplicas: 2));

        var function = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "pending");
            return f.Status?.ReadyReplicas == 1 && Condition(f, FunctionConditions.ScaledUp)?.Reason == FunctionConditions.Reasons.Unschedulable ? f : null;
        }, Timeout, "one replica serving, the other unschedulable");

        Assert.Multiple(() =>
        {
            Assert.That(Condition(function, FunctionConditions.Ready)?.Status, Is.EqualTo("True"), "it serves");
            Assert.That(Condition(function, FunctionConditions.Stalled)?.Status, Is.EqualTo("False"), "not Degraded while it serves");
            Assert.That(Condition(function, FunctionConditions.ScaledUp)?.Status, Is.EqualTo("False"));
            Assert.That(Condition(function, FunctionConditions.ScaledUp)?.Message, Does.Contain("Insufficient nvidia.com/gpu"), "the scheduler's words");
        });

        var wide = (await Kubectl.RunAsync(["get", "gfn", "pending", "-n", ns, "-o", "wide"])).EnsureSuccess().StandardOutput;
        Assert.That(wide, Does.Contain("SCALED-UP").And.Contain("Unschedulable"), wide);

        var events = await Eventually.GetAsync(async () =>
        {
            var list = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=pending");
            return list.Items.Any(e => e.Type == "Warning" && e.Reason == FunctionConditions.Reasons.Unschedulable) ? list : null;
        }, Timeout, "a Warning Event saying why it did not scale up");
        Assert.That(events.Items.First(e => e.Reason == FunctionConditions.Reasons.Unschedulable).Message, Does.Contain("Insufficient nvidia.com/gpu"));
    }

    [Test]
    public async Task A_function_whose_model_never_loads_is_stalled_past_its_startup_timeout()
    {
        var ns = await DeployAsync("stuck", Manifest("stuck", loadSeconds: 3600, startupTimeout: "5s"));

        var function = await Eventually.GetAsync(async () =>
        {
            // The pod may be Unschedulable for a moment first (created before the scheduler saw the test's new node).
            var f = await GetAsync(ns, "stuck");
            return Condition(f, FunctionConditions.Stalled) is { Status: "True", Reason: FunctionConditions.Reasons.StartupTimeout } ? f : null;
        }, Timeout, "Stalled past startupTimeout");

        Assert.Multiple(() =>
        {
            Assert.That(Condition(function, FunctionConditions.Stalled)?.Reason, Is.EqualTo(FunctionConditions.Reasons.StartupTimeout));
            Assert.That(Condition(function, FunctionConditions.Ready), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(FunctionConditions.Reasons.StartupTimeout));
            Assert.That(Condition(function, FunctionConditions.Stalled)?.Message, Does.Contain("startupTimeout 5s"));
        });

        // The startup probe's budget ran out too: the kubelet (here the simulator) restarted the container.
        await Eventually.HoldsAsync(async () =>
            (await PodsAsync(ns, "stuck")).Any(p => p.Status?.ContainerStatuses?.Any(c => c.Name == FunctionPods.FunctionContainer && c.RestartCount > 0) == true),
            Timeout, "the function container restarted by its startup probe");
        await Eventually.HoldsAsync(async () =>
            (await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=stuck"))
                .Items.Any(e => e.Type == "Warning" && e.Reason == FunctionConditions.Reasons.StartupTimeout),
            Timeout, "a Warning Event");
    }
}
