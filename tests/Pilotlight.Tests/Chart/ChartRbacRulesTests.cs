using k8s.Models;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The roles the chart renders, rule by rule, against the lists below: a
/// change to the chart's RBAC must be made here too, on purpose. Whether the
/// rules are enough and no more is shown on a real API server by the
/// integration suite (Integration.ChartRbacTests and ChartRbacAudit); this
/// needs only helm (tests/chart/check.sh fetches it; make test runs that first).
/// </summary>
[TestFixture]
public class ChartRbacRulesTests
{
    /// <summary>The operator's ClusterRole with the chart's defaults: "groups | resources | verbs".</summary>
    private static readonly string[] OperatorRules =
    [
        "pilotlight.dev | gpufunctions | get list watch",
        "pilotlight.dev | sandboxes | get list watch delete",
        "pilotlight.dev | sandboxwarmpools | list watch",
        "pilotlight.dev | gpufunctions/status sandboxes/status sandboxwarmpools/status | patch",
        "pilotlight.dev | gpufunctions/finalizers sandboxes/finalizers sandboxwarmpools/finalizers | update",
        "core | pods | list watch create patch delete",
        "core | services | get list watch create patch delete",
        "core | events | create patch",
        "core | nodes | list watch",
        "apps | daemonsets | get create patch delete",
        "networking.k8s.io | networkpolicies | create update get list watch delete",
        "pilotlight.dev | gpufunctions/invoke | create",
        "authentication.k8s.io | tokenreviews | create",
        "authorization.k8s.io | subjectaccessreviews | create",
        "admissionregistration.k8s.io | validatingwebhookconfigurations | get update | names pilotlight-operator-webhook",
    ];

    /// <summary>The gateway's ClusterRole.</summary>
    private static readonly string[] GatewayRules =
    [
        "pilotlight.dev | gpufunctions | list watch",
        "pilotlight.dev | sandboxes | list watch",
        "core | pods | list watch",
        "authentication.k8s.io | tokenreviews | create",
        "authorization.k8s.io | subjectaccessreviews | create",
    ];

    /// <summary>The operator's leader-election Role in the release namespace.</summary>
    private static readonly string[] LeaderElectionRules =
    [
        "coordination.k8s.io | leases | create",
        "coordination.k8s.io | leases | get update | names pilotlight-operator",
    ];

    /// <summary>The operator's Role in the release namespace for finding every gateway pod (--gateway-service).</summary>
    private static readonly string[] GatewayDiscoveryRules =
    [
        "core | endpoints | list watch",
    ];

    private static string[] Lines(IEnumerable<V1PolicyRule>? rules) =>
    [
        .. (rules ?? []).Select(r =>
            $"{string.Join(' ', (r.ApiGroups ?? []).Select(g => g.Length == 0 ? "core" : g))} | {string.Join(' ', r.Resources ?? [])} | {string.Join(' ', r.Verbs ?? [])}"
            + (r.ResourceNames is { Count: > 0 } names ? $" | names {string.Join(' ', names)}" : "")
            + (r.NonResourceURLs is { Count: > 0 } urls ? $" | urls {string.Join(' ', urls)}" : "")),
    ];

    [Test]
    public async Task The_operator_cluster_role_grants_exactly_the_declared_rules()
    {
        var chart = await ChartRbac.RenderAsync();
        Assert.That(Lines(chart.ClusterRole("pilotlight-operator").Rules), Is.EqualTo(OperatorRules));
    }

    [Test]
    public async Task Without_the_charts_priority_class_the_operator_may_create_it()
    {
        var chart = await ChartRbac.RenderAsync(["reservationPriorityClass.create=false"]);
        Assert.That(Lines(chart.ClusterRole("pilotlight-operator").Rules), Is.EqualTo(OperatorRules.Append("scheduling.k8s.io | priorityclasses | create")));
        Assert.That(chart.Objects.OfType<V1PriorityClass>(), Is.Empty);
    }

    [Test]
    public async Task Placeholders_run_below_ordinary_pods_and_above_the_cluster_autoscalers_expendable_cut_off()
    {
        // The Cluster Autoscaler treats pods below -10 as expendable: they never trigger a scale-up and do not keep a node.
        var chart = await ChartRbac.RenderAsync();
        var reservation = chart.Objects.OfType<V1PriorityClass>().Single();
        Assert.That(reservation.Value, Is.InRange(-10, -1));
        Assert.That(Pilotlight.Operator.Prewarm.PrewarmResources.PriorityClass().Value, Is.EqualTo(reservation.Value),
            "the class the operator creates when the chart does not is the chart's");
    }

