using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Admission;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The operator's validating admission webhook on the real API server, installed from the chart's
/// configuration: mistakes and what a tenant must not do are refused at <c>kubectl apply</c> with the field
/// named; the same object admitted where the webhook does not reach ends InvalidSpec; the operator keeps the
/// configuration's caBundle and renews its certificate under the same CA with no refused request.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class WebhookAdmissionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private SharedOperator.Running _shared = null!;
    private Kubernetes _client = null!;
    private Kubectl _kubectl = null!;
    private string _guarded = "";
    private string _unguarded = "";

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        _shared = await SharedOperator.GetAsync();
        _client = _shared.Plane.CreateClient();
        _kubectl = new Kubectl(_shared.Plane.KubeconfigPath);
        _guarded = await _shared.Plane.CreateNamespaceAsync("webhook");
        var labels = new { metadata = new { labels = new Dictionary<string, string> { [SharedOperator.WebhookNamespaceLabel] = "on" } } };
        var label = new V1Patch(KubernetesJson.Serialize(labels), V1Patch.PatchType.MergePatch);
        await _client.CoreV1.PatchNamespaceAsync(label, _guarded);
        _unguarded = await _shared.Plane.CreateNamespaceAsync("no-webhook");
    }

    [OneTimeTearDown]
    public void TearDown() => _client.Dispose();

    private static string Function(string name, string spec) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          gpu: {"{"}type: L4{"}"}
        {spec}
        """;

    private static V1Pod LabelledPod(string name, Dictionary<string, string> labels) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, Labels = labels },
        // Never scheduled: no node carries this label, so no simulated kubelet starts anything for it.
        Spec = new V1PodSpec
        {
            Containers = [new V1Container { Name = "c", Image = "example/impostor:1" }],
            NodeSelector = new Dictionary<string, string> { ["pilotlight.dev/test-nowhere"] = "true" },
        },
    };

    [Test]
    public async Task Only_the_operator_may_put_pilotlight_labels_on_a_pod()
    {
        var pilotlight = new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "pilotlight", ["pilotlight.dev/reservation-for"] = "llm" };

        // Anyone else (here the cluster admin) is refused at create, with the labels named.
        var refused = await Assert.ThrowsAsync<k8s.Autorest.HttpOperationException>(() =>
            _client.CoreV1.CreateNamespacedPodAsync(LabelledPod("forged", pilotlight), _guarded));
        Assert.That(refused!.Response.Content, Does.Contain("only the Pilotlight operator may set").And.Contain("pilotlight.dev/reservation-for=llm"));

        // The operator may; and then no one else may change, add or remove those labels, though other edits pass.
        using var operatorClient = _shared.Plane.CreateClient(ChartRbac.OperatorUser);
        await operatorClient.CoreV1.CreateNamespacedPodAsync(LabelledPod("made", pilotlight), _guarded);
        foreach (var labels in new object[]
        {
            new Dictionary<string, string?> { ["pilotlight.dev/role"] = "serving" },
            new Dictionary<string, string?> { ["pilotlight.dev/reservation-for"] = "other" },
            new Dictionary<string, string?> { ["pilotlight.dev/reservation-for"] = null },
        })
        {
            var patch = new V1Patch(KubernetesJson.Serialize(new { metadata = new { labels } }), V1Patch.PatchType.MergePatch);
            var changed = await Assert.ThrowsAsync<k8s.Autorest.HttpOperationException>(() => _client.CoreV1.PatchNamespacedPodAsync(patch, "made", _guarded));
            Assert.That(changed!.Response.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Forbidden).Or.EqualTo((System.Net.HttpStatusCode)422));
        }

        var unrelated = new V1Patch("{\"metadata\":{\"labels\":{\"team\":\"a\"}}}", V1Patch.PatchType.MergePatch);
        await _client.CoreV1.PatchNamespacedPodAsync(unrelated, "made", _guarded);

        // A pod without Pilotlight's labels is not the webhook's business.
        await _client.CoreV1.CreateNamespacedPodAsync(LabelledPod("plain", new Dictionary<string, string> { ["app"] = "x" }), _guarded);
        foreach (var name in new[] { "made", "plain" })
        {
            await _client.CoreV1.DeleteNamespacedPodAsync(name, _guarded, gracePeriodSeconds: 0);
        }
    }

    private static IEnumerable<TestCaseData> Refused()
    {
        yield return new TestCaseData(Function("minmax", "  scaling: {minReplicas: 3, maxReplicas: 2}"), "spec.scaling.minReplicas").SetName("minReplicas over maxReplicas");
        yield return new TestCaseData(Function("warm", "  scaling: {maxReplicas: 1}\n  prewarm: {warmReplicas: 2}"), "spec.prewarm.warmReplicas").SetName("warmReplicas over maxReplicas");
        yield return new TestCaseData(Function("port", "  port: 8099"), "spec.port").SetName("the shim's port");
        yield return new TestCaseData(Function("host", "  volumes: [{name: root, hostPath: {path: /}}]"), "spec.volumes[0].hostPath").SetName("a hostPath volume");
        yield return new TestCaseData(Function("sa", "  serviceAccountName: cluster-admin"), "spec.serviceAccountName").SetName("a ServiceAccount not allowed");
        yield return new TestCaseData(Function("gpus", "  env: [{name: NVIDIA_VISIBLE_DEVICES, value: all}]"), "spec.env[0].name").SetName("NVIDIA_VISIBLE_DEVICES in env");
        yield return new TestCaseData(Function("prefix", "  envFrom: [{prefix: PILOTLIGHT_, configMapRef: {name: c}}]"), "spec.envFrom[0].prefix").SetName("an envFrom prefix into the sidecars' settings");
        yield return new TestCaseData("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata:
              name: unknown-gpu
            spec:
              image: example/model-server:1
              gpu: {type: B200, fallbacks: [x1000]}
            """, $"spec.gpu.type: GPU type 'B200' is not in the platform's GPU catalog (known: {string.Join(", ", SharedOperator.Catalog.Names)})")
            .SetName("a GPU type the platform's catalog lacks, with the known ones listed");
        yield return new TestCaseData(Function(new string('f', 64), ""), "metadata.name").SetName("a name too long for its Service");
        yield return new TestCaseData(Function("dotted.name", ""), "metadata.name").SetName("a name a Service cannot take");
        yield return new TestCaseData("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: sb
            spec:
              image: python:3.12
              env: [{name: NVIDIA_VISIBLE_DEVICES, value: all}]
            """, "spec.env[0].name").SetName("a sandbox asking for every GPU");
        yield return new TestCaseData("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: SandboxWarmPool
            metadata:
              name: pool
            spec:
              image: python:3.12
              runtimeClassName: none-such
            """, "runtimeClassName 'none-such' is not allowed").SetName("a warm pool on a runtime class not allowed");
        yield return new TestCaseData("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: big
            spec:
              image: python:3.12
              workspaceSize: 500Gi
            """, "spec.workspaceSize").SetName("a sandbox workspace over the platform's cap");
        yield return new TestCaseData("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: SandboxWarmPool
            metadata:
              name: bigpool
            spec:
              image: python:3.12
              workspaceSize: 500Gi
            """, "spec.workspaceSize").SetName("a warm pool workspace over the platform's cap");
        yield return new TestCaseData("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: imds
            spec:
              image: python:3.12
              network: {allowCidrs: [169.254.169.254/32]}
            """, "spec.network.allowCidrs[0]").SetName("a sandbox asking for the cloud metadata address");
    }

    [TestCaseSource(nameof(Refused))]
    public async Task Refused_at_apply_with_the_field_named(string manifest, string field)
    {
        var apply = await _kubectl.ApplyAsync(manifest, _guarded);

        Assert.That(apply.ExitCode, Is.Not.Zero, apply.StandardOutput);
        Assert.That(apply.StandardError, Does.Contain("denied the request").And.Contain(field));
    }

    [Test]
    public async Task A_gpu_type_only_the_platforms_catalog_names_is_admitted()
    {
        // X1000 is in the suite's catalog (SharedOperator.Catalog), not the shipped one: the API takes any name the catalog has.
        (await _kubectl.ApplyAsync(Function("custom-gpu", "").Replace("type: L4", "type: X1000, fallbacks: [l4]"), _guarded)).EnsureSuccess();
    }

    [Test]
    public async Task A_valid_function_is_admitted_and_a_later_metadata_change_too()
    {
        (await _kubectl.ApplyAsync(Function("fine", "  port: 9000\n  volumes: [{name: cache, emptyDir: {}}]"), _guarded)).EnsureSuccess();

        // Labels and annotations (the gateway's wake stamp, a GitOps tool's) never go through the spec rules.
        (await _kubectl.RunAsync(["annotate", "gfn", "fine", "-n", _guarded, "example.dev/owner=ml"])).EnsureSuccess();
    }

    [Test]
    public async Task Every_sample_passes_the_webhook()
    {
        // Under the suite's policy, which allows the transcriber sample's ServiceAccount as its comment asks.
        var samples = Directory.GetFiles(Path.Combine(RepositoryRoot.Path, "samples"), "*.yaml", SearchOption.AllDirectories);
        Assert.That(samples, Is.Not.Empty);
        foreach (var sample in samples)
        {
            var apply = await _kubectl.RunAsync(["apply", "-n", _guarded, "-f", sample]);
            Assert.That(apply.ExitCode, Is.Zero, $"{Path.GetFileName(sample)}: {apply.StandardError}");

            // Gone again at once: a sample's warm pods must not take GPUs from other classes' nodes. The RBAC samples are
            // cluster-scoped roles other classes bind to (SandboxTests applies the same one): they stay.
            if (Path.GetFileName(Path.GetDirectoryName(sample)) != "rbac")
            {
                (await _kubectl.RunAsync(["delete", "-n", _guarded, "-f", sample, "--wait=false"])).EnsureSuccess();
            }
        }
    }

    [Test]
    public async Task An_object_the_webhook_did_not_see_is_InvalidSpec_and_gets_no_pod()
    {
        // Outside the webhook's namespaces: what an object admitted while the webhook was down looks like.
        (await _kubectl.ApplyAsync(Function("slipped", "  port: 9102\n  scaling: {minReplicas: 1}"), _unguarded)).EnsureSuccess();

        var function = await Eventually.GetAsync(async () =>
        {
            var f = await _client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, _unguarded, "gpufunctions", "slipped");
            return f.Status?.Conditions?.FirstOrDefault(c => c.Type == FunctionConditions.Ready)?.Reason == FunctionConditions.Reasons.InvalidSpec ? f : null;
        }, Timeout, "the function InvalidSpec");

        Assert.That(function.Status!.Conditions!.First(c => c.Type == FunctionConditions.Ready).Message, Does.Contain("spec.port: 9102"));
        var pods = await _client.CoreV1.ListNamespacedPodAsync(_unguarded, labelSelector: $"{FunctionLabels.Function}=slipped");
        Assert.That(pods.Items, Is.Empty, "minReplicas 1, but nothing runs");
    }

    [Test]
    public async Task The_operator_keeps_the_caBundle_and_renews_its_certificate_under_the_same_CA()
    {
        var secretName = SharedOperator.WebhookName + "-tls";
        var before = await _client.CoreV1.ReadNamespacedSecretAsync(secretName, Helm.Namespace);
        var configuration = await _client.AdmissionregistrationV1.ReadValidatingWebhookConfigurationAsync(SharedOperator.WebhookName);
        Assert.That(configuration.Webhooks.Select(w => w.ClientConfig.CaBundle).ToList(), Has.Count.EqualTo(2).And.All.EqualTo(before.Data["ca.crt"]), "written by the operator, for functions and pods");
        Assert.That(Thumbprint(await ServedCertificateAsync()), Is.EqualTo(Thumbprint(before.Data["tls.crt"])));

        // Another replica (as the operator's ServiceAccount) finds the certificate due and renews it.
        using (var operatorClient = _shared.Plane.CreateClient(ChartRbac.OperatorUser))
        {
            await new WebhookCertificates(operatorClient, new WebhookCertificateOptions
            {
                Secret = new(Helm.Namespace, secretName), Hosts = ["127.0.0.1"], Configuration = SharedOperator.WebhookName,
                RenewBefore = TimeSpan.FromDays(400),
            }).EnsureAsync(CancellationToken.None);
        }

        var after = await _client.CoreV1.ReadNamespacedSecretAsync(secretName, Helm.Namespace);
        Assert.That(after.Data["tls.crt"], Is.Not.EqualTo(before.Data["tls.crt"]), "renewed");
        Assert.That(after.Data["ca.crt"], Is.EqualTo(before.Data["ca.crt"]), "under the same CA, so the caBundle stays valid");

        // This replica's periodic check picks the new certificate up; admission works throughout.
        await _shared.WebhookCertificates!.EnsureAsync(CancellationToken.None);
        Assert.That(Thumbprint(await ServedCertificateAsync()), Is.EqualTo(Thumbprint(after.Data["tls.crt"])));
        (await _kubectl.ApplyAsync(Function("after-renewal", ""), _guarded)).EnsureSuccess();
        Assert.That((await _kubectl.ApplyAsync(Function("after-renewal-bad", "  port: 8022"), _guarded)).StandardError, Does.Contain("spec.port"));
    }

    private static string Thumbprint(byte[] pem)
    {
        using var cert = X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(pem));
        return cert.Thumbprint;
    }

    private static string Thumbprint(X509Certificate2 cert)
    {
        using (cert)
        {
            return cert.Thumbprint;
        }
    }

    private async Task<X509Certificate2> ServedCertificateAsync()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _shared.WebhookPort);
        await using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("127.0.0.1");
        return new X509Certificate2(tls.RemoteCertificate!);
    }
}
