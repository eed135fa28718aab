using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using NUnit.Framework.Interfaces;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Testing;

// [Order]: obsolete in NUnit 5, and how this fixture keeps the upgrade and the uninstall last (see RealNodeTests).
#pragma warning disable CS0618

namespace Pilotlight.E2E;

/// <summary>
/// Pilotlight on a real cluster, used as its users would (see <see cref="E2ECluster"/>): the chart
/// installed with helm from images built from docker/; a function at zero woken by its first request
/// through the gateway, billed, and back at zero; a GPU function admitted by the kubelet on devices a
/// device plugin advertises; the samples applied server-side twice; a sandbox used through the gateway,
/// held to its hardening and ended by its timeout; the meter against the kernel's accounting; an upgrade
/// while a function serves, and an uninstall. Skipped, saying why, where the cluster is missing
/// (an error under PILOTLIGHT_E2E_REQUIRED=1, as make test runs it).
/// </summary>
[TestFixture, Category("E2E"), NonParallelizable]
public partial class EndToEndTests
{
    private const string FieldManager = "pilotlight-e2e";
    private static readonly TimeSpan Startup = TimeSpan.FromMinutes(5);
    private E2ECluster? _cluster;
    private HttpClient _http = null!;

    private E2ECluster Cluster => _cluster!;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        var (cluster, missing) = await E2ECluster.StartAsync();
        if (cluster is null)
        {
            Assert.Ignore(missing ?? "no cluster");
        }