    [Test]
    public async Task The_gateway_cluster_role_grants_exactly_the_declared_rules()
    {
        var chart = await ChartRbac.RenderAsync();
        Assert.That(Lines(chart.ClusterRole("pilotlight-gateway").Rules), Is.EqualTo(GatewayRules));
    }

    [Test]
    public async Task The_leader_election_role_is_limited_to_the_release_namespace_and_its_lease()
    {
        var chart = await ChartRbac.RenderAsync();
        var role = chart.Role("pilotlight-operator-leader-election");
        Assert.That(role.Metadata.NamespaceProperty, Is.EqualTo(Helm.Namespace));
        Assert.That(Lines(role.Rules), Is.EqualTo(LeaderElectionRules));
        Assert.That(chart.RulesOf(ChartRbac.OperatorUser).Where(r => r.Source.StartsWith("Role/", StringComparison.Ordinal)).Select(r => r.Namespace),
            Is.All.EqualTo(Helm.Namespace), "bound by a RoleBinding in the release namespace");

        var withoutElection = await ChartRbac.RenderAsync(["operator.leaderElection.enabled=false", "operator.replicas=1", "admission.webhook.enabled=false",
            "invokeKeys.enabled=false"]);
        Assert.That(withoutElection.Objects.OfType<V1Role>().Select(r => r.Metadata.Name),
            Is.EquivalentTo(new[] { "pilotlight-operator-gateways", "pilotlight-operator-sandbox-agent-tls" }));
    }

