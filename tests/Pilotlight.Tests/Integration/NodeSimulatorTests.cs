using k8s;
using k8s.Models;

namespace Pilotlight.Tests.Integration;

/// <summary>Simulated GPU nodes with the real scheduler.</summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class NodeSimulatorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private Kubernetes _client = null!;
    private NodeSimulator _sim = null!;
    private string _ns = "";
    private string _pool = "";

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        var plane = await SharedControlPlane.GetAsync();
        _client = plane.CreateClient();
        _ns = await plane.CreateNamespaceAsync("nodesim");
        _pool = _ns;
        _sim = new NodeSimulator(_client, new NodeSimulatorOptions { PodNetwork = 2 });
        await _sim.StartAsync();
        await _sim.AddNodeAsync($"{_pool}-h100", GpuNodePreset.H100.WithGpus(2));
        await _sim.AddNodeAsync($"{_pool}-l4", GpuNodePreset.L4);
        await _sim.AddNodeAsync($"{_pool}-t4", GpuNodePreset.T4);
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        await _sim.DeleteNodesAsync();
        await _sim.DisposeAsync();
        _client.Dispose();
    }

    private V1Pod GpuPod(string name, int gpus, params string[] products) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Spec = new V1PodSpec
        {
            Containers = [new V1Container
            {
                Name = "main",
                Image = "example/server:1",
                Resources = new V1ResourceRequirements
                {
                    Limits = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new(gpus.ToString(System.Globalization.CultureInfo.InvariantCulture)) },
                },
            }],
            Tolerations = [new V1Toleration { Key = "nvidia.com/gpu", OperatorProperty = "Exists", Effect = "NoSchedule" }],
            Affinity = new V1Affinity
            {
                NodeAffinity = new V1NodeAffinity
                {
                    RequiredDuringSchedulingIgnoredDuringExecution = new V1NodeSelector
                    {
                        NodeSelectorTerms = [new V1NodeSelectorTerm
                        {
                            MatchExpressions =
                            [
                                new V1NodeSelectorRequirement { Key = "nvidia.com/gpu.product", OperatorProperty = "In", Values = products },
                                new V1NodeSelectorRequirement { Key = "kubernetes.io/hostname", OperatorProperty = "In", Values = [.. _sim.Nodes] },
                            ],
                        }],
                    },
                },
            },
        },
    };

    [Test]
    public async Task Nodes_advertise_gpus_labels_and_the_gpu_taint()
    {
        var node = await _client.CoreV1.ReadNodeAsync($"{_pool}-h100");

        Assert.That(node.Status.Capacity["nvidia.com/gpu"]?.ToString(), Is.EqualTo("2"));
        Assert.That(node.Status.Allocatable["nvidia.com/gpu"]?.ToString(), Is.EqualTo("2"));
        Assert.That(node.Metadata.Labels["nvidia.com/gpu.product"], Is.EqualTo("NVIDIA-H100-80GB-HBM3"));
        Assert.That(node.Metadata.Labels["nvidia.com/gpu.count"], Is.EqualTo("2"));
        Assert.That(node.Metadata.Labels["nvidia.com/gpu.memory"], Is.EqualTo("81559"));
        Assert.That(node.Spec.Taints, Has.Some.Matches<V1Taint>(t => t!.Key == "nvidia.com/gpu" && t.Effect == "NoSchedule"));
        Assert.That(node.Status.Conditions, Has.Some.Matches<V1NodeCondition>(c => c!.Type == "Ready" && c.Status == "True"));
    }

    [Test]
    public async Task A_pod_asking_for_an_h100_lands_on_the_h100_node_and_becomes_ready()
    {
        await _client.CoreV1.CreateNamespacedPodAsync(GpuPod("h100-pod", 1, "NVIDIA-H100-80GB-HBM3"), _ns);

        var pod = await Eventually.GetAsync(async () =>
        {
            var p = await _client.CoreV1.ReadNamespacedPodAsync("h100-pod", _ns);
            return p.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true ? p : null;
        }, Timeout, "pod Ready");

        Assert.That(pod.Spec.NodeName, Is.EqualTo($"{_pool}-h100"));
        Assert.That(pod.Status.Phase, Is.EqualTo("Running"));
        Assert.That(pod.Status.PodIP, Does.StartWith($"127.{new NodeSimulatorOptions { PodNetwork = 2 }.PodOctet}."));
        Assert.That(pod.Status.ContainerStatuses.Single().Ready, Is.True);
    }

    [Test]
    public async Task A_pod_that_fits_nowhere_stays_pending_with_the_schedulers_reason()
    {
        await _client.CoreV1.CreateNamespacedPodAsync(GpuPod("too-big", 4, "NVIDIA-H100-80GB-HBM3"), _ns);

        var condition = await Eventually.GetAsync(async () =>
        {
            var p = await _client.CoreV1.ReadNamespacedPodAsync("too-big", _ns);
            return p.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled" && c.Status == "False");
        }, Timeout, "PodScheduled=False");

        Assert.That(condition.Reason, Is.EqualTo("Unschedulable"));
        Assert.That(condition.Message, Does.Contain("Insufficient nvidia.com/gpu"));
        var pod = await _client.CoreV1.ReadNamespacedPodAsync("too-big", _ns);
        Assert.That(pod.Status.Phase, Is.EqualTo("Pending"));
        Assert.That(pod.Spec.NodeName, Is.Null);
    }

    [Test]
    public async Task A_deleted_pod_on_a_simulated_node_goes_away()
    {
        await _client.CoreV1.CreateNamespacedPodAsync(GpuPod("short-lived", 1, "Tesla-T4"), _ns);
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ReadNamespacedPodAsync("short-lived", _ns)).Status?.Phase == "Running",
            Timeout, "pod running");

        await _client.CoreV1.DeleteNamespacedPodAsync("short-lived", _ns);

        await Eventually.HoldsAsync(async () =>
            (await _client.CoreV1.ListNamespacedPodAsync(_ns, fieldSelector: "metadata.name=short-lived")).Items.Count == 0,
            Timeout, "pod removed once the simulated kubelet confirms termination");
    }
}

