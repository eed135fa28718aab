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

    private static async Task<(List<string> Args, V1Container Container)> OperatorAsync(params string[] set)
    {
        var yaml = await Helm.TemplateAsync(set: set);
        var document = yaml.Split("\n---\n").Single(d => d.Contains("\nkind: Deployment\n", StringComparison.Ordinal)
            && d.Contains("\n  name: pilotlight-operator\n", StringComparison.Ordinal));
        var container = KubernetesYaml.Deserialize<V1Deployment>(document).Spec.Template.Spec.Containers.Single();
        return ([.. container.Args.Select(a => a.StartsWith("$(", StringComparison.Ordinal) ? "x" : a)], container);
    }

    [Test]
    public async Task Workers_and_the_API_rate_limit_come_from_the_values()
    {
        var (defaults, container) = await OperatorAsync();
        var flags = Flags.Parse(defaults);
        Assert.That(flags.Error, Is.Null);
        Assert.That((flags.Workers, flags.KubeApiQps, flags.KubeApiBurst, flags.KubeApiQpsAuto), Is.EqualTo((8, 100.0, 200, true)),
            "auto: 100 a second until the API server shows Priority and Fairness");
        Assert.That(container.ReadinessProbe.HttpGet.Path, Is.EqualTo("/readyz"));
        Assert.That(container.LivenessProbe.HttpGet.Path, Is.EqualTo("/healthz"));

        // --set makes 12.5 a string (the schema wants a number); a values file gives fractions (tests/chart/good).
        var (set, _) = await OperatorAsync("operator.workers=16", "operator.kubeApi.qps=12", "operator.kubeApi.burst=40");
        flags = Flags.Parse(set);
        Assert.That(flags.Error, Is.Null);
        Assert.That((flags.Workers, flags.KubeApiQps, flags.KubeApiBurst, flags.KubeApiQpsAuto), Is.EqualTo((16, 12.0, 40, false)));

        (set, _) = await OperatorAsync("operator.kubeApi.qps=0");
        Assert.That(Flags.Parse(set).KubeApiQps, Is.Zero, "0 turns the limit off");
    }

    [TestCase("operator.workers=0")]
    [TestCase("operator.kubeApi.qps=-1")]
    [TestCase("operator.kubeApi.qps=fast")]
    [TestCase("operator.kubeApi.burst=0")]
    public void The_schema_refuses_out_of_range_values(string set) =>
        Assert.That(async () => await Helm.TemplateAsync(set: [set]), Throws.Exception);

    [TestCase("--workers", "0")]
    [TestCase("--workers", "two")]
    [TestCase("--kube-api-qps", "-3")]
    [TestCase("--kube-api-qps", "NaN")]
    [TestCase("--kube-api-qps", "Auto")]
    [TestCase("--kube-api-burst", "0")]
    [TestCase("--kube-api-burst", "1.5")]
    public void Bad_worker_and_rate_limit_flags_are_refused_with_the_flag_named(string flag, string value) =>
        Assert.That(Flags.Parse([flag, value]).Error, Does.Contain(flag));
}