    [Test]
    public async Task The_sandbox_agent_role_reaches_only_its_own_secret_and_the_gateway_mounts_only_its_certificate()
    {
        var chart = await ChartRbac.RenderAsync();
        var role = chart.Role("pilotlight-operator-sandbox-agent-tls");
        Assert.That(Lines(role.Rules), Is.EqualTo(new[] { "core | secrets | create", "core | secrets | get update | names pilotlight-sandbox-agent-tls" }));
        Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("get", "", "secrets", null, Helm.Namespace, "someone-elses")), Is.Null, "no other Secret");
        Assert.That(chart.Allowing(ChartRbac.GatewayUser, new ApiRequest("get", "", "secrets", null, Helm.Namespace, "pilotlight-sandbox-agent-tls")), Is.Null,
            "the gateway reads it only through its volume");

        var gateway = k8s.KubernetesYaml.Deserialize<V1Deployment>(await Helm.TemplateAsync(showOnly: ["templates/gateway-deployment.yaml"]));
        var volume = gateway.Spec.Template.Spec.Volumes.Single(v => v.Name == "sandbox-agent-tls");
        Assert.That(volume.Secret.Items.Select(i => i.Key), Is.EquivalentTo(new[] { "tls.crt", "tls.key" }), "never the CA's key");
    }

    [Test]
    public async Task Users_get_pilotlight_through_the_built_in_roles_and_an_invoker_role()
    {
        var rendered = k8s.KubernetesYaml.LoadAllFromString(await Helm.TemplateAsync(showOnly: ["templates/user-roles.yaml"])).OfType<V1ClusterRole>()
            .ToDictionary(r => r.Metadata.Name);

        Assert.Multiple(() =>
        {
            Assert.That(Lines(rendered["pilotlight-invoker"].Rules), Is.EqualTo(new[] { "pilotlight.dev | gpufunctions/invoke | create" }), "invoke, and nothing else");
            Assert.That(rendered["pilotlight-aggregate-edit"].Metadata.Labels, Does.ContainKey("rbac.authorization.k8s.io/aggregate-to-edit")
                .And.ContainKey("rbac.authorization.k8s.io/aggregate-to-admin"));
            Assert.That(Lines(rendered["pilotlight-aggregate-edit"].Rules), Has.Some.EqualTo("pilotlight.dev | gpufunctions/invoke sandboxes/exec | create"));
            Assert.That(rendered["pilotlight-aggregate-view"].Metadata.Labels, Does.ContainKey("rbac.authorization.k8s.io/aggregate-to-view"));
            Assert.That(Lines(rendered["pilotlight-aggregate-view"].Rules), Is.EqualTo(new[] { "pilotlight.dev | gpufunctions sandboxes sandboxwarmpools | get list watch" }),
                "viewers see, and neither invoke nor exec");
        });
    }

    [Test]
    public async Task The_webhook_role_reaches_only_its_own_secret_and_configuration()
    {
        var chart = await ChartRbac.RenderAsync();
        var role = chart.Role("pilotlight-operator-webhook");
        Assert.That(Lines(role.Rules), Is.EqualTo(new[] { "core | secrets | create", "core | secrets | get update | names pilotlight-operator-webhook-tls" }));
        Assert.Multiple(() =>
        {
            Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("get", "", "secrets", null, Helm.Namespace, "pilotlight-operator-webhook-tls")), Is.Not.Null);
            Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("get", "", "secrets", null, Helm.Namespace, "someone-elses")), Is.Null, "no other Secret");
            Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("create", "", "secrets", null, "team-a", null)), Is.Null, "not in tenants' namespaces");
            Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", null, null, "other-webhook")), Is.Null,
                "no other webhook configuration");
        });

        var without = await ChartRbac.RenderAsync(["admission.webhook.enabled=false"]);
        Assert.That(Lines(without.ClusterRole("pilotlight-operator").Rules), Does.Not.Contain(OperatorRules[^1]));
    }

    [Test]
    public async Task The_gateway_discovery_role_reads_endpoints_in_the_release_namespace_only()
    {
        var chart = await ChartRbac.RenderAsync();
        var role = chart.Role("pilotlight-operator-gateways");
        Assert.That(role.Metadata.NamespaceProperty, Is.EqualTo(Helm.Namespace));
        Assert.That(Lines(role.Rules), Is.EqualTo(GatewayDiscoveryRules));
        Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("watch", "", "endpoints", null, Helm.Namespace, null)), Is.Not.Null);
        Assert.That(chart.Allowing(ChartRbac.OperatorUser, new ApiRequest("list", "", "endpoints", null, "team-a", null)), Is.Null,
            "not in other namespaces");
    }

    [Test]
    public async Task Each_service_account_is_bound_to_its_own_roles_only()
    {
        var chart = await ChartRbac.RenderAsync();
        Assert.That(chart.RulesOf(ChartRbac.OperatorUser).Select(r => r.Source).Distinct(),
            Is.EquivalentTo(new[]
            {
                "ClusterRole/pilotlight-operator", "Role/pilotlight-system/pilotlight-operator-leader-election", "Role/pilotlight-system/pilotlight-operator-gateways",
                "Role/pilotlight-system/pilotlight-operator-webhook", "Role/pilotlight-system/pilotlight-operator-sandbox-agent-tls",
                "ClusterRole/pilotlight-operator-invoke-keys", "Role/pilotlight-system/pilotlight-operator-invoke-keys",
            }));
        Assert.That(chart.RulesOf(ChartRbac.GatewayUser).Select(r => r.Source).Distinct(),
            Is.EquivalentTo(new[] { "ClusterRole/pilotlight-gateway", "Role/pilotlight-system/pilotlight-gateway-invoke-keys" }));
        Assert.That(chart.RulesOf("system:serviceaccount:other:pilotlight-operator"), Is.Empty);
    }

    [Test]
    public void Rules_match_requests_the_way_the_api_servers_rbac_does()
    {
        var lease = new BoundRule("Role/ns/x", "ns", new V1PolicyRule
        {
            ApiGroups = ["coordination.k8s.io"], Resources = ["leases"], Verbs = ["get", "update"], ResourceNames = ["mine"],
        });
        Assert.Multiple(() =>
        {
            Assert.That(lease.Allows(new ApiRequest("update", "coordination.k8s.io", "leases", null, "ns", "mine")), Is.True);
            Assert.That(lease.Allows(new ApiRequest("update", "coordination.k8s.io", "leases", null, "ns", "other")), Is.False, "another name");
            Assert.That(lease.Allows(new ApiRequest("update", "coordination.k8s.io", "leases", null, "elsewhere", "mine")), Is.False, "another namespace");
            Assert.That(lease.Allows(new ApiRequest("list", "coordination.k8s.io", "leases", null, "ns", null)), Is.False, "a list names no object");
        });

        var status = new BoundRule("ClusterRole/x", null, new V1PolicyRule { ApiGroups = ["pilotlight.dev"], Resources = ["gpufunctions/status"], Verbs = ["patch"] });
        Assert.Multiple(() =>
        {
            Assert.That(status.Allows(new ApiRequest("patch", "pilotlight.dev", "gpufunctions", "status", "any", "f")), Is.True);
            Assert.That(status.Allows(new ApiRequest("patch", "pilotlight.dev", "gpufunctions", null, "any", "f")), Is.False, "the main resource");
            Assert.That(status.Allows(new ApiRequest("patch", "", "gpufunctions", "status", "any", "f")), Is.False, "another group");
        });
    }
}
