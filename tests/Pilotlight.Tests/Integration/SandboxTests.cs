using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Sandboxes on the real control plane: the hardened pod and its
/// NetworkPolicy, exec and files through the gateway authorised by the API
/// server (TokenReview and SubjectAccessReview against the shipped
/// ClusterRole), and every way a sandbox ends. Simulated pods run the agent
/// (the shim in sandbox mode) as a real process.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class SandboxTests
{
    private const string PoolLabel = "pilotlight.dev/test-pool";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private ControlPlane _plane = null!;
    private string _gateway = "";
    private IKubernetes _client = null!;
    private Kubectl _kubectl = null!;
    private NodeSimulator _sim = null!;
    private HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        var shared = await SharedOperator.GetAsync();
        _plane = shared.Plane;
        _gateway = shared.GatewayUrl;
        _client = _plane.CreateClient();
        _kubectl = new Kubectl(_plane.KubeconfigPath);
        _sim = new NodeSimulator(_client, new NodeSimulatorOptions
        {
            PodNetwork = 9,
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(_plane.Directory, "pods")),
        });
        await _sim.StartAsync();
        // A CPU node for sandboxes: the simulated GPU nodes carry a taint that sandboxes without GPUs do not tolerate.
        await _sim.AddNodeAsync($"sbx-{Guid.NewGuid():N}"[..12], GpuNodePreset.CpuOnly);
        (await _kubectl.RunAsync(["apply", "-f", Path.Combine(RepositoryRoot.Path, "samples", "rbac", "sandbox-user.yaml")])).EnsureSuccess();
        _http = new HttpClient { Timeout = TimeSpan.FromMinutes(1) };
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        _http.Dispose();
        await _sim.DeleteNodesAsync();
        await _sim.DisposeAsync();
        _client.Dispose();
    }

    private static string Manifest(string name, string extra = "") => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: Sandbox
        metadata: {"{"}name: {name}{"}"}
        spec:
          image: python:3.12-slim
        {extra}
        """;

    private Task<Sandbox> GetAsync(string ns, string name) =>
        _client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", name);

    private static V1Condition? Condition(Sandbox s, string type) => s.Status?.Conditions?.FirstOrDefault(c => c.Type == type);

    private async Task<string> CreateAsync(string prefix, string name, string extra = "")
    {
        var ns = await _plane.CreateNamespaceAsync(prefix);
        (await _kubectl.ApplyAsync(Manifest(name, extra), ns)).EnsureSuccess();
        return ns;
    }

    private Task WaitReadyAsync(string ns, string name) => Eventually.HoldsAsync(async () =>
        Condition(await GetAsync(ns, name), SandboxConditions.Ready)?.Status == "True", Timeout, $"sandbox {name} is ready");

    private async Task<V1Condition> FinishedAsync(string ns, string name) => await Eventually.GetAsync(async () =>
        Condition(await GetAsync(ns, name), SandboxConditions.Finished) is { Status: "True" } c ? c : null, Timeout, $"sandbox {name} finished");

    private async Task GrantAsync(string ns, string user) => await _client.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
    {
        Metadata = new V1ObjectMeta { Name = $"sandbox-user-{user}" },
        RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-sandbox-user" },
        Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
    }, ns);

    private async Task<HttpResponseMessage> CallAsync(HttpMethod method, string ns, string name, string operation, string? user, HttpContent? body = null)
    {
        using var request = new HttpRequestMessage(method, $"{_gateway}/_sandbox/{ns}/{name}/{operation}") { Content = body };
        if (user is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _plane.UserToken(user));
        }

        return await _http.SendAsync(request);
    }

    private static StringContent Json(object value) => new(JsonSerializer.Serialize(value), Encoding.UTF8, "application/json");

    /// <summary>Runs argv through the gateway; stdout, stderr and the exit code from the streamed lines.</summary>
    private async Task<(string Stdout, string Stderr, int? Exit)> ExecAsync(string ns, string name, string user, params string[] argv)
    {
        var (stdout, stderr, exit, _) = await ExecRequestAsync(ns, name, user, new { argv });
        return (stdout, stderr, exit);
    }

    private async Task<(string Stdout, string Stderr, int? Exit, bool TimedOut)> ExecRequestAsync(string ns, string name, string user, object request)
    {
        using var response = await CallAsync(HttpMethod.Post, ns, name, "exec", user, Json(request));
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
        var transcript = ExecTranscript.Parse(text);
        return (transcript.Stdout, transcript.Stderr, transcript.Exit, transcript.TimedOut);
    }

    [Test]
    public async Task The_pod_is_hardened_and_fenced_whatever_the_spec_says()
    {
        var ns = await CreateAsync("sbx-hard", "hard", "  network: {allowCidrs: [10.20.0.0/16], allowDns: true}");
        await WaitReadyAsync(ns, "hard");
        var pod = await _client.CoreV1.ReadNamespacedPodAsync("hard", ns);
        var c = pod.Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer);

        Assert.Multiple(() =>
        {
            Assert.That(pod.Spec.AutomountServiceAccountToken, Is.False);
            Assert.That(pod.Spec.RuntimeClassName, Is.EqualTo("runsc"), "the operator's default");
            Assert.That(pod.Spec.RestartPolicy, Is.EqualTo("Never"));
            Assert.That(pod.Spec.SecurityContext.RunAsNonRoot, Is.True);
            Assert.That(pod.Spec.SecurityContext.SeccompProfile.Type, Is.EqualTo("RuntimeDefault"));
            Assert.That(c.SecurityContext.AllowPrivilegeEscalation, Is.False);
            Assert.That(c.SecurityContext.ReadOnlyRootFilesystem, Is.True);
            Assert.That(c.SecurityContext.Capabilities.Drop, Is.EqualTo(new[] { "ALL" }));
            Assert.That(c.Resources.Limits.Keys, Is.SupersetOf(new[] { "cpu", "memory" }));
            Assert.That(c.Resources.Requests["memory"], Is.EqualTo(c.Resources.Limits["memory"]));
            Assert.That(c.Command, Is.EqualTo(new[] { SandboxPods.AgentPath }), "the agent is the entrypoint");
            Assert.That(pod.Spec.Volumes.Single(v => v.Name == "workspace").EmptyDir.SizeLimit.ToString(), Is.EqualTo("1Gi"));
        });

        var policy = await _client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("hard-sandbox", ns);
        Assert.That(policy.Spec.PolicyTypes, Is.EquivalentTo(new[] { "Ingress", "Egress" }));
        Assert.That(policy.Spec.Ingress.Single().Ports.Single().Port.Value, Is.EqualTo("8099"));
        Assert.That(policy.Spec.Ingress.Single().FromProperty.Single().PodSelector.MatchLabels["app.kubernetes.io/name"], Is.EqualTo("pilotlight-gateway"));
        Assert.That(policy.Spec.Egress.SelectMany(e => e.To).Select(t => t.IpBlock?.Cidr).OfType<string>(), Is.EqualTo(new[] { "10.20.0.0/16" }));
        Assert.That(policy.Spec.Egress.SelectMany(e => e.Ports ?? []).Select(p => p.Port.Value), Is.EquivalentTo(new[] { "53", "53" }), "DNS only when asked");

        var closed = await CreateAsync("sbx-closed", "closed");
        var fenced = await Eventually.GetAsync(async () =>
        {
            try
            {
                return await _client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("closed-sandbox", closed);
            }
            catch (k8s.Autorest.HttpOperationException)
            {
                return null;
            }
        }, Timeout, "the policy of a sandbox with no network");
        Assert.That(fenced.Spec.PolicyTypes, Does.Contain("Egress"), "egress is policed");
        Assert.That(fenced.Spec.Egress ?? [], Is.Empty, "and no egress rule allows anything by default");
    }

    [Test]
    public async Task A_runtime_class_outside_the_allowlist_is_an_invalid_spec_and_starts_nothing()
    {
        var ns = await CreateAsync("sbx-rc", "runc", "  runtimeClassName: runc");
        var ready = await Eventually.GetAsync(async () =>
            Condition(await GetAsync(ns, "runc"), SandboxConditions.Ready) is { Reason: SandboxConditions.Reasons.InvalidSpec } c ? c : null,
            Timeout, "InvalidSpec");
        Assert.That(ready.Message, Does.Contain("'runc' is not allowed").And.Contain("runsc, kata"));
        var invalid = await GetAsync(ns, "runc");
        Assert.That((Condition(invalid, SandboxConditions.Stalled)?.Status, Condition(invalid, SandboxConditions.Stalled)?.Reason),
            Is.EqualTo(("True", SandboxConditions.Reasons.InvalidSpec)), "kstatus reads it as Failed");
        Assert.That((await _client.CoreV1.ListNamespacedPodAsync(ns)).Items, Is.Empty);
    }

    [Test]
    public async Task Exec_and_files_go_through_the_gateway_for_a_user_rbac_allows_and_no_one_else()
    {
        var ns = await CreateAsync("sbx-exec", "work", "  idleTimeout: 2m");
        await GrantAsync(ns, "alice");
        await WaitReadyAsync(ns, "work");

        using (var anonymous = await CallAsync(HttpMethod.Post, ns, "work", "exec", null, Json(new { argv = new[] { "true" } })))
        {
            Assert.That(anonymous.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }

        using (var bob = await CallAsync(HttpMethod.Post, ns, "work", "exec", "bob", Json(new { argv = new[] { "true" } })))
        {
            Assert.That(bob.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(await bob.Content.ReadAsStringAsync(), Does.Contain("bob may not create sandboxes/exec"));
        }

        using (var forged = new HttpRequestMessage(HttpMethod.Post, $"{_gateway}/_sandbox/{ns}/work/exec") { Content = Json(new { argv = new[] { "true" } }) })
        {
            forged.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-a-token");
            using var response = await _http.SendAsync(forged);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }

        var (stdout, stderr, exit) = await ExecAsync(ns, "work", "alice", "/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3");
        Assert.That((stdout, stderr, exit), Is.EqualTo(("to-out\n", "to-err\n", (int?)3)));

        // Alice's grant is for this namespace only: the same call elsewhere is refused before any lookup.
        using (var elsewhere = await CallAsync(HttpMethod.Post, "default", "work", "exec", "alice", Json(new { argv = new[] { "true" } })))
        {
            Assert.That(elsewhere.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        }

        var fed = await ExecRequestAsync(ns, "work", "alice", new { argv = new[] { "/bin/sh", "-c", "tr a-z A-Z" }, stdin = "through the gateway\n" });
        Assert.That((fed.Stdout, fed.Exit, fed.TimedOut), Is.EqualTo(("THROUGH THE GATEWAY\n", (int?)0, false)), "stdin reaches the process");

        var slow = await ExecRequestAsync(ns, "work", "alice", new { argv = new[] { "/bin/sh", "-c", "echo started; sleep 30" }, timeoutSeconds = 1 });
        Assert.That((slow.Stdout, slow.Exit, slow.TimedOut), Is.EqualTo(("started\n", (int?)null, true)), "the exec timeout kills the process and says so");

        using (var put = await CallAsync(HttpMethod.Put, ns, "work", "files?path=src/main.py", "alice", new StringContent("print(6 * 7)\n")))
        {
            Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.Created), await put.Content.ReadAsStringAsync());
        }

        using (var get = await CallAsync(HttpMethod.Get, ns, "work", "files?path=src/main.py", "alice"))
        {
            Assert.That(await get.Content.ReadAsStringAsync(), Is.EqualTo("print(6 * 7)\n"));
        }

        using (var list = await CallAsync(HttpMethod.Get, ns, "work", "files/list?path=src", "alice"))
        {
            Assert.That(await list.Content.ReadAsStringAsync(), Does.Contain("\"main.py\""));
        }

        // 40 MiB sent chunked: past Kestrel's default body limit, within the sandbox's file cap.
        using (var big = await CallAsync(HttpMethod.Put, ns, "work", "files?path=big.bin", "alice", new StreamContent(new Zeros(40L << 20))))
        {
            Assert.That(big.StatusCode, Is.EqualTo(HttpStatusCode.Created), await big.Content.ReadAsStringAsync());
        }

        using (var tooBig = new HttpRequestMessage(HttpMethod.Put, $"{_gateway}/_sandbox/{ns}/work/files?path=huge.bin"))
        {
            tooBig.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _plane.UserToken("alice"));
            tooBig.Headers.ExpectContinue = true;
            tooBig.Content = new StreamContent(new Zeros(SandboxApi.MaxBodyBytes + 1));
            tooBig.Content.Headers.ContentLength = SandboxApi.MaxBodyBytes + 1;
            using var refused = await _http.SendAsync(tooBig);
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
            Assert.That(await refused.Content.ReadAsStringAsync(), Does.Contain("over the limit"), "a clear error, not a broken connection");
        }

        using (var escape = await CallAsync(HttpMethod.Get, ns, "work", "files?path=../../etc/passwd", "alice"))
        {
            Assert.That(escape.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        }

        var (cat, _, catExit) = await ExecAsync(ns, "work", "alice", "/bin/sh", "-c", "cat src/main.py");
        Assert.That((cat, catExit), Is.EqualTo(("print(6 * 7)\n", (int?)0)), "exec runs in the workspace the files went to");

        var activity = await GetAsync(ns, "work");
        Assert.That(activity.Metadata.Annotations, Does.ContainKey(SandboxReconciler.LastActivityAnnotation));

        using (var terminate = await CallAsync(HttpMethod.Post, ns, "work", "terminate", "alice"))
        {
            Assert.That(terminate.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        var finished = await FinishedAsync(ns, "work");
        Assert.That(finished.Reason, Is.EqualTo(SandboxConditions.Reasons.Terminated));
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0, Timeout, "the pod is gone");
        using var afterwards = await CallAsync(HttpMethod.Post, ns, "work", "exec", "alice", Json(new { argv = new[] { "true" } }));
        Assert.That(afterwards.StatusCode, Is.EqualTo(HttpStatusCode.Gone));
    }

    [Test]
    public async Task The_timeout_ends_the_sandbox_and_keeps_the_object_or_deletes_it_per_policy()
    {
        var ns = await CreateAsync("sbx-timeout", "short", "  timeout: 6s");
        var finished = await FinishedAsync(ns, "short");
        Assert.That(finished.Reason, Is.EqualTo(SandboxConditions.Reasons.Expired));
        var sandbox = await GetAsync(ns, "short");
        Assert.That(Condition(sandbox, SandboxConditions.Ready)!.Status, Is.EqualTo("False"));
        Assert.That(sandbox.Status!.ExpiresAt, Is.EqualTo(sandbox.Metadata.CreationTimestamp!.Value.AddSeconds(6)));
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0, Timeout, "the pod is gone");

        (await _kubectl.ApplyAsync(Manifest("gone", "  timeout: 4s\n  expiryPolicy: Delete"), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
        {
            var list = await _client.CustomObjects.ListNamespacedCustomObjectAsync<SandboxList>(Group.Name, Group.Version, ns, "sandboxes");
            return list.Items.All(s => s.Metadata.Name != "gone");
        }, Timeout, "the expired Sandbox is deleted");
    }

    [Test]
    public async Task Idle_sandboxes_end_and_activity_keeps_them_alive()
    {
        var ns = await CreateAsync("sbx-idle", "idle", "  idleTimeout: 5s");
        await GrantAsync(ns, "alice");
        await WaitReadyAsync(ns, "idle");

        // Activity every second for longer than the idle timeout keeps it running.
        var until = DateTime.UtcNow.AddSeconds(8);
        while (DateTime.UtcNow < until)
        {
            var (_, _, exit) = await ExecAsync(ns, "idle", "alice", "true");
            Assert.That(exit, Is.Zero);
            Assert.That(Condition(await GetAsync(ns, "idle"), SandboxConditions.Finished)?.Status, Is.Not.EqualTo("True"), "ended despite activity");
            await Task.Delay(1000);
        }

        var finished = await FinishedAsync(ns, "idle");
        Assert.That(finished.Reason, Is.EqualTo(SandboxConditions.Reasons.IdleTimeout));
    }

    [Test]
    public async Task A_sandbox_claims_a_matching_warm_pod_and_the_pool_refills()
    {
        var ns = await _plane.CreateNamespaceAsync("sbx-pool");
        await GrantAsync(ns, "alice");
        (await _kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: SandboxWarmPool
            metadata: {name: py}
            spec: {image: "python:3.12-slim", replicas: 1}
            """, ns)).EnsureSuccess();
        var warm = await Eventually.GetAsync(async () =>
        {
            var pods = (await _client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items;
            return pods.Count == 1 && pods[0].Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true ? pods[0] : null;
        }, Timeout, "one ready warm pod");
        var fence = await _client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("py-sandbox-pool", ns);
        Assert.That((fence.Spec.Ingress?.Count ?? 0, fence.Spec.Egress?.Count ?? 0), Is.EqualTo((0, 0)), "an unclaimed pod is reachable by nothing");

        (await _kubectl.ApplyAsync(Manifest("claimer"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "claimer");
        var sandbox = await GetAsync(ns, "claimer");
        Assert.That(sandbox.Status!.PodName, Is.EqualTo(warm.Metadata.Name), "the warm pod, not a new one");
        var claimed = await _client.CoreV1.ReadNamespacedPodAsync(warm.Metadata.Name, ns);
        Assert.That(claimed.Metadata.Labels, Does.Not.ContainKey(SandboxPods.PoolLabel));
        Assert.That(claimed.Metadata.OwnerReferences.Single().Uid, Is.EqualTo(sandbox.Metadata.Uid));
        var (stdout, _, exit) = await ExecAsync(ns, "claimer", "alice", "/bin/sh", "-c", "echo claimed");
        Assert.That((stdout, exit), Is.EqualTo(("claimed\n", (int?)0)));

        await Eventually.HoldsAsync(async () =>
        {
            var pods = (await _client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items;
            return pods.Count == 1 && pods[0].Metadata.Name != warm.Metadata.Name;
        }, Timeout, "the pool refilled");

        // Another shape starts a pod of its own and leaves the pool alone.
        (await _kubectl.ApplyAsync(Manifest("other", "  resources: {cpu: \"2\", memory: 2Gi}"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "other");
        Assert.That((await GetAsync(ns, "other")).Status!.PodName, Is.EqualTo("other"));
    }

    [Test]
    public async Task The_sandbox_lives_as_long_as_its_command()
    {
        var ns = await CreateAsync("sbx-cmd", "done", "  command: [/bin/sh, -c, \"sleep 1; exit 0\"]");
        var done = await FinishedAsync(ns, "done");
        Assert.That(done.Reason, Is.EqualTo(SandboxConditions.Reasons.Completed));
        var completed = await GetAsync(ns, "done");
        Assert.That(new[] { SandboxConditions.Reconciling, SandboxConditions.Stalled }.Select(t => Condition(completed, t)?.Status),
            Is.EqualTo(new[] { "False", "False" }), "a sandbox that ended normally is Current for kstatus");

        (await _kubectl.ApplyAsync(Manifest("broken", "  command: [/bin/sh, -c, \"sleep 1; exit 4\"]"), ns)).EnsureSuccess();
        var broken = await FinishedAsync(ns, "broken");
        Assert.That(broken.Reason, Is.EqualTo(SandboxConditions.Reasons.PodFailed));
        Assert.That(broken.Message, Does.Contain("exit code 4"));
    }

    [Test]
    public async Task A_failed_or_vanished_pod_is_reported_and_not_recreated()
    {
        var ns = await CreateAsync("sbx-fail", "crash");
        await WaitReadyAsync(ns, "crash");
        Assert.That(_sim.CrashPod(ns, "crash"), Is.True);
        var failed = await FinishedAsync(ns, "crash");
        Assert.That(failed.Reason, Is.EqualTo(SandboxConditions.Reasons.PodFailed));
        Assert.That(failed.Message, Does.Contain("exit code"));
        Assert.That(Condition(await GetAsync(ns, "crash"), SandboxConditions.Stalled)?.Status, Is.EqualTo("True"), "a failed pod is Stalled for kstatus");

        (await _kubectl.ApplyAsync(Manifest("lost"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "lost");
        await _client.CoreV1.DeleteNamespacedPodAsync("lost", ns);
        var lost = await FinishedAsync(ns, "lost");
        Assert.That(lost.Reason, Is.EqualTo(SandboxConditions.Reasons.PodLost));
        await Eventually.HoldsAsync(async () => (await _client.CoreV1.ListNamespacedPodAsync(ns)).Items.All(p => p.Metadata.Name != "lost"),
            Timeout, "no replacement pod");
        var events = await _client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "reason=PodFailed");
        Assert.That(events.Items, Is.Not.Empty);
    }
}

/// <summary>A forward-only stream of zero bytes of a given length (no length is advertised: HTTP sends it chunked).</summary>
internal sealed class Zeros(long length) : Stream
{
    private long _left = length;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = (int)Math.Min(count, _left);
        Array.Clear(buffer, offset, n);
        _left -= n;
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>A list of Sandboxes, for the custom-objects list call.</summary>
public sealed class SandboxList
{
    /// <summary>The items.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("items")]
    public List<Sandbox> Items { get; set; } = [];
}
