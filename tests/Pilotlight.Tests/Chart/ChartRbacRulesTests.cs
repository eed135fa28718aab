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
        "pilotlight.dev | sandboxes | list watch delete",
        "pilotlight.dev | sandboxwarmpools | list watch",
        "pilotlight.dev | gpufunctions/status sandboxes/status sandboxwarmpools/status | patch",
        "pilotlight.dev | gpufunctions/finalizers sandboxes/finalizers sandboxwarmpools/finalizers | update",
        "core | pods | list watch create patch delete",
        "core | services | get create patch",
        "core | events | create",
        "core | nodes | list watch",
        "apps | daemonsets | get create patch delete",
        "networking.k8s.io | networkpolicies | create update",
    ];

    /// <summary>The gateway's ClusterRole.</summary>
    private static readonly string[] GatewayRules =
    [
        "pilotlight.dev | gpufunctions | list watch patch",
        "pilotlight.dev | sandboxes | list watch patch",
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

        var withoutElection = await ChartRbac.RenderAsync(["operator.leaderElection.enabled=false", "operator.replicas=1"]);
        Assert.That(withoutElection.Objects.OfType<V1Role>(), Is.Empty);
    }

    [Test]
    public async Task Each_service_account_is_bound_to_its_own_roles_only()
    {
        var chart = await ChartRbac.RenderAsync();
        Assert.That(chart.RulesOf(ChartRbac.OperatorUser).Select(r => r.Source).Distinct(),
            Is.EquivalentTo(new[] { "ClusterRole/pilotlight-operator", "Role/pilotlight-system/pilotlight-operator-leader-election" }));
        Assert.That(chart.RulesOf(ChartRbac.GatewayUser).Select(r => r.Source).Distinct(), Is.EquivalentTo(new[] { "ClusterRole/pilotlight-gateway" }));
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
