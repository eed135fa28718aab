using System.Globalization;
using System.Text.Json;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The chart's platform settings as the real processes take them, on a control plane of their own (no other operator
/// may reconcile the sandbox here): with <c>logging.format=json</c> the operator and the gateway write one JSON
/// object per line on stdout and nothing else; the operator started with the chart's flags gives a sandbox's pod the
/// sandbox's pull secrets then the platform's, and admits the gateway from the release namespace.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public sealed class PlatformSettingsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private ControlPlane _plane = null!;
    private Kubernetes _admin = null!;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly List<ManagedProcess> _processes = [];

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        // With API Priority and Fairness on, as a cluster has it (the shared control plane of the other tests has it off).
        _plane = await ControlPlane.StartAsync(ControlPlane.DefaultServiceClusterIpRange, priorityAndFairness: true);
        await _plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        _admin = _plane.CreateClient();
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        foreach (var process in _processes)
        {
            await process.StopAsync();
        }

        _http.Dispose();
        _admin?.Dispose();
        if (_plane is not null)
        {
            await _plane.DisposeAsync();
        }
    }

    /// <summary>The values of <paramref name="names"/> among a rendered component's flags ("--name value" pairs).</summary>
    private static async Task<List<string>> ChartFlagsAsync(string deployment, string[] set, params string[] names)
    {
        var yaml = await Helm.TemplateAsync(set: set);
        var document = yaml.Split("\n---\n").Single(d => d.Contains("\nkind: Deployment\n", StringComparison.Ordinal)
            && d.Contains($"\n  name: {deployment}\n", StringComparison.Ordinal));
        var args = KubernetesYaml.Deserialize<V1Deployment>(document).Spec.Template.Spec.Containers.Single().Args;
        var picked = new List<string>();
        for (var i = 0; i < args.Count - 1; i++)
        {
            if (names.Contains(args[i]))
            {
                picked.AddRange([args[i], args[i + 1]]);
            }
        }

        return picked;
    }

    private ManagedProcess Start(string dll, IEnumerable<string> args, string name)
    {
        var log = Path.Combine(_plane.Directory, $"{name}.log");
        var process = ManagedProcess.Start("dotnet", [Path.Combine(AppContext.BaseDirectory, dll), .. args], log, null, Path.Combine(_plane.Directory, $"{name}.cri.log"));
        _processes.Add(process);
        return process;
    }

    private async Task WaitReadyAsync(string url, ManagedProcess process) =>
        await Eventually.HoldsAsync(async () =>
        {
            Assert.That(process.HasExited, Is.False, $"{process.Name} exited:\n{process.LogTail()}");
            try
            {
                using var response = await _http.GetAsync(url);
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, Timeout, $"{url} ready ({process.LogTail(5)})");

    /// <summary>Stops the process (SIGTERM, as the kubelet does) and returns what it wrote, by stream, once it has exited.</summary>
    private static async Task<(List<string> Stdout, List<string> Stderr)> StopAndReadAsync(ManagedProcess process)
    {
        process.Terminate();
        Assert.That(process.WaitForExit(TimeSpan.FromSeconds(60)), Is.True, $"{process.Name} did not exit:\n{process.LogTail()}");
        return await process.ReadContainerLogAsync(Timeout);
    }

    private static List<JsonElement> JsonEntries(List<string> lines, string component) =>
        Pilotlight.Tests.RuntimeShim.SidecarLoggingTests.JsonEntries(lines, component);

    [Test]
    public async Task With_the_charts_json_logging_the_operator_logs_json_and_gives_a_sandboxs_pod_its_and_the_platforms_pull_secrets()
    {
        var ns = await _plane.CreateNamespaceAsync("platform");
        var chart = await ChartFlagsAsync("pilotlight-operator", ["logging.format=json", "logging.level=Debug", "image.platformPullSecrets={platform-registry}"],
            "--log-format", "--log-level", "--platform-image-pull-secrets", "--gateway-namespace");
        Assert.That(chart, Does.Contain("json").And.Contain("platform-registry").And.Contain(Helm.Namespace));
        var port = ControlPlane.FreePort();
        var op = Start("Pilotlight.Operator.dll",
            ["--kubeconfig", _plane.KubeconfigPath, "--metrics-port", port.ToString(CultureInfo.InvariantCulture), .. chart], "operator");
        await WaitReadyAsync($"http://127.0.0.1:{port}/readyz", op);

        await _admin.CustomObjects.CreateNamespacedCustomObjectAsync(new Sandbox
        {
            Metadata = new V1ObjectMeta { Name = "private" },
            Spec = new SandboxSpec { Image = "registry.example/tools:1", ImagePullSecrets = [new V1LocalObjectReference { Name = "team-registry" }] },
        }, Group.Name, Group.Version, ns, "sandboxes");
        var stored = await _admin.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", "private");
        Assert.That(stored.Spec.ImagePullSecrets?.Select(s => s.Name), Is.EqualTo(new[] { "team-registry" }), "the CRD keeps spec.imagePullSecrets");

        var pod = await Eventually.GetAsync(async () =>
            (await _admin.CoreV1.ListNamespacedPodAsync(ns)).Items.SingleOrDefault(), Timeout, $"the sandbox's pod ({op.LogTail(5)})");
        Assert.That(pod.Spec.ImagePullSecrets.Select(s => s.Name), Is.EqualTo(new[] { "team-registry", "platform-registry" }));
        foreach (var container in pod.Spec.Containers)
        {
            // The agent (in the sandbox container) and the meter log as the operator does.
            Assert.That(container.Env.Where(e => e.Name.StartsWith("PILOTLIGHT_LOG_", StringComparison.Ordinal)).Select(e => $"{e.Name}={e.Value}"),
                Is.EquivalentTo(new[] { "PILOTLIGHT_LOG_FORMAT=json", "PILOTLIGHT_LOG_LEVEL=Debug" }), container.Name);
        }

        var policy = await Eventually.GetAsync(async () =>
            (await _admin.NetworkingV1.ListNamespacedNetworkPolicyAsync(ns)).Items.SingleOrDefault(), Timeout, "the sandbox's NetworkPolicy");
        Assert.That(policy.Spec.Ingress[0].FromProperty.Single().NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"], Is.EqualTo(Helm.Namespace));

        var (stdout, stderr) = await StopAndReadAsync(op);
        Assert.That(stderr, Is.Empty, "nothing outside the JSON log");
        var entries = JsonEntries(stdout, "operator");
        var levels = entries.Select(e => e.GetProperty("LogLevel").GetString()).ToHashSet();
        Assert.That(levels, Does.Contain("Debug").And.Contain("Information"), "the chart's level (Debug) is honoured");
        Assert.That(entries.Select(e => e.GetProperty("Message").GetString()), Has.Some.StartsWith("Starting").And.Some.EqualTo("Stopped"));
    }

    [Test]
    public async Task With_the_charts_json_logging_the_gateway_logs_one_json_object_per_line()
    {
        var chart = await ChartFlagsAsync("pilotlight-gateway", ["logging.format=json", "logging.level=Debug"], "--log-format", "--log-level");
        Assert.That(chart, Is.EqualTo(new[] { "--log-level", "Debug", "--log-format", "json" }));
        var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        var gateway = Start("Pilotlight.Gateway.dll", ["--kubeconfig", _plane.KubeconfigPath, "--listen", url, "--drain-seconds", "1", .. chart], "gateway");
        await WaitReadyAsync($"{url}/readyz", gateway);
        using (var missing = await _http.GetAsync($"{url}/nowhere/nothing/"))
        {
            Assert.That((int)missing.StatusCode, Is.GreaterThanOrEqualTo(400));
        }

        var (stdout, stderr) = await StopAndReadAsync(gateway);
        Assert.That(stderr, Is.Empty, "nothing outside the JSON log");
        var entries = JsonEntries(stdout, "gateway");
        Assert.That(entries, Is.Not.Empty, "the gateway logged something to check");
        Assert.That(entries.Select(e => e.GetProperty("LogLevel").GetString()), Has.Some.EqualTo("Debug"));
    }

    [Test]
    public async Task Under_the_api_servers_priority_and_fairness_the_charts_auto_rate_limit_is_lifted()
    {
        var chart = await ChartFlagsAsync("pilotlight-operator", [], "--kube-api-qps", "--kube-api-burst");
        Assert.That(chart, Is.EquivalentTo(new[] { "--kube-api-qps", "auto", "--kube-api-burst", "200" }));

        // The real API server's answer carries the header the handler looks for.
        using (var handler = new ApiRateLimitHandler(100, 200, liftUnderFairness: true))
        using (var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(_plane.KubeconfigPath), handler))
        {
            Assert.That(handler.Lifted, Is.False);
            await client.CoreV1.ListNamespaceAsync();
            Assert.That(handler.Lifted, Is.True, $"an answer of the API server carries {ApiRateLimitHandler.FlowSchemaHeader}");
        }

        var port = ControlPlane.FreePort();
        var op = Start("Pilotlight.Operator.dll",
            ["--kubeconfig", _plane.KubeconfigPath, "--metrics-port", port.ToString(CultureInfo.InvariantCulture), "--namespace", "default", .. chart], "operator-auto");
        await WaitReadyAsync($"http://127.0.0.1:{port}/readyz", op);
        var (stdout, _) = await StopAndReadAsync(op);
        Assert.That(stdout, Has.Some.Contains("Priority and Fairness: the client-side limit of 100 requests a second is lifted"));
    }

    [Test]
    public async Task With_text_logging_by_default_the_operator_writes_plain_lines()
    {
        var chart = await ChartFlagsAsync("pilotlight-operator", [], "--log-format", "--log-level");
        Assert.That(chart, Is.Empty);
        var port = ControlPlane.FreePort();
        var op = Start("Pilotlight.Operator.dll", ["--kubeconfig", _plane.KubeconfigPath, "--metrics-port", port.ToString(CultureInfo.InvariantCulture), "--namespace", "default"], "operator-text");
        await WaitReadyAsync($"http://127.0.0.1:{port}/readyz", op);
        var (stdout, _) = await StopAndReadAsync(op);
        Assert.That(stdout, Has.Some.Contains("Starting"));
        Assert.That(stdout.Where(l => l.StartsWith('{')), Is.Empty, "the text format is not JSON (the JSON test above can fail)");
    }
}
