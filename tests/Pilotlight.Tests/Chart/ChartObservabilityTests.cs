using System.Text.Json;
using System.Text.RegularExpressions;
using Pilotlight.Testing;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The chart's dashboard and alerts read series that exist: every metric their queries name is created by one of the
/// components (read from the code that creates them), and the monitors keep the tenant's namespace label. Needs helm.
/// </summary>
[TestFixture]
public partial class ChartObservabilityTests
{
    [GeneratedRegex(@"Create(?<kind>Counter|Gauge|Histogram|Summary)\(\s*""(?<name>[a-z_:][a-z0-9_:]*)""")]
    private static partial Regex Creation();

    [GeneratedRegex(@"\b(?:pilotlight|workqueue|controller_runtime)_[a-z0-9_]+\b")]
    private static partial Regex MetricName();

    /// <summary>Series names the operator, gateway, shim and metering sidecar create, histogram series included.</summary>
    private static HashSet<string> Exported()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in new[] { "operator", "metering", "runtime-shim" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(RepositoryRoot.Path, dir), "*.cs", SearchOption.AllDirectories)
                         .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
            {
                foreach (Match m in Creation().Matches(File.ReadAllText(file)))
                {
                    var name = m.Groups["name"].Value;
                    names.Add(name);
                    if (m.Groups["kind"].Value is "Histogram" or "Summary")
                    {
                        names.UnionWith([name + "_bucket", name + "_sum", name + "_count"]);
                    }
                }
            }
        }

        return names;
    }

    private static IEnumerable<string> Named(IEnumerable<string> queries) => queries.SelectMany(q => MetricName().Matches(q).Select(m => m.Value));

    private static IEnumerable<string> Strings(JsonElement element, string property) => element.ValueKind switch
    {
        JsonValueKind.Object => element.EnumerateObject().SelectMany(p =>
            p.Name == property && p.Value.ValueKind == JsonValueKind.String ? [p.Value.GetString()!] : Strings(p.Value, property)),
        JsonValueKind.Array => element.EnumerateArray().SelectMany(e => Strings(e, property)),
        _ => [],
    };

    [Test]
    public async Task Every_dashboard_query_names_a_metric_a_component_exports()
    {
        var yaml = await Helm.TemplateAsync(set: ["metrics.grafanaDashboard.enabled=true"]);
        var configMap = yaml.Split("\n---\n").Single(d => d.Contains("name: pilotlight-dashboard", StringComparison.Ordinal));
        var map = k8s.KubernetesYaml.Deserialize<k8s.Models.V1ConfigMap>(configMap);
        Assert.That(map.Metadata.Labels, Does.ContainKey("grafana_dashboard").WithValue("1"), "the label Grafana's sidecar loads by default");

        using var dashboard = JsonDocument.Parse(map.Data["pilotlight.json"]);
        var queries = Strings(dashboard.RootElement, "expr").Concat(Strings(dashboard.RootElement, "query")).ToList();
        var named = Named(queries).Distinct().ToList();
        var exported = Exported();

        Assert.That(exported, Does.Contain("pilotlight_gateway_requests_total").And.Contain("pilotlight_function_condition"), "the scan finds the components' metrics");
        Assert.That(named, Is.SubsetOf(exported), "a query names a series nothing exports");
        // What the issue asks the dashboard to show, per function.
        Assert.That(named, Is.SupersetOf(new[]
        {
            "pilotlight_gateway_requests_total", "pilotlight_gateway_request_duration_seconds_bucket", "pilotlight_gateway_starts_total",
            "pilotlight_autoscaler_desired_replicas", "pilotlight_function_gpu_seconds_total", "pilotlight_gpu_utilization_ratio",
        }));
    }

    [Test]
    public async Task Every_alert_names_a_metric_a_component_exports()
    {
        var yaml = await Helm.TemplateAsync(set: ["metrics.prometheusRule.enabled=true", "metrics.podMonitor.enabled=true"]);
        var rule = yaml.Split("\n---\n").Single(d => d.Contains("\nkind: PrometheusRule\n", StringComparison.Ordinal));
        var exprs = rule.Split('\n').Select(l => l.Trim()).Where(l => l.Contains("pilotlight_", StringComparison.Ordinal) && !l.StartsWith('#')).ToList();

        Assert.That(exprs, Is.Not.Empty);
        Assert.That(Named(exprs).Distinct(), Is.SubsetOf(Exported()));
    }

    [Test]
    public async Task Platform_monitors_honour_the_tenant_namespace_label_and_sidecar_monitors_keep_the_pods_own()
    {
        var yaml = await Helm.TemplateAsync(set: ["metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"]);
        var docs = yaml.Split("\n---\n");
        var serviceMonitors = docs.Where(d => d.Contains("\nkind: ServiceMonitor\n", StringComparison.Ordinal)).ToList();
        var podMonitors = docs.Where(d => d.Contains("\nkind: PodMonitor\n", StringComparison.Ordinal)).ToList();

        Assert.That(serviceMonitors, Has.Count.EqualTo(2));
        Assert.That(serviceMonitors, Has.All.Contains("honorLabels: true"), "the operator's and gateway's namespace=\"team-a\" stays namespace");
        Assert.That(podMonitors, Has.Count.EqualTo(2));
        // A tenant's code can answer on its sidecar's port: its labels are not trusted, the pod's namespace is kept.
        Assert.That(podMonitors, Has.None.Contains("honorLabels: true"));
        Assert.That(podMonitors, Has.All.Contains("regex: exported_namespace"));
    }
}