/// <summary>Simulated nodes stay Ready: heartbeats keep the node lifecycle controller from tainting them.</summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class NodeSoakTests
{
    [Test]
    public async Task Nodes_stay_ready_for_the_soak_period()
    {
        // PILOTLIGHT_NODE_SOAK shortens or lengthens the soak (a duration such as 90s); 5 minutes by default.
        var soak = Pilotlight.Api.Schema.DurationString.Parse(Environment.GetEnvironmentVariable("PILOTLIGHT_NODE_SOAK") ?? "5m");
        var plane = await SharedControlPlane.GetAsync();
        using var client = plane.CreateClient();
        await using var sim = new NodeSimulator(client, new NodeSimulatorOptions { PodNetwork = 3 });
        await sim.StartAsync();
        var name = $"soak-{Guid.NewGuid():N}"[..12];
        await sim.AddNodeAsync(name, GpuNodePreset.A100x80GB);

        var started = DateTime.UtcNow;
        var checks = 0;
        while (DateTime.UtcNow - started < soak)
        {
            var node = await client.CoreV1.ReadNodeAsync(name);
            var ready = node.Status.Conditions.Single(c => c.Type == "Ready");
            Assert.That(ready.Status, Is.EqualTo("True"), $"Ready after {DateTime.UtcNow - started}");
            Assert.That(node.Spec.Taints ?? [], Has.None.Matches<V1Taint>(t => t!.Key != null && t.Key.StartsWith("node.kubernetes.io/", StringComparison.Ordinal)),
                $"lifecycle taints after {DateTime.UtcNow - started}");
            checks++;
            await Task.Delay(TimeSpan.FromSeconds(5));
        }

        var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync(name, "kube-node-lease");
        Assert.That(lease.Spec.RenewTime, Is.GreaterThan(DateTime.UtcNow.AddSeconds(-40)));
        Assert.That(checks, Is.GreaterThan(1));
        await sim.DeleteNodesAsync();
    }
    [Test]
    public async Task A_node_added_while_its_heartbeats_run_gets_one_lease_and_no_error()
    {
        var plane = await SharedControlPlane.GetAsync();
        using var client = plane.CreateClient();
        await using var sim = new NodeSimulator(client, new NodeSimulatorOptions { PodNetwork = 14, HeartbeatInterval = TimeSpan.FromMilliseconds(50) });
        await sim.StartAsync();
        var name = $"race-{Guid.NewGuid():N}"[..12];
        try
        {
            // Adds of one name and the loop's beats race for the first Lease: each finds none and creates it, unless the
            // node's beats take turns.
            await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => sim.AddNodeAsync(name, GpuNodePreset.L4)));

            var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync(name, "kube-node-lease");
            Assert.That(lease.Spec.HolderIdentity, Is.EqualTo(name));
            Assert.That(sim.Nodes, Has.Exactly(1).EqualTo(name));
        }
        finally
        {
            await sim.DeleteNodesAsync();
            try
            {
                await client.CoordinationV1.DeleteNamespacedLeaseAsync(name, "kube-node-lease");
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
            }
        }
    }

    [Test]
    public async Task With_a_status_report_interval_a_node_renews_its_lease_and_writes_status_only_when_its_ready_condition_was_changed()
    {
        var plane = await SharedControlPlane.GetAsync();
        using var client = plane.CreateClient();
        await using var sim = new NodeSimulator(client, new NodeSimulatorOptions
        {
            PodNetwork = 8, HeartbeatInterval = TimeSpan.FromSeconds(1), StatusReportInterval = TimeSpan.FromMinutes(5),
        });
        await sim.StartAsync();
        var name = $"quiet-{Guid.NewGuid():N}"[..12];
        await sim.AddNodeAsync(name, GpuNodePreset.L4);
        try
        {
            async Task<V1NodeCondition> ReadyAsync() => (await client.CoreV1.ReadNodeAsync(name)).Status.Conditions.Single(c => c.Type == "Ready");
            var reported = (await ReadyAsync()).LastHeartbeatTime;
            var renewed = (await client.CoordinationV1.ReadNamespacedLeaseAsync(name, "kube-node-lease")).Spec.RenewTime;

            // Heartbeats go on (the Lease is renewed twice), the status is not written again.
            await Eventually.HoldsAsync(async () =>
                (await client.CoordinationV1.ReadNamespacedLeaseAsync(name, "kube-node-lease")).Spec.RenewTime > renewed!.Value.AddSeconds(1.5),
                TimeSpan.FromSeconds(30), "the Lease renewed");
            Assert.That((await ReadyAsync()).LastHeartbeatTime, Is.EqualTo(reported), "no status write between reports");

            // What the node lifecycle controller does to a node it has not heard from: the next heartbeat answers it.
            var unknown = new { status = new { conditions = new[] { new { type = "Ready", status = "Unknown", reason = "NodeStatusUnknown" } } } };
            await client.CoreV1.PatchNodeStatusAsync(new V1Patch(KubernetesJson.Serialize(unknown), V1Patch.PatchType.StrategicMergePatch), name);
            await Eventually.HoldsAsync(async () => (await ReadyAsync()) is { Status: "True", Reason: "KubeletReady" }, TimeSpan.FromSeconds(30), "Ready reported again");
        }
        finally
        {
            await sim.DeleteNodesAsync();
        }
    }
}
