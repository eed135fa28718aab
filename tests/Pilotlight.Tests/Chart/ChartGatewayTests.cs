using k8s;
using k8s.Models;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The gateway as the chart runs it by default: two replicas spread over nodes, a
/// PodDisruptionBudget in the API version the cluster serves, a preStop drain bounded by
/// gateway.drainSeconds, and the operator reading every gateway pod. Needs only helm.
/// </summary>
[TestFixture]
public class ChartGatewayTests
{
    private static IEnumerable<string> Documents(string yaml) =>
        yaml.Split("\n---\n").Where(d => d.Contains("\nkind: ", StringComparison.Ordinal) || d.StartsWith("kind: ", StringComparison.Ordinal));

    private static string Document(string yaml, string kind, string name) =>
        Documents(yaml).Single(d => d.Contains($"\nkind: {kind}\n", StringComparison.Ordinal) && d.Contains($"\n  name: {name}\n", StringComparison.Ordinal));

    [Test]
    public async Task By_default_two_gateways_spread_over_nodes_drain_before_they_stop_and_keep_one_through_a_node_drain()
    {
        var yaml = await Helm.TemplateAsync();
        var gateway = KubernetesYaml.Deserialize<V1Deployment>(Document(yaml, "Deployment", "pilotlight-gateway"));
        var pod = gateway.Spec.Template.Spec;
        var container = pod.Containers.Single();
        Assert.Multiple(() =>
        {
            Assert.That(gateway.Spec.Replicas, Is.EqualTo(2));
            var spread = pod.TopologySpreadConstraints.Single();
            Assert.That((spread.TopologyKey, spread.WhenUnsatisfiable, spread.MaxSkew), Is.EqualTo(("kubernetes.io/hostname", "ScheduleAnyway", 1)), "soft, by node");
            Assert.That(spread.LabelSelector.MatchLabels, Is.EquivalentTo(gateway.Spec.Selector.MatchLabels));
            Assert.That(container.Lifecycle.PreStop.HttpGet.Path, Is.EqualTo("/wait-for-drain"));
            Assert.That(container.Lifecycle.PreStop.HttpGet.Port.Value, Is.EqualTo("admin"));
            Assert.That(string.Join(' ', container.Args), Does.Contain("--drain-seconds 300").And.Contain("--admin-port 8022"));
            Assert.That(pod.TerminationGracePeriodSeconds, Is.EqualTo(315), "the drain bound plus time to stop");
        });

        var budget = KubernetesYaml.Deserialize<V1PodDisruptionBudget>(Document(yaml, "PodDisruptionBudget", "pilotlight-gateway"));
        Assert.That(budget.Spec.MinAvailable.Value, Is.EqualTo("1"));
        Assert.That(budget.Spec.Selector.MatchLabels, Is.EquivalentTo(gateway.Spec.Selector.MatchLabels));

        // The operator reads every pod through the headless Service that lists them all, not the gateway Service.
        var op = KubernetesYaml.Deserialize<V1Deployment>(Document(yaml, "Deployment", "pilotlight-operator"));
        var args = string.Join(' ', op.Spec.Template.Spec.Containers.Single().Args);
        Assert.That(args, Does.Contain("--gateway-service pilotlight-system/pilotlight-gateway-pods").And.Not.Contain("--gateways"));
        Assert.That(args, Does.Contain("--schedule-gateway http://pilotlight-gateway.pilotlight-system"), "scheduled requests still go through the gateway Service");
        var pods = KubernetesYaml.Deserialize<V1Service>(Document(yaml, "Service", "pilotlight-gateway-pods"));
        Assert.That((pods.Spec.ClusterIP, pods.Spec.PublishNotReadyAddresses), Is.EqualTo(("None", true)));
        Assert.That(pods.Spec.Selector, Is.EquivalentTo(gateway.Spec.Selector.MatchLabels));
        Assert.That(pods.Spec.Ports.Single().Name, Is.EqualTo("internal"), "the operator's endpoints, on the gateway's internal port");

        // The public Service exposes invocations only; the internal port answers only the operator's ServiceAccount.
        var service = KubernetesYaml.Deserialize<V1Service>(Document(yaml, "Service", "pilotlight-gateway"));
        Assert.That(service.Spec.Ports.Select(p => p.TargetPort.Value), Is.EqualTo(new[] { "http" }));
        var gatewayArgs = gateway.Spec.Template.Spec.Containers.Single().Args;
        Assert.That(string.Join(' ', gatewayArgs), Does.Contain("--internal-port 8081")
            .And.Contain("--internal-callers system:serviceaccount:pilotlight-system:pilotlight-operator"));
        Assert.That(gateway.Spec.Template.Spec.Containers.Single().Ports.Select(p => (p.Name, p.ContainerPort)),
            Is.EquivalentTo(new[] { ("http", 8080), ("admin", 8022), ("internal", 8081) }));
    }

    [TestCase("gateway.internalPort=8080")]
    [TestCase("gateway.internalPort=8022")]
    public async Task An_internal_port_shared_with_another_is_refused(string value)
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => Helm.TemplateAsync(set: [value]));
        Assert.That(error!.Message, Does.Contain("gateway.internalPort must differ"));
    }

    [TestCase("1.20.2", "policy/v1beta1")]
    [TestCase("1.21.0", "policy/v1")]
    [TestCase("1.31.1", "policy/v1")]
    public async Task The_budget_uses_the_policy_version_the_cluster_serves(string kubeVersion, string apiVersion)
    {
        var yaml = await Helm.TemplateAsync(kubeVersion: kubeVersion);
        Assert.That(Document(yaml, "PodDisruptionBudget", "pilotlight-gateway"), Does.Contain($"\napiVersion: {apiVersion}\n"));
    }

    [Test]
    public async Task One_replica_gets_no_budget()
    {
        var single = await Helm.TemplateAsync(set: ["gateway.replicas=1"]);
        Assert.That(Documents(single).Where(d => d.Contains("\nkind: PodDisruptionBudget\n", StringComparison.Ordinal)), Is.Empty,
            "a budget of one would block every node drain");
    }
}
