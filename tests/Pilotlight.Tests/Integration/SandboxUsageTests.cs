using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Sandboxes billed by the operator's ledger on the real control plane: a GPU sandbox's pod (running the agent as a
/// real process) is billed GPUs x lifetime in the Sandbox's <c>status.usage</c> and the journal, and
/// <c>GET /usage?sandbox=</c> answers for it only to callers who may get that Sandbox.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class SandboxUsageTests() : ServingFixture(58, "sbxuse")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [OneTimeSetUp]
    public Task SetUpAsync() => AddPoolNodeAsync(GpuNodePreset.H100, "h100");

    private Task<Sandbox> GetAsync(string ns, string name) =>
        Client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", name);

    private async Task AllowAsync(string ns, string user, string resource)
    {
        await Client.RbacAuthorizationV1.CreateNamespacedRoleAsync(new V1Role
        {
            Metadata = new V1ObjectMeta { Name = $"{resource}-reader-{user}" },
            Rules = [new V1PolicyRule { ApiGroups = [Group.Name], Resources = [resource], Verbs = ["get"] }],
        }, ns);
        await Client.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = $"{resource}-reader-{user}" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = $"{resource}-reader-{user}" },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);

        // The authorizer learns of the binding from its own cache: ask until it knows, so the usage endpoint's
        // cached decision is not taken before then.
        await Eventually.HoldsAsync(async () => (await Client.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
        {
            Spec = new V1SubjectAccessReviewSpec
            {
                User = user,
                ResourceAttributes = new V1ResourceAttributes { Group = Group.Name, Resource = resource, Verb = "get", NamespaceProperty = ns },
            },
        })).Status.Allowed, Timeout, $"{user} may get {resource}");
    }

    [Test]
    public async Task A_gpu_sandbox_is_billed_gpu_seconds_which_usage_shows_only_to_callers_who_may_get_it()
    {
        var shared = await SharedOperator.GetAsync();
        var ns = await Plane.CreateNamespaceAsync("sbx-usage");

        // The test's own watch times the sandbox's pod: from its start to the moment it is gone.
        await using var lifetimes = await PodLifetimes.WatchAsync(Client, ns);
        var (started, gone) = (lifetimes.Started, lifetimes.Gone);

        (await Kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata: {name: trainer}
            spec:
              image: python:3.12-slim
              gpu: {type: H100, count: 2}
              resources: {cpu: "2", memory: 4Gi}
              timeout: 10m
            """, ns)).EnsureSuccess();

        // Billed while it runs: status carries the open pod with its GPUs and requests.
        var open = await Eventually.GetAsync(async () => (await GetAsync(ns, "trainer")).Status?.Usage?.OpenPods is { Count: 1 } pods ? pods[0] : null,
            Timeout, "the sandbox's pod is billed in status");
        Assert.That(open.Gpus, Is.EqualTo(2));
        Assert.That(open.Cpu, Is.GreaterThanOrEqualTo(2), "the sandbox's CPU request, plus the meter's");
        var sandbox = await GetAsync(ns, "trainer");
        Assert.That(open.Start, Is.GreaterThanOrEqualTo(sandbox.Metadata.CreationTimestamp!.Value), "never billed before the sandbox existed");

        // Hold it a few seconds, then end it on request; the pod is deleted and its bill closes.
        await Eventually.HoldsAsync(() => started.ContainsKey(open.Uid) && DateTime.UtcNow - open.Start >= TimeSpan.FromSeconds(4), Timeout,
            "lifetime reached");
        (await Kubectl.RunAsync(["annotate", "sandbox", "trainer", "-n", ns, $"{SandboxAnnotations.TerminateRequested}=test"])).EnsureSuccess();
        await Eventually.HoldsAsync(() => gone.ContainsKey(open.Uid), Timeout, "the pod is gone");
        var closed = await Eventually.GetAsync(async () => (await GetAsync(ns, "trainer")).Status?.Usage is { OpenPods.Count: 0, GpuSeconds: > 0 } u ? u : null,
            Timeout, "the pod's usage closed in status");

        // startTime has whole-second precision, so the test's own lifetime is good to a second too.
        var lifetime = (gone[open.Uid] - open.Start).TotalSeconds;
        Assert.Multiple(() =>
        {
            Assert.That(closed.GpuSeconds, Is.EqualTo(2 * lifetime).Within(2.0), "2 GPUs x lifetime");
            Assert.That(closed.ClosedGpuSeconds, Is.EqualTo(closed.GpuSeconds).Within(0.001));
            Assert.That(closed.CpuSeconds, Is.EqualTo(open.Cpu * lifetime).Within(open.Cpu), "CPU requests x lifetime");
        });
        var journal = shared.Journal.Of(ns, "trainer", open.Start.AddMinutes(-1), DateTime.UtcNow.AddMinutes(1), Sandbox.KindName).Single();
        Assert.That((journal.Uid, journal.Gpus), Is.EqualTo((open.Uid, 2)));
        Assert.That(shared.Journal.Of(ns, "trainer", open.Start.AddMinutes(-1), DateTime.UtcNow.AddMinutes(1)), Is.Empty,
            "recorded as a sandbox's, not as a function's of the same name");

        // GET /usage as the operator serves it, acting as the operator's ServiceAccount: alice may get sandboxes
        // here, bob only gpufunctions.
        await AllowAsync(ns, "alice", "sandboxes");
        await AllowAsync(ns, "bob", "gpufunctions");
        using var operatorClient = Plane.CreateClient(ChartRbac.OperatorUser);
        using var access = new UsageAccess(operatorClient);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        builder.WebHost.UseUrls(url);
        await using var web = builder.Build();
        OperatorWeb.Map(web, new UsageApi(operatorClient, shared.Journal, TimeProvider.System), access);
        await web.StartAsync();

        var window = $"from={Uri.EscapeDataString(open.Start.AddMinutes(-1).ToString("o"))}&to={Uri.EscapeDataString(DateTime.UtcNow.AddSeconds(1).ToString("o"))}";
        async Task<(HttpStatusCode Status, string Body)> AskAsync(string user, string query)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{url}/usage?namespace={ns}&{query}&{window}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Plane.UserToken(user));
            using var response = await Http.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var (allowedStatus, body) = await AskAsync("alice", "sandbox=trainer");
        var (bobStatus, bobBody) = await AskAsync("bob", "sandbox=trainer");
        var (asFunction, _) = await AskAsync("alice", "function=trainer");
        var (both, _) = await AskAsync("alice", "sandbox=trainer&function=trainer");
        Assert.Multiple(() =>
        {
            Assert.That(allowedStatus, Is.EqualTo(HttpStatusCode.OK), body);
            Assert.That(bobStatus, Is.EqualTo(HttpStatusCode.Forbidden), "may get functions, not sandboxes");
            Assert.That(bobBody, Does.Contain("sandboxes"));
            Assert.That(asFunction, Is.EqualTo(HttpStatusCode.Forbidden), "a sandbox's reader is not a function's");
            Assert.That(both, Is.EqualTo(HttpStatusCode.BadRequest));
        });

        using var report = JsonDocument.Parse(body);
        Assert.That(report.RootElement.GetProperty("sandbox").GetString(), Is.EqualTo("trainer"));
        Assert.That(report.RootElement.TryGetProperty("function", out _), Is.False);
        Assert.That(report.RootElement.GetProperty("gpuSeconds").GetDouble(), Is.EqualTo(closed.GpuSeconds).Within(0.01), "the window holds the whole pod");
        Assert.That(report.RootElement.GetProperty("seconds").EnumerateArray().Max(p => p.GetProperty("gpuSeconds").GetDouble()),
            Is.EqualTo(2.0).Within(1e-6), "two GPUs are two GPU-seconds a second");

        await web.StopAsync();
    }

    [Test]
    public async Task A_sandbox_deleted_with_its_ending_is_still_billed_to_its_pods_deletion()
    {
        var shared = await SharedOperator.GetAsync();
        var ns = await Plane.CreateNamespaceAsync("sbx-usage-del");
        (await Kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata: {name: brief}
            spec:
              image: python:3.12-slim
              gpu: {type: H100, count: 1}
              timeout: 10m
              expiryPolicy: Delete
            """, ns)).EnsureSuccess();
        var open = await Eventually.GetAsync(async () => (await GetAsync(ns, "brief")).Status?.Usage?.OpenPods is { Count: 1 } pods ? pods[0] : null,
            Timeout, "the sandbox's pod is billed in status");

        // Ending deletes the Sandbox at once; no status is left, so the journal closes the pod when it is gone.
        (await Kubectl.RunAsync(["annotate", "sandbox", "brief", "-n", ns, $"{SandboxAnnotations.TerminateRequested}=test"])).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0, Timeout, "the pod is gone");
        var gone = DateTime.UtcNow;
        var closed = await Eventually.GetAsync(
            () => Task.FromResult(shared.Journal.Of(ns, "brief", open.Start.AddMinutes(-1), gone.AddMinutes(1), Sandbox.KindName).SingleOrDefault()),
            Timeout, "the journal holds the deleted sandbox's pod");
        Assert.That((closed.Uid, closed.Gpus), Is.EqualTo((open.Uid, 1)));
        Assert.That(closed.End, Is.EqualTo(gone).Within(TimeSpan.FromSeconds(2)), "billed to the pod's deletion");
        var left = await Client.CustomObjects.ListNamespacedCustomObjectAsync<JsonElement>(Group.Name, Group.Version, ns, "sandboxes");
        Assert.That(left.GetProperty("items").GetArrayLength(), Is.Zero, "expiryPolicy Delete removed the Sandbox");
    }
}
