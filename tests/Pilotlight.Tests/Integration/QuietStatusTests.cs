using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The operator is quiet when nothing changes: with 200 functions, 20 of them holding a running pod, and no traffic,
/// the shared operator (as the chart's ServiceAccount, whose every request the API server audits) writes nothing in
/// their namespace for two minutes once they are all current. Before usage in status was refreshed only when a pod
/// opens or closes (or every few minutes), each function with a pod was patched every 30 s.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class QuietStatusTests
{
    private const int Functions = 200;
    private const int WithPods = 20;
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan Quiet = TimeSpan.FromMinutes(2);

    [Test]
    public async Task Two_hundred_idle_functions_cause_no_status_writes_for_two_minutes()
    {
        var shared = await SharedOperator.GetAsync();
        var plane = shared.Plane;
        using var client = plane.CreateClient();
        var ns = await plane.CreateNamespaceAsync("quiet");

        // A10 nodes: no other test asks for that type, so no other test's pod lands on these process-less nodes.
        await using var sim = new NodeSimulator(client, new NodeSimulatorOptions { PodNetwork = 24 });
        await sim.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await sim.AddNodeAsync($"{ns}-a10-{i}", new GpuNodePreset("NVIDIA-A10", 8, 23028));
        }

        await Parallel.ForEachAsync(Enumerable.Range(0, Functions), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            var function = new GpuFunction
            {
                Metadata = new V1ObjectMeta { Name = $"idle-{i:D3}", NamespaceProperty = ns },
                Spec = new GpuFunctionSpec
                {
                    Image = "example/model:1",
                    Gpu = new GpuRequirement { Type = GpuType.A10 },
                    Scaling = new ScalingPolicy { MinReplicas = i < WithPods ? 1 : 0, MaxReplicas = 1 },
                },
            };
            await client.CustomObjects.CreateNamespacedCustomObjectAsync(function, Group.Name, Group.Version, ns, "gpufunctions", cancellationToken: ct);
        });

        // Current: every status observed its generation, the 20 with a pod ready and billing it, the rest at zero.
        await Eventually.GetAsync(async () =>
        {
            var list = await client.CustomObjects.ListNamespacedCustomObjectAsync<Pilotlight.ControllerRuntime.CustomResourceList<GpuFunction>>(
                Group.Name, Group.Version, ns, "gpufunctions");
            return list.Items.Count == Functions && list.Items.All(f => f.Status?.ObservedGeneration == f.Metadata.Generation
                && (f.Spec.Scaling.MinReplicas == 0
                    ? f.Status!.Conditions?.Any(c => c.Type == FunctionConditions.Ready && c.Reason == "ScaledToZero") == true
                    : f.Status!.ReadyReplicas == 1 && f.Status.Usage?.OpenPods?.Count == 1)) ? list : null;
        }, Timeout, $"all {Functions} functions current", TimeSpan.FromSeconds(1));

        // Let the last pod events' reconciles finish, then watch the operator's writes in this namespace.
        var settled = (await Eventually.GetAsync(() =>
        {
            var last = Writes(plane, ns, DateTimeOffset.MinValue).Select(e => e.Received).Max();
            return Task.FromResult(last is { } at && DateTimeOffset.UtcNow - at > TimeSpan.FromSeconds(5) ? new object[] { DateTimeOffset.UtcNow } : null);
        }, Timeout, "the operator's writes in the namespace stopped", TimeSpan.FromSeconds(2)))[0] is DateTimeOffset since ? since : default;
        await Eventually.GetAsync(() => Task.FromResult(DateTimeOffset.UtcNow - settled >= Quiet || Writes(plane, ns, settled).Count > 0 ? "" : null),
            Quiet + TimeSpan.FromSeconds(30), "two quiet minutes, or a write", TimeSpan.FromSeconds(5));
        var writes = Writes(plane, ns, settled);
        Assert.That(writes.Select(e => $"{e.Verb} {e.RequestUri}"), Is.Empty, "the operator wrote while nothing changed");
    }

    private static List<AuditEvent> Writes(ControlPlane plane, string ns, DateTimeOffset since) =>
        [.. plane.AuditEvents().Where(e => e.User == ChartRbac.OperatorUser && e.IsWrite && e.Stage == "ResponseComplete"
            && e.Request?.Namespace == ns && e.Received > since)];
}