        _cluster = cluster;
        // A cold request is held by the gateway for up to the function's startupTimeout.
        _http = new HttpClient { BaseAddress = cluster.Gateway, Timeout = Startup + TimeSpan.FromMinutes(1) };
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        _http?.Dispose();
        if (_cluster is not null)
        {
            await _cluster.DeleteCreatedNamespacesAsync();
            await _cluster.DisposeAsync();
        }
    }

    [TearDown]
    public async Task ExplainFailureAsync()
    {
        if (_cluster is not null && TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed)
        {
            await _cluster.LogDiagnosticsAsync(TestContext.Out);
        }
    }

    [Test, Order(4)]
    public async Task A_function_at_zero_wakes_on_its_first_request_and_goes_back_to_zero()
    {
        var ns = await Cluster.CreateNamespaceAsync("fn");
        await Cluster.ApplyAsync(ns, $$"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata:
              name: echo
            spec:
              image: {{Cluster.ModelServerImage}}
              # Waking and scaling are the subject here; the integration suite covers who may invoke.
              access: Public
              port: 8080
              healthPath: /healthz
              env:
                - name: LOAD_SECONDS
                  value: "2"
                - name: COMPUTE_MS
                  value: "20"
              # count 0: placed on a node of the type (the node is labelled as an L4 node, as GPU Feature Discovery would), no GPU asked for.
              gpu:
                type: {{Cluster.GpuType}}
                count: 0
              scaling:
                minReplicas: 0
                maxReplicas: 1
                maxConcurrency: 4
                scaledownWindow: 15s
              timeout: 30s
              startupTimeout: 5m
            """);
        await UntilScaledToZeroAsync(ns, "echo", "the new function to report ScaledToZero");

        using (var cold = await InvokeAsync(ns, "echo", "hello"))
        {
            var body = await cold.Content.ReadAsStringAsync();
            Assert.Multiple(() =>
            {
                Assert.That(cold.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
                Assert.That(ColdStart(cold), Is.EqualTo("true"), "the first request woke the function");
            });
            using var answer = JsonDocument.Parse(body);
            Assert.That(answer.RootElement.GetProperty("echo").GetString(), Is.EqualTo("hello"), body);
        }

        using (var warm = await InvokeAsync(ns, "echo", "again"))
        {
            Assert.Multiple(() =>
            {
                Assert.That(warm.StatusCode, Is.EqualTo(HttpStatusCode.OK));
                Assert.That(ColdStart(warm), Is.EqualTo("false"), "the second request found a ready pod");
            });
        }

        // scaledownWindow 15s without a request, then the pod drains and goes.
        await UntilScaledToZeroAsync(ns, "echo", "the function to scale back to zero");
        await E2ECluster.UntilAsync("the function's pods to be gone", TimeSpan.FromMinutes(3), async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: "pilotlight.dev/function=echo");
            return (pods.Items.Count == 0, string.Join(", ", pods.Items.Select(p => $"{p.Metadata.Name} {p.Status?.Phase}")));
        });
    }

    [Test, Order(5)]
    public async Task Applying_the_samples_server_side_a_second_time_changes_nothing()
    {
        var ns = await Cluster.CreateNamespaceAsync("samples");
        // The namespaced samples. Not samples/rbac: its ClusterRole has the name of the one the chart
        // installed, and applying it would take the chart's fields (the managed-by label) from helm.
        var samples = await Cluster.CopySamplesAsync("functions", "sandboxes", "demo");
        string[] apply = ["apply", "--server-side", "--field-manager", FieldManager, "-n", ns, "-f", samples];

        var applied = (await Cluster.KubectlAsync(apply)).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split(' ')[0]).ToList();
        var first = new List<AppliedObject>();
        await E2ECluster.UntilAsync("every sample to be reconciled (observedGeneration caught up)", TimeSpan.FromMinutes(2), async () =>
        {
            first = await ObserveAsync(ns);
            var behind = first.Where(o => o.ObservedGeneration != o.Generation).Select(o => o.Key).ToList();
            return (first.Count == applied.Count && behind.Count == 0, $"{first.Count} of {applied.Count} objects, not reconciled: {string.Join(", ", behind)}");
        });
        await Cluster.KubectlAsync(apply);
        var second = await ObserveAsync(ns);

        Assert.That(first.Select(KubectlName), Is.EquivalentTo(applied), "every sample was applied");
        Assert.Multiple(() =>
        {
            foreach (var before in first)
            {
                var after = second.Single(o => o.Key == before.Key);
                Assert.That(after.Generation, Is.EqualTo(before.Generation), $"{before.Key}: the second apply is a no-op");
                Assert.That(after.Spec, Is.EqualTo(before.Spec), $"{before.Key}: spec unchanged");
                Assert.That(after.SpecOwners, Is.EqualTo(new[] { FieldManager }), $"{before.Key}: only the applier owns spec fields");
            }
        });
        await Cluster.DeleteNamespaceAsync(ns);
    }

    [Test, Order(6)]
    public async Task A_sandbox_runs_a_command_through_the_gateway_for_a_service_account_with_the_sandbox_user_role()
    {
        var ns = await Cluster.CreateNamespaceAsync("sbx");
        await Cluster.ApplyAsync(ns, $$"""
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: alice
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: mallory
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata:
              name: alice-sandbox-user
            roleRef:
              apiGroup: rbac.authorization.k8s.io
              kind: ClusterRole
              name: {{E2ECluster.Release}}-sandbox-user
            subjects:
              - kind: ServiceAccount
                name: alice
                namespace: {{ns}}
            ---
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: work
            spec:
              # Any image with a shell will do.
              # No runtimeClassName: the install's default is the node's own runtime (no gVisor here).
              image: {{Cluster.ShellImage}}
              # Every node may be a GPU node, tainted so; the platform allows this toleration (sandbox.scheduling).
              tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
              resources:
                cpu: 250m
                memory: 256Mi
              timeout: 600s
              idleTimeout: 300s
            """);
        await E2ECluster.UntilAsync("the sandbox to be Ready", Startup, async () =>
        {
            var sandbox = await Cluster.Client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", "work");
            var ready = sandbox.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
            return (ready?.Status == "True", $"Ready={ready?.Status} {ready?.Reason}: {ready?.Message}");
        });

        var alice = await TokenAsync(ns, "alice");
        var mallory = await TokenAsync(ns, "mallory");
        object command = new { argv = new[] { "sh", "-c", "echo hello from $(id -u)" } };

        using (var anonymous = await ExecAsync(ns, "work", token: null, command))
        {
            Assert.That(anonymous.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "no token");
        }

        using (var refused = await ExecAsync(ns, "work", mallory, command))
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), "a service account without the role");
        }

        using var allowed = await ExecAsync(ns, "work", alice, command);
        var text = await allowed.Content.ReadAsStringAsync();
        Assert.That(allowed.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
        var (stdout, _, exit, _) = ExecTranscript.Parse(text);
        Assert.Multiple(() =>
        {
            Assert.That(stdout, Does.Match(@"^hello from \d+\n$"), text);
            Assert.That(exit, Is.Zero, text);
        });
    }

    internal Task UntilScaledToZeroAsync(string ns, string name, string what) => E2ECluster.UntilAsync(what, TimeSpan.FromMinutes(3), async () =>
    {
        var function = await Cluster.Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);
        var ready = function.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
        return (function.Status is { Replicas: 0 } && ready is { Status: "True", Reason: "ScaledToZero" },
            $"replicas {function.Status?.Replicas}, Ready={ready?.Status} {ready?.Reason}: {ready?.Message}");
    });

    private Task<HttpResponseMessage> InvokeAsync(string ns, string function, string body) =>
        _http.PostAsync($"/{ns}/{function}/predict", new StringContent(body, Encoding.UTF8, "text/plain"));

    private static string? ColdStart(HttpResponseMessage response) =>
        response.Headers.TryGetValues("X-Pilotlight-Cold-Start", out var values) ? values.Single() : null;

    /// <summary>A token of the service account from the TokenRequest API, for the API server's own audience.</summary>
    private async Task<string> TokenAsync(string ns, string serviceAccount)
    {
        var request = await Cluster.Client.CoreV1.CreateNamespacedServiceAccountTokenAsync(
            new Authenticationv1TokenRequest { Spec = new V1TokenRequestSpec { ExpirationSeconds = 3600 } }, serviceAccount, ns);
        return request.Status.Token;
    }

    private async Task<HttpResponseMessage> ExecAsync(string ns, string sandbox, string? token, object command)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/_sandbox/{ns}/{sandbox}/exec")
        {
            Content = new StringContent(JsonSerializer.Serialize(command), Encoding.UTF8, "application/json"),
        };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await _http.SendAsync(request);
    }

    /// <summary>The GpuFunctions and Sandboxes in the namespace: generations, spec and the managers owning spec fields.</summary>
    private async Task<List<AppliedObject>> ObserveAsync(string ns) =>
        AppliedObject.ParseList(await Cluster.KubectlAsync("get", "gpufunctions,sandboxes,sandboxwarmpools", "-n", ns, "-o", "json", "--show-managed-fields"));

    /// <summary>How kubectl apply names an object in its output: gpufunction.pilotlight.dev/NAME.</summary>
    private static string KubectlName(AppliedObject o) => $"{o.Kind.ToLowerInvariant()}.{Group.Name}/{o.Name}";
}
