using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The operator's usage ledger against real pod lifetimes: pods of known
/// lifetimes on simulated nodes are billed GPUs x seconds, within a second each.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class UsageTests
{
    private const string PoolLabel = "pilotlight.dev/test-pool";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [TestCase(7, 1)]
    [TestCase(12, 2)]
    [TestCase(5, 8)]
    public async Task Pods_of_known_lifetimes_are_billed_gpus_times_seconds(int seconds, int gpus)
    {
        var shared = await SharedOperator.GetAsync();
        var plane = shared.Plane;
        using var client = plane.CreateClient();
        var ns = await plane.CreateNamespaceAsync("usage");
        await using var sim = new NodeSimulator(client, new NodeSimulatorOptions { PodNetwork = 6 });
        await sim.StartAsync();
        await sim.AddNodeAsync($"{ns}-h100", GpuNodePreset.H100, new Dictionary<string, string> { [PoolLabel] = ns });

        // The test's own watch times the pod: from its start to the moment it is gone.
        await using var lifetimes = await PodLifetimes.WatchAsync(client, ns);
        var (started, gone) = (lifetimes.Started, lifetimes.Gone);

        var kubectl = new Kubectl(plane.KubeconfigPath);
        string Manifest(int replicas) => $$"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata: {name: metered}
            spec:
              image: example/model:1
              gpu: {type: H100, count: {{gpus}}}
              scaling: {minReplicas: {{replicas}}}
              nodeSelector: {{{PoolLabel}}: {{ns}}}
            """;
        (await kubectl.ApplyAsync(Manifest(1), ns)).EnsureSuccess();
        var uid = await Eventually.GetAsync(() => Task.FromResult(started.Keys.FirstOrDefault()), Timeout, "the pod started");

        // Hold the pod for the lifetime under test, measured on the pod's own start time.
        await Eventually.HoldsAsync(() => DateTime.UtcNow - started[uid] >= TimeSpan.FromSeconds(seconds), Timeout, "lifetime reached");
        (await kubectl.ApplyAsync(Manifest(0), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(() => gone.ContainsKey(uid), Timeout, "the pod is gone");

        var fn = await Eventually.GetAsync(async () =>
        {
            var f = await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", "metered");
            return f.Status?.Usage is { OpenPods.Count: 0, GpuSeconds: > 0 } ? f : null;
        }, Timeout, "the pod's usage closed in status");

        // startTime has whole-second precision, so the test's own lifetime is only good to a second too.
        var lifetime = (gone[uid] - started[uid]).TotalSeconds;
        Assert.That(fn.Status!.Usage!.GpuSeconds, Is.EqualTo(gpus * lifetime).Within(gpus * 1.0));

        // GET /usage, as the operator serves it: with the operator's own (chart-bound) identity.
        using var operatorClient = plane.CreateClient(ChartRbac.OperatorUser);
        var api = new UsageApi(operatorClient, shared.Journal, TimeProvider.System);
        var (report, error, _) = await api.QueryAsync(ns, "metered", started[uid].AddMinutes(-1).ToString("o"), DateTime.UtcNow.ToString("o"), CancellationToken.None);
        Assert.That(error, Is.Null);
        Assert.That(report!.GpuSeconds, Is.EqualTo(fn.Status.Usage.GpuSeconds).Within(0.01), "the window holds the whole pod");
        Assert.That(report.Seconds.Max(p => p.GpuSeconds), Is.EqualTo((double)gpus).Within(1e-6), "one pod of N GPUs is N GPU-seconds a second");

        await sim.DeleteNodesAsync();
    }

    [Test]
    public async Task Usage_answers_only_callers_who_may_get_the_function()
    {
        var shared = await SharedOperator.GetAsync();
        var plane = shared.Plane;
        using var admin = plane.CreateClient();
        var ns = await plane.CreateNamespaceAsync("usage-auth");
        var other = await plane.CreateNamespaceAsync("usage-other");
        foreach (var (where, user) in new[] { (ns, "alice"), (other, "bob") })
        {
            await admin.RbacAuthorizationV1.CreateNamespacedRoleAsync(new V1Role
            {
                Metadata = new V1ObjectMeta { Name = "function-reader" },
                Rules = [new V1PolicyRule { ApiGroups = [Group.Name], Resources = ["gpufunctions"], Verbs = ["get"] }],
            }, where);
            await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
            {
                Metadata = new V1ObjectMeta { Name = "function-reader" },
                RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = "function-reader" },
                Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
            }, where);
        }

        // The operator's endpoints as Program.cs serves them, acting as the operator's ServiceAccount.
        using var operatorClient = plane.CreateClient(ChartRbac.OperatorUser);
        using var access = new UsageAccess(operatorClient);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        builder.WebHost.UseUrls(url);
        await using var web = builder.Build();
        OperatorWeb.Map(web, new UsageApi(operatorClient, shared.Journal, TimeProvider.System), access);
        await web.StartAsync();
        using var http = new HttpClient();

        async Task<HttpStatusCode> AskAsync(string? user, string token = "")
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{url}/usage?namespace={ns}&function=any");
            if (user is not null || token.Length > 0)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", user is null ? token : plane.UserToken(user));
            }

            using var response = await http.SendAsync(request);
            return response.StatusCode;
        }

        var (none, forged, elsewhere, allowed) = (await AskAsync(null), await AskAsync(null, "forged"), await AskAsync("bob"), await AskAsync("alice"));
        Assert.Multiple(() =>
        {
            Assert.That(none, Is.EqualTo(HttpStatusCode.Unauthorized), "no token");
            Assert.That(forged, Is.EqualTo(HttpStatusCode.Unauthorized), "a token the API server does not know");
            Assert.That(elsewhere, Is.EqualTo(HttpStatusCode.Forbidden), "may read functions, but in another namespace");
            Assert.That(allowed, Is.EqualTo(HttpStatusCode.OK), "may get functions there");
        });
        await web.StopAsync();
    }

    [Test]
    public async Task Deleting_the_function_still_bills_its_pods_to_their_deletion()
    {
        var shared = await SharedOperator.GetAsync();
        var plane = shared.Plane;
        using var client = plane.CreateClient();
        var ns = await plane.CreateNamespaceAsync("usage-del");
        await using var sim = new NodeSimulator(client, new NodeSimulatorOptions { PodNetwork = 7 });
        await sim.StartAsync();
        await sim.AddNodeAsync($"{ns}-h100", GpuNodePreset.H100, new Dictionary<string, string> { [PoolLabel] = ns });

        var kubectl = new Kubectl(plane.KubeconfigPath);
        (await kubectl.ApplyAsync($$"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata: {name: doomed}
            spec:
              image: example/model:1
              gpu: {type: H100, count: 2}
              scaling: {minReplicas: 1}
              nodeSelector: {{{PoolLabel}}: {{ns}}}
            """, ns)).EnsureSuccess();

        // Wait until status bills the running pod, then delete the function under it.
        var billed = await Eventually.GetAsync(async () =>
        {
            var f = await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", "doomed");
            return f.Status?.Usage?.OpenPods is { Count: 1 } open ? open[0] : null;
        }, Timeout, "the pod is billed in status");
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", "doomed");
        await Eventually.HoldsAsync(async () => (await client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0, Timeout,
            "the garbage collector removed the pod");
        var gone = DateTime.UtcNow;

        var closed = await Eventually.GetAsync(
            () => Task.FromResult(shared.Journal.Of(ns, "doomed", billed.Start.AddMinutes(-1), gone.AddMinutes(1)).SingleOrDefault()),
            Timeout, "the journal holds the pod of the deleted function");
        Assert.That(closed.Uid, Is.EqualTo(billed.Uid));
        Assert.That(closed.Gpus, Is.EqualTo(2));
        Assert.That(closed.End, Is.EqualTo(gone).Within(TimeSpan.FromSeconds(2)), "billed to the pod's deletion, not the function's");

        await sim.DeleteNodesAsync();
    }
}
