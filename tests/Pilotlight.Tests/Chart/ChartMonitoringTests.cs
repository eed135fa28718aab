using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The chart's PodMonitors select the metering sidecars of function pods and of sandbox pods (a claimed warm pod
/// included), each once, and never a warm pod still waiting in its pool. Needs only helm.
/// </summary>
[TestFixture]
public class ChartMonitoringTests
{
    private static readonly SandboxOptions Options = new() { AllowedRuntimeClasses = ["runsc"], DefaultRuntimeClass = "runsc" };

    private sealed class PodMonitor
    {
        public V1ObjectMeta Metadata { get; set; } = new();

        public PodMonitorSpec Spec { get; set; } = new();
    }

    private sealed class PodMonitorSpec
    {
        public V1LabelSelector Selector { get; set; } = new();
    }

    private static async Task<List<PodMonitor>> PodMonitorsAsync(params string[] set)
    {
        var yaml = await Helm.TemplateAsync(set: ["metrics.podMonitor.enabled=true", .. set]);
        return yaml.Split("\n---\n")
            .Where(d => d.Contains("\nkind: PodMonitor\n", StringComparison.Ordinal))
            .Select(d => KubernetesYaml.Deserialize<PodMonitor>(d))
            .ToList();
    }

    private static bool Selects(V1LabelSelector selector, IDictionary<string, string> labels) =>
        (selector.MatchLabels ?? new Dictionary<string, string>()).All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value)
        && (selector.MatchExpressions ?? []).All(e => e.OperatorProperty switch
        {
            "Exists" => labels.ContainsKey(e.Key),
            "DoesNotExist" => !labels.ContainsKey(e.Key),
            "In" => labels.TryGetValue(e.Key, out var v) && e.Values.Contains(v),
            "NotIn" => !labels.TryGetValue(e.Key, out var v) || !e.Values.Contains(v),
            _ => throw new AssertionException($"unknown operator {e.OperatorProperty}"),
        });

    [Test]
    public async Task Sandbox_meters_are_scraped_as_well_as_function_meters_and_pool_pods_are_not()
    {
        var monitors = await PodMonitorsAsync();
        var sandbox = SandboxPods.MakePod(new Sandbox
        {
            Metadata = new V1ObjectMeta { Name = "scratch", NamespaceProperty = "team-a", Uid = "uid-1" },
            Spec = new SandboxSpec { Image = "python:3.12" },
        }, "runsc", null, Options);
        var pool = SandboxPods.MakePoolPod(new SandboxWarmPool
        {
            Metadata = new V1ObjectMeta { Name = "py", NamespaceProperty = "team-a", Uid = "uid-2" },
            Spec = new SandboxWarmPoolSpec { Image = "python:3.12" },
        }, "runsc", Options);
        var claimed = new Dictionary<string, string>(pool.Metadata.Labels) { [SandboxAnnotations.SandboxLabel] = "scratch" };
        claimed.Remove(SandboxPods.PoolLabel);
        var function = new Dictionary<string, string>
        {
            [FunctionLabels.Function] = "llm", [FunctionLabels.Role] = FunctionLabels.RoleServing, [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
        };

        int Scrapes(IDictionary<string, string> labels) => monitors.Count(m => Selects(m.Spec.Selector, labels));
        Assert.Multiple(() =>
        {
            Assert.That(monitors.Select(m => m.Metadata.Name), Is.EquivalentTo(new[] { "pilotlight-metering", "pilotlight-sandbox-metering" }));
            Assert.That(Scrapes(function), Is.EqualTo(1), "a function pod, once");
            Assert.That(Scrapes(sandbox.Metadata.Labels), Is.EqualTo(1), "a sandbox's own pod, once");
            Assert.That(Scrapes(claimed), Is.EqualTo(1), "a warm pod a sandbox claimed, once");
            Assert.That(Scrapes(pool.Metadata.Labels), Is.Zero, "a warm pod waiting in its pool (its policy admits no scrape)");
            Assert.That(sandbox.Spec.Containers.Single(c => c.Name == FunctionPods.MeterContainer).Ports.Single().Name, Is.EqualTo("metrics"),
                "the port the PodMonitor names");
        });
    }

    [Test]
    public async Task Sandbox_meters_can_be_left_unscraped()
    {
        var monitors = await PodMonitorsAsync("metrics.podMonitor.sandboxes=false");
        Assert.That(monitors.Select(m => m.Metadata.Name), Is.EqualTo(new[] { "pilotlight-metering" }));
    }
}
