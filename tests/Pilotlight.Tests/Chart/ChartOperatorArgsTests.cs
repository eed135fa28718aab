using k8s;
using k8s.Models;
using Pilotlight.Operator;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The operator's command line as the chart renders it is one the operator accepts. (The real-node suite found a
/// chart flag the operator's parser did not know: the operator exited at start, every replica crash-looping.)
/// </summary>
[TestFixture]
public class ChartOperatorArgsTests
{
    [TestCase]
    [TestCase("sandbox.scheduling.tolerationKeys={example.com/spot,nvidia.com/gpu}", "sandbox.scheduling.nodeSelectorKeys={kubernetes.io/arch}")]
    [TestCase("sandbox.runtimeClasses.default=", "sandbox.metricsNamespace=monitoring", "sandbox.egress.deny={10.0.0.0/8}")]
    public async Task Every_flag_the_chart_passes_the_operator_is_one_it_knows(params string[] set)
    {
        var yaml = await Helm.TemplateAsync(set: set);
        var document = yaml.Split("\n---\n").Single(d => d.Contains("\nkind: Deployment\n", StringComparison.Ordinal)
            && d.Contains("\n  name: pilotlight-operator\n", StringComparison.Ordinal));
        var container = KubernetesYaml.Deserialize<V1Deployment>(document).Spec.Template.Spec.Containers.Single();

        // $(VAR) is the kubelet's expansion of the container's env; any value stands in for it here.
        var args = container.Args.Select(a => a.StartsWith("$(", StringComparison.Ordinal) ? "x" : a).ToList();
        var flags = Flags.Parse(args);

        Assert.That(flags.Error, Is.Null, string.Join(' ', container.Args));
        Assert.That(args, Does.Contain("--sandbox-toleration-keys").And.Contain("--sandbox-node-selector-keys"));
    }
}
