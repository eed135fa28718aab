using System.Text;
using k8s;
using k8s.Models;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The chart's RBAC is enough and no more. The shared operator and gateway
/// run as the chart's ServiceAccounts under the chart's rendered roles (see
/// <see cref="SharedOperator"/>), so every scenario of the integration suite
/// is also a test that the roles are enough; the API server's audit log
/// records what they did, and <see cref="ChartRbacAudit"/> compares it with
/// the chart once every other test has run.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class ChartRbacTests
{
    [Test]
    public async Task The_operator_and_the_gateway_act_as_the_charts_service_accounts_and_nothing_more()
    {
        var plane = (await SharedOperator.GetAsync()).Plane;
        using var admin = plane.CreateClient();

        // Both have listed what they watch, as themselves.
        foreach (var user in new[] { ChartRbac.OperatorUser, ChartRbac.GatewayUser })
        {
            await Eventually.HoldsAsync(() => plane.AuditEvents().Any(e => e.User == user && e.Verb == "list" && e.Code == 200),
                TimeSpan.FromSeconds(60), $"{user} listed what it watches");
        }

        // The API server grants them what the chart's roles grant, and not what admin could do.
        async Task<bool> MayAsync(string user, string verb, string group, string resource, string? ns = null, string? name = null, string? subresource = null)
        {
            var review = await admin.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
            {
                Spec = new V1SubjectAccessReviewSpec
                {
                    User = user,
                    Groups = ["system:serviceaccounts", $"system:serviceaccounts:{Helm.Namespace}", "system:authenticated"],
                    ResourceAttributes = new V1ResourceAttributes
                    {
                        Verb = verb, Group = group, Resource = resource, Subresource = subresource, NamespaceProperty = ns, Name = name,
                    },
                },
            });
            return review.Status.Allowed;
        }

        Assert.Multiple(async () =>
        {
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "create", "", "pods", "any"), Is.True, "operator creates pods");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "update", "coordination.k8s.io", "leases", Helm.Namespace, "pilotlight-operator"), Is.True,
                "operator renews its Lease");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "update", "coordination.k8s.io", "leases", Helm.Namespace, "someone-else"), Is.False,
                "operator touches no other Lease");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "watch", "", "endpoints", Helm.Namespace), Is.True, "operator finds the gateway pods");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "list", "", "endpoints", "any"), Is.False, "operator reads no other namespace's Endpoints");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "get", "", "secrets", "any"), Is.False, "operator gets no Secret by name");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "watch", "", "secrets", "any"), Is.True, "operator watches invoke-key Secrets (by label)");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "update", "", "secrets", "any"), Is.False, "operator writes no tenant's Secret");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "list", "", "secrets", "any"), Is.False, "gateway lists no Secrets");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "get", "", "secrets", Helm.Namespace), Is.False, "gateway reads no Secret, not even in its namespace");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "watch", "", "configmaps", Helm.Namespace, "pilotlight-invoke-keys"), Is.True,
                "gateway watches the invoke-key verifiers");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "watch", "", "configmaps", Helm.Namespace), Is.False, "gateway watches no other ConfigMap");
            Assert.That(await MayAsync(ChartRbac.OperatorUser, "update", "pilotlight.dev", "gpufunctions", "any"), Is.False, "operator does not write specs");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "create", "authorization.k8s.io", "subjectaccessreviews"), Is.True, "gateway asks SubjectAccessReviews");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "create", "", "pods", "any"), Is.False, "gateway creates no pods");
            Assert.That(await MayAsync(ChartRbac.GatewayUser, "create", "", "pods", "any", subresource: "exec"), Is.False, "gateway execs into no pod");
        });
    }

    [Test]
    public async Task The_audit_log_names_each_request_as_rbac_sees_it()
    {
        // (A watch is logged when it ends, so the operator's first pod list stands in for its informer.)
        var plane = (await SharedOperator.GetAsync()).Plane;
        var lists = await Eventually.GetAsync(() => Task.FromResult(plane.AuditEvents()
                .Where(e => e.User == ChartRbac.OperatorUser && e.Verb == "list" && e.Request is { ApiGroup: "", Resource: "pods" }).ToList() is { Count: > 0 } l ? l : null),
            TimeSpan.FromSeconds(60), "the operator's pod list in the audit log");
        Assert.That(lists[0].Request!.Namespace, Is.Null, "one informer over all namespaces");
        Assert.That(lists[0].Code, Is.EqualTo(200));
        var chart = await ChartRbac.RenderAsync();
        Assert.That(chart.Allowing(ChartRbac.OperatorUser, lists[0].Request!)?.Source, Is.EqualTo("ClusterRole/pilotlight-operator"));
        Assert.That(chart.Allowing(ChartRbac.GatewayUser, lists[0].Request! with { Verb = "delete" }), Is.Null);
    }
}

