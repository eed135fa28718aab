using k8s.Models;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// What the chart grants for invoke keys (invokeKeys.enabled): the operator lists and watches Secrets and writes one
/// ConfigMap; the gateway watches that ConfigMap and reads no Secret; both are told its name. Off: none of it.
/// </summary>
[TestFixture]
public class ChartInvokeKeysTests
{
    private static string[] Lines(IEnumerable<V1PolicyRule>? rules) =>
    [
        .. (rules ?? []).Select(r =>
            $"{string.Join(' ', (r.ApiGroups ?? []).Select(g => g.Length == 0 ? "core" : g))} | {string.Join(' ', r.Resources ?? [])} | {string.Join(' ', r.Verbs ?? [])}"
            + (r.ResourceNames is { Count: > 0 } names ? $" | names {string.Join(' ', names)}" : "")),
    ];

    [Test]
    public async Task By_default_the_operator_watches_secrets_and_the_gateway_only_the_verifier_configmap()
    {
        var chart = await ChartRbac.RenderAsync();
        Assert.Multiple(() =>
        {
            Assert.That(Lines(chart.ClusterRole("pilotlight-operator-invoke-keys").Rules), Is.EqualTo(new[] { "core | secrets | list watch" }));
            Assert.That(Lines(chart.Role("pilotlight-operator-invoke-keys").Rules), Is.EqualTo(new[]
            {
                "core | configmaps | create",
                "core | configmaps | get update | names pilotlight-invoke-keys",
            }));
            Assert.That(Lines(chart.Role("pilotlight-gateway-invoke-keys").Rules), Is.EqualTo(new[] { "core | configmaps | list watch | names pilotlight-invoke-keys" }));
            Assert.That(chart.RulesOf(ChartRbac.GatewayUser).Where(r => r.Rule.Resources?.Contains("secrets") == true), Is.Empty, "the gateway reads no Secret");
        });
    }

    [Test]
    public async Task Off_no_secret_is_granted_and_no_flag_is_passed()
    {
        var chart = await ChartRbac.RenderAsync(["invokeKeys.enabled=false"]);
        Assert.That(chart.RulesOf(ChartRbac.OperatorUser).Where(r => r.Rule.Resources?.Contains("secrets") == true
                && r.Rule.Verbs.Intersect(["list", "watch"]).Any()),
            Is.Empty, "the operator lists and watches no Secret");
        var rendered = await Helm.TemplateAsync(set: ["invokeKeys.enabled=false"]);
        Assert.That(rendered, Does.Not.Contain("--invoke-keys-configmap"));
    }

    [Test]
    public async Task Both_deployments_name_the_same_configmap()
    {
        var rendered = await Helm.TemplateAsync();
        var flags = rendered.Split('\n').Select((line, i) => (line, i)).Where(l => l.line.Trim() == "- --invoke-keys-configmap")
            .Select(l => rendered.Split('\n')[l.i + 1].Trim()).ToList();
        Assert.That(flags, Is.EqualTo(new[] { "- pilotlight-system/pilotlight-invoke-keys", "- pilotlight-system/pilotlight-invoke-keys" }));
    }
}
