using Pilotlight.Operator.Admission;
using System.Security.Cryptography.X509Certificates;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
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
public class SandboxTests() : ServingFixture(9, "sbx", TimeSpan.FromMinutes(1))
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        // A CPU node for sandboxes: the simulated GPU nodes carry a taint that sandboxes without GPUs do not tolerate.
        await Sim.AddNodeAsync($"sbx-{Guid.NewGuid():N}"[..12], GpuNodePreset.CpuOnly);
        (await Kubectl.RunAsync(["apply", "-f", Path.Combine(RepositoryRoot.Path, "samples", "rbac", "sandbox-user.yaml")])).EnsureSuccess();
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
        Client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", name);

    private static V1Condition? Condition(Sandbox s, string type) => s.Status?.Conditions?.FirstOrDefault(c => c.Type == type);

    private async Task<string> CreateAsync(string prefix, string name, string extra = "")
    {
        var ns = await Plane.CreateNamespaceAsync(prefix);
        (await Kubectl.ApplyAsync(Manifest(name, extra), ns)).EnsureSuccess();
        return ns;
    }

    private Task WaitReadyAsync(string ns, string name) => Eventually.HoldsAsync(async () =>
        Condition(await GetAsync(ns, name), SandboxConditions.Ready)?.Status == "True", Timeout, $"sandbox {name} is ready");

    private async Task<V1Condition> FinishedAsync(string ns, string name) => await Eventually.GetAsync(async () =>
        Condition(await GetAsync(ns, name), SandboxConditions.Finished) is { Status: "True" } c ? c : null, Timeout, $"sandbox {name} finished");

    private async Task GrantAsync(string ns, string user)
    {
        await Client.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = $"sandbox-user-{user}" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-sandbox-user" },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);

        // The API server's authorizer learns of the binding from its own cache, a moment later on a loaded machine; a call
        // made before then is refused (and the gateway keeps that answer for its decision TTL).
        await Eventually.HoldsAsync(async () => (await Client.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
        {
            Spec = new V1SubjectAccessReviewSpec
            {
                User = user,
                ResourceAttributes = new V1ResourceAttributes
                {
                    Group = Group.Name, Resource = "sandboxes", Subresource = "exec", Verb = "create", NamespaceProperty = ns,
                },
            },
        })).Status.Allowed, Timeout, $"{user} may exec in {ns}");
    }

    private async Task<HttpResponseMessage> CallAsync(HttpMethod method, string ns, string name, string operation, string? user, HttpContent? body = null)
    {
        using var request = new HttpRequestMessage(method, $"{GatewayUrl}/_sandbox/{ns}/{name}/{operation}") { Content = body };
        if (user is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Plane.UserToken(user));
        }

        return await Anonymous.SendAsync(request);
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

    /// <summary>A direct call to a sandbox's agent (as a pod that reaches it would make), with the given client certificate and pod UID.</summary>
    private static async Task<HttpStatusCode> AgentAsync(string ip, X509Certificate2? certificate, string ns, string uid)
    {
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
                LocalCertificateSelectionCallback = certificate is null ? null : (_, _, _, _, _) => certificate,
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{ip}:8443/files/list?path=.");
        request.Headers.Add("X-Pilotlight-Sandbox-Namespace", ns);
        request.Headers.Add("X-Pilotlight-Pod-Uid", uid);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    [Test]
    public async Task The_agent_answers_only_the_gateways_certificate_for_its_own_pod()
    {
        var ns = await CreateAsync("sbx-mtls", "guarded");
        var other = await CreateAsync("sbx-mtls2", "neighbour");
        await WaitReadyAsync(ns, "guarded");
        await WaitReadyAsync(other, "neighbour");
        var pod = await Client.CoreV1.ReadNamespacedPodAsync("guarded", ns);
        var neighbour = await Client.CoreV1.ReadNamespacedPodAsync("neighbour", other);
        var ip = pod.Status.PodIP;
        var gateway = SharedOperator.AgentCertificates!.Current!;

        // A pod that reaches the agent without the gateway's certificate: no exec, no files.
        Assert.That(await AgentAsync(ip, null, ns, pod.Metadata.Uid), Is.EqualTo(HttpStatusCode.Unauthorized));

        // A certificate of another CA, even one that says it is the gateway: the handshake fails.
        using (var key = System.Security.Cryptography.ECDsa.Create())
        {
            var request = new CertificateRequest("CN=pilotlight-gateway", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2")], false));
            using var forged = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
            await Assert.ThrowsAsync<HttpRequestException>(() => AgentAsync(ip, forged, ns, pod.Metadata.Uid), "a self-made certificate");
        }

        // The gateway's certificate, but naming another sandbox's pod (a stale endpoint, a reused IP): refused.
        Assert.That(await AgentAsync(ip, gateway, other, neighbour.Metadata.Uid), Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(await AgentAsync(ip, gateway, ns, neighbour.Metadata.Uid), Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(await AgentAsync(ip, gateway, ns, pod.Metadata.Uid), Is.EqualTo(HttpStatusCode.OK), "the gateway's certificate for this pod");

        // The function shim's port is not the agent's: nothing listens on 8099 of a sandbox pod.
        using (var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(5) })
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => plain.GetAsync($"http://{ip}:8099/ready"));
        }

        // The operator renews the gateway's certificate under the same CA (as a replica would near its end): the
        // gateway picks it up and exec through it still works on this older pod.
        var before = await Client.CoreV1.ReadNamespacedSecretAsync(SharedOperator.AgentSecret.Name, SharedOperator.AgentSecret.Namespace);
        using (var operatorClient = Plane.CreateClient(ChartRbac.OperatorUser))
        {
            await new WebhookCertificates(operatorClient, new WebhookCertificateOptions
            {
                Secret = SharedOperator.AgentSecret, Hosts = ["pilotlight-gateway"], CaName = "pilotlight-sandbox-agent-ca", ClientAuthentication = true,
                RenewBefore = TimeSpan.FromDays(400),
            }).EnsureAsync(CancellationToken.None);
        }

        var after = await Client.CoreV1.ReadNamespacedSecretAsync(SharedOperator.AgentSecret.Name, SharedOperator.AgentSecret.Namespace);
        Assert.That(after.Data["tls.crt"], Is.Not.EqualTo(before.Data["tls.crt"]), "renewed");
        Assert.That(after.Data["ca.crt"], Is.EqualTo(before.Data["ca.crt"]), "under the same CA");
        await SharedOperator.AgentCertificates.EnsureAsync(CancellationToken.None);
        Assert.That(SharedOperator.AgentCertificates.Current!.Thumbprint, Is.Not.EqualTo(gateway.Thumbprint));
        await GrantAsync(ns, "alice");
        var (stdout, _, exit) = await ExecAsync(ns, "guarded", "alice", "/bin/sh", "-c", "echo still");
        Assert.That((stdout, exit), Is.EqualTo(("still\n", (int?)0)));
    }

    [Test]
    public async Task The_pod_is_hardened_and_fenced_whatever_the_spec_says()
    {
        var ns = await CreateAsync("sbx-hard", "hard", "  network: {allowCidrs: [10.20.0.0/16], allowDns: true}");
        await WaitReadyAsync(ns, "hard");
        var pod = await Client.CoreV1.ReadNamespacedPodAsync("hard", ns);
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

        var policy = await Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("hard-sandbox", ns);
        Assert.That(policy.Spec.PolicyTypes, Is.EquivalentTo(new[] { "Ingress", "Egress" }));
        Assert.That(policy.Spec.Ingress.Single().Ports.Single().Port.Value, Is.EqualTo("8443"), "the agent's port, not the function shim's");
        Assert.That(policy.Spec.Ingress.Single().FromProperty.Single().PodSelector.MatchLabels["app.kubernetes.io/name"], Is.EqualTo("pilotlight-gateway"));
        Assert.That(policy.Spec.Egress.SelectMany(e => e.To).Select(t => t.IpBlock?.Cidr).OfType<string>(), Is.EqualTo(new[] { "10.20.0.0/16" }));
        Assert.That(policy.Spec.Egress.SelectMany(e => e.Ports ?? []).Select(p => p.Port.Value), Is.EquivalentTo(new[] { "53", "53" }), "DNS only when asked");

        var closed = await CreateAsync("sbx-closed", "closed");
        var fenced = await Eventually.GetAsync(async () =>
        {
            try
            {
                return await Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("closed-sandbox", closed);
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
    public async Task Allowing_the_whole_internet_still_excepts_metadata_pod_and_service_ranges()
    {
        var ns = await CreateAsync("sbx-egress", "pip", "  network: {allowCidrs: [0.0.0.0/0, \"::/0\"]}");
        var policy = await PolicyAsync(ns, "pip-sandbox");

        var blocks = policy.Spec.Egress.SelectMany(e => e.To).Select(t => t.IpBlock).OfType<V1IPBlock>().ToDictionary(b => b.Cidr);
        Assert.That(blocks.Keys, Is.EquivalentTo(new[] { "0.0.0.0/0", "::/0" }));
        Assert.That(blocks["0.0.0.0/0"].Except, Is.EquivalentTo(new[] { "169.254.0.0/16", "10.244.0.0/16", "10.96.0.0/12" }));
        Assert.That(blocks["::/0"].Except, Is.EquivalentTo(new[] { "fd00:ec2::254/128" }));
    }

    [Test]
    public async Task A_deleted_or_edited_sandbox_policy_is_restored()
    {
        var ns = await CreateAsync("sbx-drift", "kept", "  network: {allowCidrs: [203.0.113.0/24]}");
        var original = await PolicyAsync(ns, "kept-sandbox");

        // A namespace member opens the sandbox to everything: any peer in, any address out.
        original.Spec.Ingress = [new V1NetworkPolicyIngressRule()];
        original.Spec.Egress = [new V1NetworkPolicyEgressRule()];
        await Client.NetworkingV1.ReplaceNamespacedNetworkPolicyAsync(original, "kept-sandbox", ns);
        var restored = await Eventually.GetAsync(async () =>
        {
            var p = await Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("kept-sandbox", ns);
            return p.Spec.Egress.SelectMany(e => e.To ?? []).Any(t => t.IpBlock?.Cidr == "203.0.113.0/24") ? p : null;
        }, Timeout, "the edited policy restored");
        Assert.That(restored.Spec.Ingress.Single().FromProperty, Is.Not.Empty, "ingress only from the gateway again");

        // And deletes it.
        await Client.NetworkingV1.DeleteNamespacedNetworkPolicyAsync("kept-sandbox", ns);
        var recreated = await Eventually.GetAsync(async () =>
        {
            var p = await TryPolicyAsync(ns, "kept-sandbox");
            return p is not null && p.Metadata.Uid != restored.Metadata.Uid ? p : null;
        }, Timeout, "the deleted policy recreated");
        Assert.That(recreated.Metadata.OwnerReferences.Single().Uid, Is.EqualTo((await GetAsync(ns, "kept")).Metadata.Uid));
        var events = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=kept");
        Assert.That(events.Items.Select(e => e.Reason), Does.Contain(SandboxPolicies.RestoredReason));
    }

    [Test]
    public async Task A_policy_taken_in_advance_under_a_pools_name_is_replaced()
    {
        var ns = await Plane.CreateNamespaceAsync("sbx-squat");
        // Someone claims the pool's policy name first, with a policy that lets everything reach the pool's pods.
        await Client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = "early-sandbox-pool" },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector(),
                PolicyTypes = ["Ingress"],
                Ingress = [new V1NetworkPolicyIngressRule()],
            },
        }, ns);
        (await Kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: SandboxWarmPool
            metadata: {name: early}
            spec: {image: "python:3.12-slim", replicas: 1}
            """, ns)).EnsureSuccess();
        var pool = await Client.CustomObjects.GetNamespacedCustomObjectAsync<SandboxWarmPool>(Group.Name, Group.Version, ns, "sandboxwarmpools", "early");

        var fence = await Eventually.GetAsync(async () =>
        {
            var p = await Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("early-sandbox-pool", ns);
            return p.Metadata.OwnerReferences?.Any(o => o.Uid == pool.Metadata.Uid) == true ? p : null;
        }, Timeout, "the pool's own policy in place of the squatter's");
        Assert.That((fence.Spec.Ingress?.Count ?? 0, fence.Spec.Egress?.Count ?? 0), Is.EqualTo((0, 0)));
        Assert.That(fence.Spec.PodSelector.MatchLabels[SandboxPods.PoolLabel], Is.EqualTo("early"));
        var events = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=early");
        Assert.That(events.Items.Select(e => e.Reason), Does.Contain(SandboxPolicies.TakenOverReason));
    }

    [Test]
    public async Task A_workspace_over_the_cap_is_an_invalid_spec_and_every_pod_has_bounded_ephemeral_storage()
    {
        var ns = await CreateAsync("sbx-ws", "huge", "  workspaceSize: 500Gi");
        var ready = await Eventually.GetAsync(async () =>
            Condition(await GetAsync(ns, "huge"), SandboxConditions.Ready) is { Reason: SandboxConditions.Reasons.InvalidSpec } c ? c : null,
            Timeout, "InvalidSpec");
        Assert.That(ready.Message, Does.Contain("spec.workspaceSize"));
        Assert.That((await Client.CoreV1.ListNamespacedPodAsync(ns)).Items, Is.Empty);

        (await Kubectl.ApplyAsync(Manifest("small", "  workspaceSize: 2Gi"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "small");
        var c = (await Client.CoreV1.ReadNamespacedPodAsync("small", ns)).Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer);
        Assert.That((c.Resources.Requests["ephemeral-storage"].ToDecimal(), c.Resources.Limits["ephemeral-storage"].ToDecimal()),
            Is.EqualTo((3m * 1024 * 1024 * 1024, 3m * 1024 * 1024 * 1024)), "the workspace plus 1Gi of scratch, requested and limited");
    }

    private async Task<V1NetworkPolicy?> TryPolicyAsync(string ns, string name)
    {
        try
        {
            return await Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync(name, ns);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private Task<V1NetworkPolicy> PolicyAsync(string ns, string name) =>
        Eventually.GetAsync(() => TryPolicyAsync(ns, name), Timeout, $"NetworkPolicy {name}");

    [Test]
    public async Task A_pod_the_api_server_refuses_stalls_the_sandbox_with_the_reason_and_it_starts_once_the_cause_is_gone()
    {
        // A quota of no pods: the API server refuses the sandbox's pod (as it does a pod naming a missing RuntimeClass).
        var ns = await Plane.CreateNamespaceAsync("sbx-quota");
        await Client.CoreV1.CreateNamespacedResourceQuotaAsync(new V1ResourceQuota
        {
            Metadata = new V1ObjectMeta { Name = "no-pods" },
            Spec = new V1ResourceQuotaSpec { Hard = new Dictionary<string, ResourceQuantity> { ["pods"] = new("0") } },
        }, ns);
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ReadNamespacedResourceQuotaAsync("no-pods", ns)).Status?.Hard is { Count: > 0 },
            Timeout, "the quota to be in force");
        (await Kubectl.ApplyAsync(Manifest("refused"), ns)).EnsureSuccess();

        var ready = await Eventually.GetAsync(async () =>
            Condition(await GetAsync(ns, "refused"), SandboxConditions.Ready) is { Reason: SandboxConditions.Reasons.PodRejected } c ? c : null,
            Timeout, "PodRejected");
        var refused = await GetAsync(ns, "refused");
        Assert.Multiple(() =>
        {
            Assert.That(ready.Message, Does.Contain("exceeded quota").And.Contain("no-pods"), "the API server's own reason");
            Assert.That((Condition(refused, SandboxConditions.Stalled)?.Status, Condition(refused, SandboxConditions.Stalled)?.Reason),
                Is.EqualTo(("True", SandboxConditions.Reasons.PodRejected)), "kstatus reads it as Failed, not as still starting");
        });
        var events = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=refused");
        Assert.That(events.Items.Where(e => e.Reason == SandboxConditions.Reasons.PodRejected).Select(e => e.Type), Does.Contain("Warning"));

        // The platform raises the quota: the sandbox starts on the operator's next try, without being touched.
        await Client.CoreV1.DeleteNamespacedResourceQuotaAsync("no-pods", ns);
        await WaitReadyAsync(ns, "refused");
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
        Assert.That((await Client.CoreV1.ListNamespacedPodAsync(ns)).Items, Is.Empty);
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

        using (var forged = new HttpRequestMessage(HttpMethod.Post, $"{GatewayUrl}/_sandbox/{ns}/work/exec") { Content = Json(new { argv = new[] { "true" } }) })
        {
            forged.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-a-token");
            using var response = await Anonymous.SendAsync(forged);
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

        using (var tooBig = new HttpRequestMessage(HttpMethod.Put, $"{GatewayUrl}/_sandbox/{ns}/work/files?path=huge.bin"))
        {
            tooBig.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Plane.UserToken("alice"));
            tooBig.Headers.ExpectContinue = true;
            tooBig.Content = new StreamContent(new Zeros(SandboxApi.MaxBodyBytes + 1));
            tooBig.Content.Headers.ContentLength = SandboxApi.MaxBodyBytes + 1;
            using var refused = await Anonymous.SendAsync(tooBig);
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
            Assert.That(await refused.Content.ReadAsStringAsync(), Does.Contain("over the limit"), "a clear error, not a broken connection");
        }

        using (var escape = await CallAsync(HttpMethod.Get, ns, "work", "files?path=../../etc/passwd", "alice"))
        {
            Assert.That(escape.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        }

        var (cat, _, catExit) = await ExecAsync(ns, "work", "alice", "/bin/sh", "-c", "cat src/main.py");
        Assert.That((cat, catExit), Is.EqualTo(("print(6 * 7)\n", (int?)0)), "exec runs in the workspace the files went to");

        // Activity and the terminate request reach the operator through the gateway's signals: the gateway wrote nothing.
        var untouched = await GetAsync(ns, "work");
        Assert.That(untouched.Metadata.Annotations ?? new Dictionary<string, string>(), Does.Not.ContainKey(SandboxAnnotations.LastActivity));

        using (var terminate = await CallAsync(HttpMethod.Post, ns, "work", "terminate", "alice"))
        {
            Assert.That(terminate.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }

        var finished = await FinishedAsync(ns, "work");
        Assert.That(finished.Reason, Is.EqualTo(SandboxConditions.Reasons.Terminated));
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0, Timeout, "the pod is gone");
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
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0, Timeout, "the pod is gone");

        (await Kubectl.ApplyAsync(Manifest("gone", "  timeout: 4s\n  expiryPolicy: Delete"), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () =>
        {
            var list = await Client.CustomObjects.ListNamespacedCustomObjectAsync<SandboxList>(Group.Name, Group.Version, ns, "sandboxes");
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
        var ns = await Plane.CreateNamespaceAsync("sbx-pool");
        await GrantAsync(ns, "alice");
        (await Kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: SandboxWarmPool
            metadata: {name: py}
            spec: {image: "python:3.12-slim", replicas: 1}
            """, ns)).EnsureSuccess();
        var warm = await Eventually.GetAsync(async () =>
        {
            var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items;
            return pods.Count == 1 && pods[0].Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true ? pods[0] : null;
        }, Timeout, "one ready warm pod");
        var fence = await Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync("py-sandbox-pool", ns);
        Assert.That((fence.Spec.Ingress?.Count ?? 0, fence.Spec.Egress?.Count ?? 0), Is.EqualTo((0, 0)), "an unclaimed pod is reachable by nothing");

        (await Kubectl.ApplyAsync(Manifest("claimer"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "claimer");
        var sandbox = await GetAsync(ns, "claimer");
        Assert.That(sandbox.Status!.PodName, Is.EqualTo(warm.Metadata.Name), "the warm pod, not a new one");
        var claimed = await Client.CoreV1.ReadNamespacedPodAsync(warm.Metadata.Name, ns);
        Assert.That(claimed.Metadata.Labels, Does.Not.ContainKey(SandboxPods.PoolLabel));
        Assert.That(claimed.Metadata.OwnerReferences.Single().Uid, Is.EqualTo(sandbox.Metadata.Uid));
        var (stdout, _, exit) = await ExecAsync(ns, "claimer", "alice", "/bin/sh", "-c", "echo claimed");
        Assert.That((stdout, exit), Is.EqualTo(("claimed\n", (int?)0)));

        await Eventually.HoldsAsync(async () =>
        {
            var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items;
            return pods.Count == 1 && pods[0].Metadata.Name != warm.Metadata.Name;
        }, Timeout, "the pool refilled");

        // Another shape starts a pod of its own and leaves the pool alone.
        (await Kubectl.ApplyAsync(Manifest("other", "  resources: {cpu: \"2\", memory: 2Gi}"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "other");
        Assert.That((await GetAsync(ns, "other")).Status!.PodName, Is.EqualTo("other"));
    }

    /// <summary>A copy of <paramref name="pod"/> as a namespace member could make it: its labels and spec, under another name.</summary>
    private static V1Pod LookAlike(V1Pod pod, string name, Action<V1Pod> edit)
    {
        var copy = KubernetesJson.Deserialize<V1Pod>(KubernetesJson.Serialize(pod));
        copy.Metadata = new V1ObjectMeta { Name = name, Labels = new Dictionary<string, string>(pod.Metadata.Labels) };
        copy.Status = null;
        edit(copy);
        return copy;
    }

    private async Task<bool> PodReadyAsync(string ns, string name) =>
        (await Client.CoreV1.ListNamespacedPodAsync(ns, fieldSelector: $"metadata.name={name}")).Items.SingleOrDefault() is { } p && PodReadiness.IsReady(p);

    [Test]
    public async Task A_pool_pod_as_the_api_server_stores_it_is_trusted()
    {
        // What the API server's defaulting and admission add to the template must not make the operator distrust its own pods.
        var ns = await Plane.CreateNamespaceAsync("sbx-trust");
        var pool = new SandboxWarmPool
        {
            Metadata = new V1ObjectMeta { Name = "absent", NamespaceProperty = ns, Uid = Guid.NewGuid().ToString() },
            Spec = new SandboxWarmPoolSpec { Image = "python:3.12-slim", Replicas = 1 },
        };
        var options = new SandboxOptions { AllowedRuntimeClasses = ["runsc"], DefaultRuntimeClass = "runsc" };
        var stored = await Client.CoreV1.CreateNamespacedPodAsync(SandboxPods.MakePoolPod(pool, "runsc", options), ns);
        Assert.That(WarmPodTrust.Distrust(stored, pool, "runsc", options), Is.Null);
    }

    [Test]
    public async Task A_forged_pod_with_a_pools_labels_is_never_claimed_and_the_sandbox_gets_a_fresh_pod()
    {
        var ns = await Plane.CreateNamespaceAsync("sbx-forge");
        string PoolManifest(int replicas) => $$"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: SandboxWarmPool
            metadata: {name: py}
            spec: {image: "python:3.12-slim", replicas: {{replicas}}}
            """;
        (await Kubectl.ApplyAsync(PoolManifest(1), ns)).EnsureSuccess();
        var genuine = await Eventually.GetAsync(async () =>
        {
            var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items;
            return pods.Count == 1 && PodReadiness.IsReady(pods[0]) ? pods[0] : null;
        }, Timeout, "one ready warm pod");

        // The pool empties, so only a look-alike is left to claim.
        (await Kubectl.ApplyAsync(PoolManifest(0), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items.Count == 0,
            Timeout, "the pool's pod is gone");

        // A namespace member copies the pool pod's labels onto a pod with no gVisor and a powerful ServiceAccount.
        await Client.CoreV1.CreateNamespacedPodAsync(LookAlike(genuine, "py-forged", p =>
        {
            p.Spec.RuntimeClassName = null;
            p.Spec.ServiceAccountName = "builder";
            p.Spec.ServiceAccount = null;
        }), ns);
        await Eventually.HoldsAsync(() => PodReadyAsync(ns, "py-forged"), Timeout, "the look-alike is ready, as a warm pod would be");

        (await Kubectl.ApplyAsync(Manifest("claimer"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "claimer");
        Assert.That((await GetAsync(ns, "claimer")).Status!.PodName, Is.EqualTo("claimer"), "a fresh pod, not the look-alike");
        var fresh = await Client.CoreV1.ReadNamespacedPodAsync("claimer", ns);
        Assert.That(fresh.Spec.RuntimeClassName, Is.EqualTo("runsc"));
        var forged = await Client.CoreV1.ReadNamespacedPodAsync("py-forged", ns);
        Assert.That(forged.Metadata.Labels, Does.ContainKey(SandboxPods.PoolLabel).And.Not.ContainKey(SandboxAnnotations.SandboxLabel), "never relabelled");
        Assert.That(forged.Metadata.OwnerReferences ?? [], Is.Empty, "never taken over");

        // A look-alike naming the pool as its controller (its UID is readable): not counted as warm, removed by the pool.
        var pool = await Client.CustomObjects.GetNamespacedCustomObjectAsync<SandboxWarmPool>(Group.Name, Group.Version, ns, "sandboxwarmpools", "py");
        (await Kubectl.ApplyAsync(PoolManifest(1), ns)).EnsureSuccess();
        await Client.CoreV1.CreateNamespacedPodAsync(LookAlike(genuine, "py-forged-owned", p =>
        {
            p.Spec.RuntimeClassName = null;
            p.Metadata.OwnerReferences =
            [
                new V1OwnerReference { ApiVersion = pool.ApiVersion, Kind = pool.Kind, Name = "py", Uid = pool.Metadata.Uid, Controller = true },
            ];
        }), ns);
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=py,reason=ForeignPod")).Items
            .Any(e => e.Message.Contains("py-forged-owned", StringComparison.Ordinal)), Timeout, "the pool reports the look-alike");
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedPodAsync(ns, fieldSelector: "metadata.name=py-forged-owned")).Items.Count == 0,
            Timeout, "the pool removed the look-alike naming it");
        await Eventually.HoldsAsync(async () =>
        {
            var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{SandboxPods.PoolLabel}=py")).Items;
            return pods.Count(p => p.Metadata.OwnerReferences?.Any(o => o.Uid == pool.Metadata.Uid) == true && PodReadiness.IsReady(p)) == 1
                && pods.All(p => p.Metadata.Name != "py-forged-owned");
        }, Timeout, "a genuine warm pod of its own");
        (await Kubectl.ApplyAsync(Manifest("second"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "second");
        Assert.That((await GetAsync(ns, "second")).Status!.PodName, Is.Not.EqualTo("py-forged").And.Not.EqualTo("py-forged-owned"));
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

        (await Kubectl.ApplyAsync(Manifest("broken", "  command: [/bin/sh, -c, \"sleep 1; exit 4\"]"), ns)).EnsureSuccess();
        var broken = await FinishedAsync(ns, "broken");
        Assert.That(broken.Reason, Is.EqualTo(SandboxConditions.Reasons.PodFailed));
        Assert.That(broken.Message, Does.Contain("exit code 4"));
    }

    [Test]
    public async Task A_failed_or_vanished_pod_is_reported_and_not_recreated()
    {
        var ns = await CreateAsync("sbx-fail", "crash");
        await WaitReadyAsync(ns, "crash");
        Assert.That(Sim.CrashPod(ns, "crash"), Is.True);
        var failed = await FinishedAsync(ns, "crash");
        Assert.That(failed.Reason, Is.EqualTo(SandboxConditions.Reasons.PodFailed));
        Assert.That(failed.Message, Does.Contain("exit code"));
        Assert.That(Condition(await GetAsync(ns, "crash"), SandboxConditions.Stalled)?.Status, Is.EqualTo("True"), "a failed pod is Stalled for kstatus");

        (await Kubectl.ApplyAsync(Manifest("lost"), ns)).EnsureSuccess();
        await WaitReadyAsync(ns, "lost");
        await Client.CoreV1.DeleteNamespacedPodAsync("lost", ns);
        var lost = await FinishedAsync(ns, "lost");
        Assert.That(lost.Reason, Is.EqualTo(SandboxConditions.Reasons.PodLost));
        await Eventually.HoldsAsync(async () => (await Client.CoreV1.ListNamespacedPodAsync(ns)).Items.All(p => p.Metadata.Name != "lost"),
            Timeout, "no replacement pod");
        var events = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "reason=PodFailed");
        Assert.That(events.Items, Is.Not.Empty);
    }

    [Test]
    public async Task Interactive_shell_goes_through_the_gateway_for_a_user_rbac_allows_and_no_one_else()
    {
        var ns = await CreateAsync("sbx-shell", "work", "  idleTimeout: 2m");
        await GrantAsync(ns, "alice");
        await WaitReadyAsync(ns, "work");
        var gateway = new Uri(GatewayUrl);

        var refused = await Assert.ThrowsAsync<Pilotlight.Client.PilotlightClientException>(() =>
            new Pilotlight.Client.SandboxShell(gateway, Plane.UserToken("bob")).ConnectAsync(ns, "work", CancellationToken.None));
        Assert.That(refused!.Message, Does.Contain("403"));

        using var output = new MemoryStream();
        using var error = new MemoryStream();
        var exit = await new Pilotlight.Client.SandboxShell(gateway, Plane.UserToken("alice")).RunAsync(ns, "work",
            ["/bin/sh", "-c", "tty; stty size; exit 6"], tty: true, new MemoryStream(), output, error, CancellationToken.None);
        var text = Encoding.UTF8.GetString(output.ToArray());
        Assert.That(text, Does.Contain("/dev/pts/"));
        Assert.That(text, Does.Contain("24 80"), "no local terminal: the default size");
        Assert.That(exit, Is.EqualTo(6));
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
