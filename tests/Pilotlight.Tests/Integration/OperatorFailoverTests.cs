using System.Globalization;
using System.Net;
using System.Text.Json;
using Regex = System.Text.RegularExpressions.Regex;
using RegexOptions = System.Text.RegularExpressions.RegexOptions;
using GeneratedRegexAttribute = System.Text.RegularExpressions.GeneratedRegexAttribute;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Gateway;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The operator as real processes (killed with SIGKILL, as a crash or an evicted node would),
/// on a control plane of its own so that killing and restarting them disturbs no other test: two
/// gateways, the chart's RBAC for both parts, simulated nodes running the real shim and model
/// server. Busy functions keep their pods across a leader's death, a restart and a gateway whose
/// demand cannot be read.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public sealed partial class OperatorFailoverTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly List<ManagedProcess> _operators = [];
    private ControlPlane _plane = null!;
    private Kubernetes _admin = null!;
    private Kubernetes _gatewayClient = null!;
    private Kubectl _kubectl = null!;
    private NodeSimulator _sim = null!;
    private WebApplication _gatewayA = null!;
    private WebApplication _gatewayB = null!;
    private DemandRelay _relay = null!;
    private HttpClient _http = null!;
    private string _operatorKubeconfig = "";

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        _plane = await ControlPlane.StartAsync();
        await _plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        await (await ChartRbac.RenderAsync()).InstallAsync(_plane);
        _admin = _plane.CreateClient();
        _kubectl = new Kubectl(_plane.KubeconfigPath);

        // The operator process acts as the chart's ServiceAccount: the admin kubeconfig with its token.
        _operatorKubeconfig = Path.Combine(_plane.Directory, "operator.kubeconfig");
        var admin = await File.ReadAllTextAsync(_plane.KubeconfigPath);
        await File.WriteAllTextAsync(_operatorKubeconfig,
            TokenLine().Replace(admin, $"    token: {_plane.UserToken(ChartRbac.OperatorUser)}"));

        _gatewayClient = _plane.CreateClient(ChartRbac.GatewayUser);
        _gatewayA = GatewayApp.Build(_gatewayClient, $"http://127.0.0.1:{ControlPlane.FreePort()}", registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await _gatewayA.StartAsync();
        _gatewayB = GatewayApp.Build(_gatewayClient, $"http://127.0.0.1:{ControlPlane.FreePort()}", registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await _gatewayB.StartAsync();
        _relay = new DemandRelay(new Uri(_gatewayB.Urls.First()), ControlPlane.FreePort());
        await _relay.StartAsync();

        _sim = new NodeSimulator(_admin, new NodeSimulatorOptions
        {
            PodNetwork = 22,
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(_plane.Directory, "pods")),
        });
        await _sim.StartAsync();
        await _sim.AddNodeAsync("failover-l4", GpuNodePreset.L4);
        _http = new HttpClient { Timeout = TimeSpan.FromMinutes(3) };
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        foreach (var op in _operators)
        {
            await op.StopAsync();
        }

        _http?.Dispose();
        if (_sim is not null)
        {
            await _sim.DeleteNodesAsync();
            await _sim.DisposeAsync();
        }

        foreach (var app in new[] { _gatewayA, _gatewayB })
        {
            if (app is not null)
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }

        if (_relay is not null)
        {
            await _relay.DisposeAsync();
        }

        _gatewayClient?.Dispose();
        _admin?.Dispose();
        if (_plane is not null)
        {
            await _plane.DisposeAsync();
        }
    }

    [GeneratedRegex(@"^\s*token: .*$", RegexOptions.Multiline)]
    private static partial Regex TokenLine();

    private sealed record OperatorProcess(string Identity, ManagedProcess Process, int MetricsPort);

    /// <summary>
    /// An operator process as the chart runs it (leader election on, both gateways), with the test's short windows and
    /// <paramref name="flags"/> (e.g. other sidecar images, as a chart upgrade would pass).
    /// </summary>
    private OperatorProcess StartOperator(string identity, params string[] flags)
    {
        var port = ControlPlane.FreePort();
        var process = ManagedProcess.Start("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "Pilotlight.Operator.dll"),
            "--kubeconfig", _operatorKubeconfig,
            "--leader-elect", "--lease-namespace", Helm.Namespace,
            "--gateways", $"{_gatewayA.Urls.First()},{_relay.Url}",
            "--endpoint-base", _gatewayA.Urls.First(),
            "--metrics-port", port.ToString(CultureInfo.InvariantCulture),
            "--stable-window", "6s", "--panic-window", "2s", "--autoscaler-tick", "500ms",
            .. flags,
        ], Path.Combine(_plane.Directory, $"{identity}.log"), new Dictionary<string, string> { ["POD_NAME"] = identity });
        _operators.Add(process);
        return new OperatorProcess(identity, process, port);
    }

    private async Task<string?> LeaseHolderAsync()
    {
        try
        {
            return (await _admin.CoordinationV1.ReadNamespacedLeaseAsync("pilotlight-operator", Helm.Namespace)).Spec.HolderIdentity;
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private async Task WaitForLeaderAsync(OperatorProcess op)
    {
        await Eventually.HoldsAsync(async () => await LeaseHolderAsync() == op.Identity && await MetricAsync(op, "pilotlight_controller_leader") == 1,
            Timeout, $"{op.Identity} leads ({op.Process.LogTail(5)})");
    }

    /// <summary>A sample of the operator's own /metrics, or null when absent.</summary>
    private async Task<double?> MetricAsync(OperatorProcess op, string name, string labels = "")
    {
        var text = await _http.GetStringAsync($"http://127.0.0.1:{op.MetricsPort}/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && (line.Length == name.Length || line[name.Length] is ' ' or '{') && line.Contains(labels, StringComparison.Ordinal))
            {
                return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    private async Task<string> DeployAsync(string name, string scaledownWindow, int maxReplicas)
    {
        var ns = await _plane.CreateNamespaceAsync(name);
        (await _kubectl.ApplyAsync($"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata:
              name: {name}
            spec:
              image: example/model-server:1
              # Failover is the subject here, not who may call (InvocationAccessTests): anyone may.
              access: Public
              env:
                - {"{"}name: LOAD_SECONDS, value: "1"{"}"}
              gpu: {"{"}type: L4{"}"}
              scaling:
                minReplicas: 0
                maxReplicas: {maxReplicas}
                maxConcurrency: 1
                scaledownWindow: {scaledownWindow}
              timeout: 3m
              startupTimeout: 1m
            """, ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.Conditions?.Any(c => c.Type == "Ready") == true,
            Timeout, $"{name} has status");
        return ns;
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        _admin.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<bool> AtZeroAsync(string ns, string name) =>
        (await GetAsync(ns, name)).Status?.DesiredReplicas == 0
        && (await _admin.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items
            .All(p => p.Metadata.DeletionTimestamp is not null);

    /// <summary>One long request; asserts it was answered 200 and its pod was never marked for deletion while it ran.</summary>
    private async Task<string> ServeAsync(string gateway, string ns, string name, int ms, ServingWatch watch)
    {
        using var response = await _http.PostAsync($"{gateway}/{ns}/{name}/predict?ms={ms}", new StringContent("long"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        var pod = JsonDocument.Parse(body).RootElement.GetProperty("pod").GetString()!;
        Assert.That(watch.Deleted, Does.Not.Contain(pod), $"{pod} was deleted while it served a request");
        Assert.That(watch.MinDesired, Is.GreaterThanOrEqualTo(1), "desired fell to zero while a request ran");
        return pod;
    }

    [Test]
    public async Task A_gateway_that_stops_answering_demand_polls_scales_nothing_down()
    {
        var op = StartOperator("op-quiet");
        try
        {
            await WaitForLeaderAsync(op);
            var ns = await DeployAsync("quiet", "3s", maxReplicas: 2);
            await using var watch = new ServingWatch(_admin, ns, "quiet");

            // A 15 s request through gateway B; then B's demand becomes unreadable (its relay stops)
            // while B itself goes on serving it.
            var request = ServeAsync(_gatewayB.Urls.First(), ns, "quiet", 15_000, watch);
            await Eventually.HoldsAsync(async () => (await GetAsync(ns, "quiet")).Status?.ReadyReplicas >= 1, Timeout, "quiet woke");
            await Eventually.HoldsAsync(() => _relay.LastReport.Contains("\"inFlight\":1", StringComparison.Ordinal)
                && _relay.LastReport.Contains(ns, StringComparison.Ordinal), Timeout, "the operator read B's in-flight request once");
            await _relay.StopAsync();
            watch.Reset();
            var unread = $"gateway=\"{_relay.Url}\"";

            await request;

            // Long after the request finished (3 s window, 6 s stable window), polls of B still fail: nothing goes.
            var atAnswer = await MetricAsync(op, "pilotlight_autoscaler_gateway_unread_total", unread) ?? 0;
            await Eventually.HoldsAsync(async () => await MetricAsync(op, "pilotlight_autoscaler_gateway_unread_total", unread) >= atAnswer + 24,
                Timeout, "a dozen seconds more of unread polls of gateway B");
            Assert.That(watch.Deleted, Is.Empty, "no pod was deleted while gateway B could not be read");
            Assert.That((await GetAsync(ns, "quiet")).Status!.DesiredReplicas, Is.GreaterThanOrEqualTo(1));
            Assert.That(await MetricAsync(op, "pilotlight_autoscaler_demand_unknown"), Is.EqualTo(1));

            // B answers again: now its demand is known (zero), and the function goes.
            await _relay.StartAsync();
            await Eventually.HoldsAsync(() => AtZeroAsync(ns, "quiet"), Timeout, "scaled to zero once every gateway answers again");
        }
        finally
        {
            await _relay.StartAsync();
            op.Process.Terminate();
            await Eventually.HoldsAsync(() => op.Process.HasExited, Timeout, "op-quiet stopped");
        }
    }

    [Test]
    public async Task Killing_the_leader_or_restarting_the_only_operator_deletes_no_serving_pod_and_loses_no_request()
    {
        var first = StartOperator("op-1");
        await WaitForLeaderAsync(first);
        var second = StartOperator("op-2");
        await Eventually.HoldsAsync(async () => await MetricAsync(second, "pilotlight_controller_leader") == 0, Timeout, "op-2 runs as a follower");

        var ns = await DeployAsync("busy", "3s", maxReplicas: 3);
        await using var watch = new ServingWatch(_admin, ns, "busy");
        var gateway = _gatewayA.Urls.First();

        // Two 40 s requests at maxConcurrency 1: two pods, both busy.
        var requests = Enumerable.Range(0, 2).Select(_ => ServeAsync(gateway, ns, "busy", 40_000, watch)).ToList();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "busy")).Status?.ReadyReplicas == 2 && await BusyPodsAsync() == 2,
            Timeout, "two pods serve");
        watch.Reset();

        // The leader dies mid-request; the follower waits out the Lease (no release on a crash) and takes over.
        await first.Process.StopAsync();
        await WaitForLeaderAsync(second);
        var desired = $"function=\"busy\"";
        await Eventually.HoldsAsync(async () => await MetricAsync(second, "pilotlight_autoscaler_desired_replicas", desired) is not null,
            Timeout, "the new leader decided for the busy function");
        Assert.That(requests.All(r => !r.IsCompleted), Is.True, "the requests were still running when the new leader took over");
        var pods = await Task.WhenAll(requests);
        Assert.That(pods.Distinct().Count(), Is.EqualTo(2), "each request had a pod of its own");

        // Then the only operator restarts while two requests run again.
        var again = Enumerable.Range(0, 2).Select(_ => ServeAsync(gateway, ns, "busy", 40_000, watch)).ToList();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "busy")).Status?.ReadyReplicas >= 2 && await BusyPodsAsync() >= 2,
            Timeout, "two pods serve again");
        watch.Reset();
        await second.Process.StopAsync();
        var third = StartOperator("op-3");
        await WaitForLeaderAsync(third);
        await Eventually.HoldsAsync(async () => await MetricAsync(third, "pilotlight_autoscaler_desired_replicas", desired) is not null,
            Timeout, "the restarted operator decided for the busy function");
        Assert.That(again.All(r => !r.IsCompleted), Is.True, "the requests were still running when the restarted operator took over");
        await Task.WhenAll(again);

        // And the restarted operator does run the function: idle, it goes to zero.
        await Eventually.HoldsAsync(() => AtZeroAsync(ns, "busy"), Timeout, "idle after the requests, scaled to zero by op-3");
        third.Process.Terminate();

        async Task<int> BusyPodsAsync()
        {
            var report = await _http.GetStringAsync($"{gateway}/internal/demand");
            using var doc = JsonDocument.Parse(report);
            return doc.RootElement.EnumerateArray()
                .Where(f => f.GetProperty("namespace").GetString() == ns)
                .SelectMany(f => f.GetProperty("pods").EnumerateObject())
                .Count(p => p.Value.GetInt32() > 0);
        }
    }

    [Test]
    public async Task Upgrading_the_sidecar_images_deletes_no_serving_pod_and_restartedAt_rolls_the_pods_onto_them()
    {
        const string name = "sidecars";
        const string newShim = "pilotlight/runtime-shim:0.2.0";
        const string newMeter = "pilotlight/meter:0.2.0";
        var first = StartOperator("op-upgrade-1");
        OperatorProcess? second = null;
        try
        {
            await WaitForLeaderAsync(first);
            var ns = await _plane.CreateNamespaceAsync("upgrade");
            string Manifest(int min) => $$"""
                apiVersion: pilotlight.dev/v1alpha1
                kind: GpuFunction
                metadata: {name: {{name}}}
                spec:
                  image: example/model-server:1
                  access: Public
                  env:
                    - {name: LOAD_SECONDS, value: "1"}
                  gpu: {type: L4}
                  scaling: {minReplicas: {{min}}, maxReplicas: 3, maxConcurrency: 1, scaledownWindow: 10m}
                  timeout: 3m
                  startupTimeout: 1m
                """;
            (await _kubectl.ApplyAsync(Manifest(1), ns)).EnsureSuccess();
            var original = (await Eventually.GetAsync(async () => (await PodsAsync(ns)).SingleOrDefault(PodReadiness.IsReady), Timeout, "one ready pod")).Metadata;
            Assert.That(Image(await PodAsync(ns, original.Name), FunctionPods.ShimContainer), Is.EqualTo(new FunctionPodOptions().ShimImage));
            await using var watch = new ServingWatch(_admin, ns, name);

            // A request runs across the upgrade: the chart's new release restarts the operator with new sidecar images.
            var request = ServeAsync(_gatewayA.Urls.First(), ns, name, 30_000, watch);
            first.Process.Terminate();
            await Eventually.HoldsAsync(() => first.Process.HasExited, Timeout, "op-upgrade-1 stopped");
            // As a pod made by an operator from before the autoscaler annotations: the upgraded one adds them, once.
            var strip = new { metadata = new { annotations = new Dictionary<string, string?> { [FunctionLabels.SafeToEvict] = null, [FunctionLabels.DoNotDisrupt] = null } } };
            await _admin.CoreV1.PatchNamespacedPodAsync(new k8s.Models.V1Patch(JsonSerializer.Serialize(strip), k8s.Models.V1Patch.PatchType.MergePatch), original.Name, ns);
            second = StartOperator("op-upgrade-2", "--shim-image", newShim, "--meter-image", newMeter);
            await WaitForLeaderAsync(second);
            await Eventually.HoldsAsync(async () => (await PodAsync(ns, original.Name)).Metadata.Annotations is { } notes
                && notes.TryGetValue(FunctionLabels.SafeToEvict, out var evict) && evict == "false"
                && notes.TryGetValue(FunctionLabels.DoNotDisrupt, out var disrupt) && disrupt == "true", Timeout, "the serving pod marked not evictable");

            // The upgraded operator runs the function: a second replica gets the new sidecars, the serving one stays.
            (await _kubectl.ApplyAsync(Manifest(2), ns)).EnsureSuccess();
            var added = await Eventually.GetAsync(async () => (await PodsAsync(ns))
                .SingleOrDefault(p => p.Metadata.Name != original.Name && PodReadiness.IsReady(p)), Timeout, "a second ready pod");
            Assert.That(Image(added, FunctionPods.ShimContainer), Is.EqualTo(newShim));
            Assert.That(Image(added, FunctionPods.MeterContainer), Is.EqualTo(newMeter));
            Assert.That(added.Spec.InitContainers.Single().Image, Is.EqualTo(newMeter));
            Assert.That(added.Metadata.Labels[FunctionLabels.TemplateHash], Is.EqualTo(original.Labels[FunctionLabels.TemplateHash]));
            Assert.That(request.IsCompleted, Is.False, "the request was still running when the upgraded operator had acted");
            Assert.That(await request, Is.EqualTo(original.Name), "the request was served by the pod that was serving before the upgrade");
            var kept = await PodAsync(ns, original.Name);
            Assert.That(kept.Metadata.Uid, Is.EqualTo(original.Uid));
            Assert.That(kept.Metadata.DeletionTimestamp, Is.Null);
            Assert.That(Image(kept, FunctionPods.ShimContainer), Is.EqualTo(new FunctionPodOptions().ShimImage), "a serving pod is not rolled for new sidecars");
            Assert.That(watch.Deleted, Is.Empty, "no pod was deleted by the upgrade");

            // Asked to (as `kubectl rollout restart` would a Deployment), the operator rolls both onto the new sidecars.
            var patch = new { metadata = new { annotations = new Dictionary<string, string> { [FunctionLabels.RestartedAt] = "2026-01-01T00:00:00Z" } } };
            await _admin.CustomObjects.PatchNamespacedCustomObjectAsync(new k8s.Models.V1Patch(JsonSerializer.Serialize(patch), k8s.Models.V1Patch.PatchType.MergePatch),
                Group.Name, Group.Version, ns, "gpufunctions", name);
            await Eventually.HoldsAsync(async () =>
            {
                var pods = (await PodsAsync(ns)).Where(p => p.Metadata.DeletionTimestamp is null).ToList();
                return pods.Count == 2 && pods.All(p => PodReadiness.IsReady(p) && Image(p, FunctionPods.ShimContainer) == newShim
                    && p.Metadata.Annotations is { } notes && notes.TryGetValue(FunctionLabels.RestartedAt, out var at) && at == "2026-01-01T00:00:00Z");
            }, Timeout, "two ready pods, both with the new sidecars");
            Assert.That(watch.Deleted, Does.Contain(original.Name));
        }
        finally
        {
            first.Process.Terminate();
            second?.Process.Terminate();
            await Eventually.HoldsAsync(() => first.Process.HasExited && (second?.Process.HasExited ?? true), Timeout, "both stopped");
        }

        async Task<IList<k8s.Models.V1Pod>> PodsAsync(string ns) =>
            (await _admin.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items;

        Task<k8s.Models.V1Pod> PodAsync(string ns, string pod) => _admin.CoreV1.ReadNamespacedPodAsync(pod, ns);

        static string Image(k8s.Models.V1Pod pod, string container) => pod.Spec.Containers.Single(c => c.Name == container).Image;
    }

    [Test]
    public async Task After_a_failover_the_gpu_seconds_summed_over_both_replicas_equal_the_ledger()
    {
        var first = StartOperator("op-ledger-1");
        await WaitForLeaderAsync(first);
        var second = StartOperator("op-ledger-2");
        await Eventually.HoldsAsync(async () => await MetricAsync(second, "pilotlight_controller_leader") == 0, Timeout, "op-ledger-2 runs as a follower");
        try
        {
            var ns = await _plane.CreateNamespaceAsync("ledger");
            string Manifest(int min) => $$"""
                apiVersion: pilotlight.dev/v1alpha1
                kind: GpuFunction
                metadata: {name: billed}
                spec:
                  image: example/model-server:1
                  gpu: {type: L4}
                  scaling: {minReplicas: {{min}}, maxReplicas: 1, scaledownWindow: 1s}
                """;
            (await _kubectl.ApplyAsync(Manifest(1), ns)).EnsureSuccess();
            var series = "function=\"billed\"";
            await Eventually.HoldsAsync(async () => await MetricAsync(first, "pilotlight_function_gpu_seconds_total", series) > 2,
                Timeout, "the leader bills the running pod");

            // The leader stalls (a long GC pause, a frozen node) past its Lease; the follower takes over. Resumed, the
            // ex-leader finds the Lease gone and stops leading, but runs on and is still scraped.
            Signal("STOP", first);
            try
            {
                await WaitForLeaderAsync(second);
            }
            finally
            {
                Signal("CONT", first);
            }

            await Eventually.HoldsAsync(async () => await MetricAsync(first, "pilotlight_controller_leader") == 0, Timeout, "op-ledger-1 follows");
            await Eventually.HoldsAsync(async () => await MetricAsync(second, "pilotlight_function_gpu_seconds_total", series) > 0,
                Timeout, "the new leader bills the pod");

            // The pod goes: the ledger's total is final, and what both replicas export must add up to it.
            (await _kubectl.ApplyAsync(Manifest(0), ns)).EnsureSuccess();
            var total = (await Eventually.GetAsync(async () => (await GetAsync(ns, "billed")).Status?.Usage is { OpenPods.Count: 0, GpuSeconds: > 0 } usage
                ? usage : null, Timeout, "the pod's usage closed in status")).GpuSeconds;
            await Eventually.HoldsAsync(async () => Math.Abs((await MetricAsync(second, "pilotlight_function_gpu_seconds_total", series) ?? 0) - total) < 0.01,
                Timeout, "the new leader exports the ledger's total");
            var exported = new[] { first, second }.Select(op => MetricAsync(op, "pilotlight_function_gpu_seconds_total", series)).ToList();
            var values = await Task.WhenAll(exported);
            Assert.That(values[0], Is.Null, "the ex-leader exports no GPU-seconds of its own");
            Assert.That(values.Sum(v => v ?? 0), Is.EqualTo(total).Within(0.01), "sum() over both replicas is the ledger's total");
            Assert.That(await MetricAsync(first, "pilotlight_autoscaler_desired_replicas", series), Is.Null, "nor autoscaler gauges");
        }
        finally
        {
            first.Process.Terminate();
            second.Process.Terminate();
            await Eventually.HoldsAsync(() => first.Process.HasExited && second.Process.HasExited, Timeout, "both stopped");
        }

        static void Signal(string signal, OperatorProcess op)
        {
            using var kill = System.Diagnostics.Process.Start("kill", [$"-{signal}", op.Process.Id.ToString(CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
            Assert.That(kill.ExitCode, Is.Zero, $"kill -{signal}");
        }
    }

    /// <summary>
    /// Stands between the operator and gateway B's internal endpoints (demand, and the signals' long polls), like a
    /// network path that can break: stopped, the operator's polls of B fail while B goes on serving.
    /// </summary>
    private sealed class DemandRelay(Uri target, int port) : IAsyncDisposable
    {
        private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
        private WebApplication? _app;

        public string Url { get; } = $"http://127.0.0.1:{port}/";

        public string LastReport { get; private set; } = "";

        public async Task StartAsync()
        {
            if (_app is not null)
            {
                return;
            }

            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls(Url);
            builder.Logging.ClearProviders();
            var app = builder.Build();
            app.MapGet("/internal/demand", async () =>
            {
                var report = await _http.GetStringAsync(new Uri(target, "/internal/demand"));
                LastReport = report;
                return Results.Content(report, "application/json");
            });
            app.MapGet(Pilotlight.Contracts.GatewaySignals.Path, async (HttpContext context) =>
                Results.Content(await _http.GetStringAsync(new Uri(target, Pilotlight.Contracts.GatewaySignals.Path + context.Request.QueryString), context.RequestAborted),
                    "application/json"));
            await app.StartAsync();
            _app = app;
        }

        public async Task StopAsync()
        {
            if (_app is { } app)
            {
                _app = null;
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _http.Dispose();
        }
    }
}