/// <summary>
/// Compares the audit log of a whole integration run with the chart's rules,
/// for the operator's and the gateway's ServiceAccounts:
/// (a) every request they made is allowed by a rule of the chart (enough);
/// (b) RBAC forbade none (audit decision "forbid", a 403), save the
///     <see cref="ExpectedDenials"/>; a 403 that RBAC allowed and admission
///     refused (an exceeded ResourceQuota: a scenario) is reported, not failed;
/// (c) every (group, resource, verb) the chart grants them was used by some
///     scenario, or is in <see cref="NotExercised"/> with the reason the tests
///     cannot show it (no more). Only checked after a complete, passing run:
///     a filtered run leaves rules unused by design.
/// Run by <see cref="SharedControlPlane"/>'s OneTimeTearDown, after the shared
/// operator and gateway stopped (so their watches and the Lease release are
/// logged); a violation fails that teardown and with it the dotnet test run.
/// </summary>
internal static class ChartRbacAudit
{
    private const string Operator = ChartRbac.OperatorUser;
    private const string Gateway = ChartRbac.GatewayUser;

    /// <summary>
    /// Granted by the chart, used by the operator or the gateway, but in no
    /// request the audit log can show. Each needs its reason.
    /// </summary>
    private static readonly (string User, Permission Permission, string Reason)[] NotExercised =
    [
        // The OwnerReferencesPermissionEnforcement admission plugin (enabled on the test
        // plane) asks the authorizer for these when a pod, Service, DaemonSet or
        // NetworkPolicy is created or patched with an ownerReference that sets
        // blockOwnerDeletion. That is an authorizer check inside another request, never a
        // request of its own, so it leaves no audit event; the scenarios would fail
        // without it (pods are not admitted).
        (Operator, new("pilotlight.dev", "gpufunctions/finalizers", "update"), "checked by OwnerReferencesPermissionEnforcement, not requested"),
        (Operator, new("pilotlight.dev", "sandboxes/finalizers", "update"), "checked by OwnerReferencesPermissionEnforcement, not requested"),
        (Operator, new("pilotlight.dev", "sandboxwarmpools/finalizers", "update"), "checked by OwnerReferencesPermissionEnforcement, not requested"),

        // GpuFunctionReconciler.EnsureServiceAsync patches a function's Service whose selector or
        // target port drifted from what the operator wants (edited by hand, or left by an older
        // operator). The operator does not watch Services, so a scenario that edits one would only
        // see it repaired at the function's next reconcile: no test does.
        (Operator, new("", "services", "patch"), "repairs a drifted Service; no scenario edits one"),

        // The operator's scheduled requests go through the gateway with the operator's token; the gateway asks a
        // SubjectAccessReview whether that user may create gpufunctions/invoke. A check inside the gateway's request,
        // never the operator's own (ScheduleTests fails without the rule: the gateway answers 403).
        (Operator, new("pilotlight.dev", "gpufunctions/invoke", "create"), "checked by the gateway's SubjectAccessReview, not requested"),
    ];

    /// <summary>Requests the operator or the gateway makes knowing they may be refused, and handles the 403.</summary>
    private static readonly (string User, Permission Permission, string Reason)[] ExpectedDenials =
    [
        // GpuFunctionReconciler.EnsurePriorityClassAsync creates pilotlight-reservation once
        // before the first placeholder; the chart installs that PriorityClass
        // (reservationPriorityClass.create, the default) and so grants no create, and the
        // operator takes the 403 as "installed by the chart".
        (Operator, new("scheduling.k8s.io", "priorityclasses", "create"), "the chart installs the PriorityClass; the operator tolerates the 403"),
        // GatewayHardeningTests tries, as the gateway, to patch a GpuFunction and a Sandbox: the chart gives the
        // gateway no write at all, and the test expects these 403s.
        (Gateway, new("pilotlight.dev", "gpufunctions", "patch"), "the gateway may not write a function (a test tries)"),
        (Gateway, new("pilotlight.dev", "sandboxes", "patch"), "the gateway may not write a sandbox (a test tries)"),
    ];

    /// <summary>Checks the run's audit log against the chart; fails (NUnit assertion) on any violation.</summary>
    /// <param name="plane">The shared control plane, still running.</param>
    /// <param name="complete">True when every test of the integration suite ran and passed: only then is an unused rule a finding.</param>
    public static async Task VerifyAsync(ControlPlane plane, bool complete)
    {
        var chart = await ChartRbac.RenderAsync();

        // A watch is logged when it ends: the operator and gateway just stopped, and the API
        // server writes their watches' events as it notices. Wait until the log stops growing.
        var events = plane.AuditEvents();
        for (int i = 0, quiet = 0; i < 40 && quiet < 4; i++)
        {
            await Task.Delay(500);
            var now = plane.AuditEvents();
            quiet = now.Count == events.Count ? quiet + 1 : 0;
            events = now;
        }

        var (report, problems) = Compare(chart, events, complete);
        TestContext.Progress.WriteLine(report);
        try
        {
            var artifacts = Path.Combine(RepositoryRoot.Path, ".artifacts");
            Directory.CreateDirectory(artifacts);
            await File.WriteAllTextAsync(Path.Combine(artifacts, "chart-rbac.txt"), report);
        }
        catch (IOException)
        {
        }

        if (problems.Count > 0)
        {
            Assert.Fail($"The chart's RBAC does not match what the operator and gateway do ({problems.Count} problem(s)):\n  "
                + string.Join("\n  ", problems) + "\n\n" + report);
        }
    }

    /// <summary>The report (what each used, by which rule; what was granted and not used) and the problems found.</summary>
    public static (string Report, List<string> Problems) Compare(ChartRbac chart, IReadOnlyList<AuditEvent> events, bool complete)
    {
        var problems = new List<string>();
        var report = new StringBuilder()
            .AppendLine($"== Chart RBAC against the audit log ({events.Count} events){(complete ? "" : "; partial run: unused rules are listed, not checked")}");
        foreach (var (label, user) in new[] { ("operator", Operator), ("gateway", Gateway) })
        {
            var mine = events.Where(e => e.User == user).ToList();
            var rules = chart.RulesOf(user);
            report.AppendLine($"{label} ({user}): {mine.Select(e => e.AuditId).Distinct().Count()} requests");

            // (a) and (b): every request, grouped by what RBAC sees.
            foreach (var group in mine.Where(e => e.Request is not null)
                         .GroupBy(e => new Permission(e.Request!.ApiGroup, e.Request.FullResource, e.Request.Verb))
                         .OrderBy(g => g.Key))
            {
                var count = group.Select(e => e.AuditId).Distinct().Count();
                var denied = group.Where(e => e.Forbidden).Select(e => e.AuditId).Distinct().Count();
                var refusedByAdmission = group.Where(e => e.Code == 403 && !e.Forbidden).Select(e => e.AuditId).Distinct().Count();
                var expected = ExpectedDenials.FirstOrDefault(d => d.User == user && d.Permission == group.Key);
                var notGranted = group.Where(e => chart.Allowing(user, e.Request!) is null).ToList();
                var by = group.Select(e => chart.Allowing(user, e.Request!)?.Source).OfType<string>().Distinct().Order();
                report.AppendLine($"  used {group.Key,-58} x{count,-5}{(denied > 0 ? $" forbidden x{denied}" : "")}"
                    + $"{(refusedByAdmission > 0 ? $" (403 from admission, not RBAC, x{refusedByAdmission})" : "")} <- {string.Join(", ", by.DefaultIfEmpty("(no chart rule)"))}"
                    + (expected.Reason is not null ? $"  [expected denial: {expected.Reason}]" : ""));
                if (expected.Reason is not null)
                {
                    continue;
                }

                if (notGranted.Count > 0)
                {
                    var e = notGranted[0];
                    problems.Add($"{label}: {group.Key} is used but no chart rule allows it (e.g. {e.Verb} {e.RequestUri} -> {e.Code})");
                }

                if (denied > 0)
                {
                    problems.Add($"{label}: {group.Key} was forbidden by RBAC x{denied} (e.g. {group.First(e => e.Forbidden).RequestUri})");
                }
            }

            foreach (var group in mine.Where(e => e.Request is null).GroupBy(e => $"{e.Verb} {e.RequestUri.Split('?')[0]}").OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                report.AppendLine($"  non-resource {group.Key} x{group.Select(e => e.AuditId).Distinct().Count()} (granted to every authenticated user by the built-in roles)");
                if (group.Any(e => e.Forbidden))
                {
                    problems.Add($"{label}: {group.Key} was forbidden by RBAC");
                }
            }

            // (c): every permission of every rule, and whether a request used it through that rule.
            foreach (var rule in rules)
            {
                foreach (var permission in rule.Permissions().Distinct())
                {
                    var used = mine.Any(e => e.Request is { } r && !e.Forbidden && rule.Allows(r) && Matches(permission, r));
                    var allowed = NotExercised.FirstOrDefault(n => n.User == user && n.Permission == permission);
                    if (used)
                    {
                        if (allowed.Reason is not null && complete)
                        {
                            problems.Add($"{label}: {permission} is in ChartRbacAudit.NotExercised but was used: take it out of the list");
                        }

                        continue;
                    }

                    report.AppendLine($"  granted, not used: {permission} ({rule.Source})"
                        + (allowed.Reason is not null ? $"  [not exercised: {allowed.Reason}]" : ""));
                    if (allowed.Reason is null && complete)
                    {
                        problems.Add($"{label}: the chart grants {permission} ({rule.Source}) and no scenario used it: remove it from the chart, "
                            + "or list it in ChartRbacAudit.NotExercised with the reason the tests cannot use it");
                    }
                }
            }

            if (complete)
            {
                var granted = rules.SelectMany(r => r.Permissions()).ToHashSet();
                foreach (var (_, permission, _) in NotExercised.Where(n => n.User == user && !granted.Contains(n.Permission)))
                {
                    problems.Add($"{label}: {permission} is in ChartRbacAudit.NotExercised but the chart does not grant it: take it out of the list");
                }

                foreach (var (_, permission, _) in ExpectedDenials.Where(d => d.User == user
                             && !mine.Any(e => e.Forbidden && e.Request is { } r && Matches(d.Permission, r))))
                {
                    problems.Add($"{label}: {permission} is in ChartRbacAudit.ExpectedDenials but was never refused: take it out of the list");
                }
            }
        }

        return (report.ToString(), problems);
    }

    private static bool Matches(Permission p, ApiRequest r) =>
        (p.ApiGroup == "*" || p.ApiGroup == r.ApiGroup) && (p.Resource == "*" || p.Resource == r.FullResource) && (p.Verb == "*" || p.Verb == r.Verb);
}
