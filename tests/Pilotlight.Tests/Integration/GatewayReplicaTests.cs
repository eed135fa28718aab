using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.Json;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Gateway;
using Pilotlight.Operator.Functions;
using Regex = System.Text.RegularExpressions.Regex;
using RegexOptions = System.Text.RegularExpressions.RegexOptions;
using GeneratedRegexAttribute = System.Text.RegularExpressions.GeneratedRegexAttribute;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Several gateway replicas, as the chart runs them: the operator process (the chart's
/// ServiceAccount and RBAC) is given only <c>--gateway-service</c> and finds both gateways in that
/// Service's Endpoints, which this test writes as the endpoints controller would for two gateway
/// pods. Their demand adds up, and a gateway that stops answering while it still serves a request
/// scales nothing down. The API server refuses loopback addresses in Endpoints, so the gateways
/// listen on this machine's first non-loopback IPv4 address.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public sealed partial class GatewayReplicaTests
{
    private const string Service = "test-gateway-pods";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private ControlPlane _plane = null!;
    private Kubernetes _admin = null!;
    private Kubernetes _gatewayClient = null!;
    private Kubectl _kubectl = null!;
    private NodeSimulator _sim = null!;
    private WebApplication _gatewayA = null!;
    private WebApplication _gatewayB = null!;
    private (string Ip, int Port) _a;
    private (string Ip, int Port) _b;
    private HttpClient _http = null!;
    private ManagedProcess? _operator;
    private int _metricsPort;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        var ip = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a) && !a.ToString().StartsWith("169.254.", StringComparison.Ordinal));
        if (ip is null)
        {
            Assert.Ignore("needs a non-loopback IPv4 address: the API server refuses loopback addresses in Endpoints");
        }

        _plane = await ControlPlane.StartAsync();
        await _plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        await (await ChartRbac.RenderAsync()).InstallAsync(_plane);
        _admin = _plane.CreateClient();
        _kubectl = new Kubectl(_plane.KubeconfigPath);

        _gatewayClient = _plane.CreateClient(ChartRbac.GatewayUser);
        _a = (ip!.ToString(), ControlPlane.FreePort());
        _b = (ip.ToString(), ControlPlane.FreePort());
        _gatewayA = GatewayApp.Build(_gatewayClient, Url(_a), registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await _gatewayA.StartAsync();
        // B is stopped mid-request below: it finishes what it serves for up to its drain bound.
        _gatewayB = GatewayApp.Build(_gatewayClient, Url(_b), new GatewayOptions { DrainTimeout = TimeSpan.FromMinutes(2) },
            registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await _gatewayB.StartAsync();

        // A Service without a selector, so no endpoints controller touches its Endpoints: the test
        // writes them as the controller would for two gateway pods.
        await _admin.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = Service },
            Spec = new V1ServiceSpec { ClusterIP = "None", Ports = [new V1ServicePort { Name = "http", Port = 8080 }] },
        }, Helm.Namespace);
        await WriteEndpointsAsync(_a, _b);

        _sim = new NodeSimulator(_admin, new NodeSimulatorOptions
        {
            PodNetwork = 23,
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(_plane.Directory, "pods")),
        });
        await _sim.StartAsync();
        await _sim.AddNodeAsync("replicas-l4", GpuNodePreset.L4);
        _http = new HttpClient { Timeout = TimeSpan.FromMinutes(3) };

        // The operator as the chart runs it (its ServiceAccount's token), told only where the gateway pods are listed.
        var kubeconfig = Path.Combine(_plane.Directory, "operator.kubeconfig");
        await File.WriteAllTextAsync(kubeconfig,
            TokenLine().Replace(await File.ReadAllTextAsync(_plane.KubeconfigPath), $"    token: {_plane.UserToken(ChartRbac.OperatorUser)}"));
        _metricsPort = ControlPlane.FreePort();
        _operator = ManagedProcess.Start("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "Pilotlight.Operator.dll"),
            "--kubeconfig", kubeconfig,
            "--leader-elect", "--lease-namespace", Helm.Namespace,
            "--gateway-service", $"{Helm.Namespace}/{Service}",
            "--endpoint-base", Url(_a),
            "--metrics-port", _metricsPort.ToString(CultureInfo.InvariantCulture),
            "--stable-window", "6s", "--panic-window", "2s", "--autoscaler-tick", "500ms",
        ], Path.Combine(_plane.Directory, "operator.log"), new Dictionary<string, string> { ["POD_NAME"] = "op-replicas" });
        await Eventually.HoldsAsync(async () => await MetricAsync("pilotlight_controller_leader") == 1, Timeout,
            $"the operator leads ({_operator.LogTail(5)})");
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        if (_operator is not null)
        {
            await _operator.StopAsync();
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

        _gatewayClient?.Dispose();
        _admin?.Dispose();
        if (_plane is not null)
        {
            await _plane.DisposeAsync();
        }
    }

    [GeneratedRegex(@"^\s*token: .*$", RegexOptions.Multiline)]
    private static partial Regex TokenLine();

    private static string Url((string Ip, int Port) gateway) => $"http://{gateway.Ip}:{gateway.Port}";

    /// <summary>The Service's Endpoints: one subset per gateway (same address, each its own port).</summary>
    private async Task WriteEndpointsAsync(params (string Ip, int Port)[] gateways)
    {
        var endpoints = new V1Endpoints
        {
            Metadata = new V1ObjectMeta { Name = Service, NamespaceProperty = Helm.Namespace },
            Subsets = [.. gateways.Select(g => new V1EndpointSubset
            {
                Addresses = [new V1EndpointAddress { Ip = g.Ip }],
                Ports = [new Corev1EndpointPort { Name = "http", Port = g.Port }],
            })],
        };
        try
        {
            var current = await _admin.CoreV1.ReadNamespacedEndpointsAsync(Service, Helm.Namespace);
            endpoints.Metadata.ResourceVersion = current.Metadata.ResourceVersion;
            await _admin.CoreV1.ReplaceNamespacedEndpointsAsync(endpoints, Service, Helm.Namespace);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            await _admin.CoreV1.CreateNamespacedEndpointsAsync(endpoints, Helm.Namespace);
        }
    }

    /// <summary>A sample of the operator's /metrics, or null when absent.</summary>
    private async Task<double?> MetricAsync(string name, string labels = "")
    {
        var text = await _http.GetStringAsync($"http://127.0.0.1:{_metricsPort}/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && (line.Length == name.Length || line[name.Length] is ' ' or '{') && line.Contains(labels, StringComparison.Ordinal))
            {
                return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        _admin.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    /// <summary>Requests a gateway has sent to a pod of the namespace (dispatched, not held).</summary>
    private async Task<int> DispatchedAsync((string Ip, int Port) gateway, string ns)
    {
        using var doc = JsonDocument.Parse(await _http.GetStringAsync($"{Url(gateway)}/internal/demand"));
        return doc.RootElement.EnumerateArray()
            .Where(f => f.GetProperty("namespace").GetString() == ns)
            .SelectMany(f => f.GetProperty("pods").EnumerateObject())
            .Sum(p => p.Value.GetInt32());
    }

    [Test]
    public async Task Two_gateways_demand_adds_up_and_a_stopped_gateway_scales_nothing_down()
    {
        var ns = await _plane.CreateNamespaceAsync("replicas");
        (await _kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata:
              name: fn
            spec:
              image: example/model-server:1
              # Replicas are the subject here, not who may call (InvocationAccessTests): anyone may.
              access: Public
              env:
                - {name: LOAD_SECONDS, value: "1"}
              gpu: {type: L4}
              scaling:
                minReplicas: 0
                maxReplicas: 3
                maxConcurrency: 2
                targetConcurrency: 1
                scaledownWindow: 3s
              timeout: 3m
              startupTimeout: 1m
            """, ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "fn")).Status?.Conditions?.Any(c => c.Type == "Ready") == true,
            Timeout, "fn has status");
        await using var watch = new ServingWatch(_admin, ns, "fn");

        // One request through each gateway. Each gateway knows only its own; the operator, told
        // only of the Service, must read both pods to see two in flight. (maxConcurrency 2: the
        // gateways do not know each other's load, and a pod's shim would queue one behind the other.)
        var viaA = ServeAsync(_a, ns, 20_000, watch);
        var viaB = ServeAsync(_b, ns, 60_000, watch);
        var inFlight = $"namespace=\"{ns}\",function=\"fn\"";
        await Eventually.HoldsAsync(async () => await MetricAsync("pilotlight_autoscaler_in_flight", inFlight) == 2, Timeout,
            $"the autoscaler sees both gateways' requests ({_operator!.LogTail(5)})");
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "fn")).Status?.DesiredReplicas >= 2, Timeout,
            "desired replicas count both requests (targetConcurrency 1)");
        await Eventually.HoldsAsync(async () => await DispatchedAsync(_a, ns) == 1 && await DispatchedAsync(_b, ns) == 1, Timeout,
            "both requests were sent to pods");

        // Gateway B stops listening (a pod going away, or a network fault) while its request runs on:
        // it is still listed, cannot be read, and its demand is unknown, not zero.
        watch.Reset();
        var unread = $"gateway=\"{Helm.Namespace}/{Service}\"";
        var stoppingB = _gatewayB.StopAsync();
        await Eventually.HoldsAsync(async () => await MetricAsync("pilotlight_autoscaler_gateway_unread", unread) == 1, Timeout,
            "the operator notices that gateway B cannot be read");
        await viaA;

        // Well past A's request and its 3 s scaledown window, nothing has gone: B's pod is busy with a
        // request the operator cannot see, A's is idle but demand is incomplete.
        var atAnswer = await MetricAsync("pilotlight_autoscaler_gateway_unread_total", unread) ?? 0;
        await Eventually.HoldsAsync(async () => await MetricAsync("pilotlight_autoscaler_gateway_unread_total", unread) >= atAnswer + 14,
            Timeout, "seven seconds more of unread polls of gateway B");
        Assert.That(viaB.IsCompleted, Is.False, $"B's request still runs ({viaB.Status})");
        Assert.That(watch.Deleted, Is.Empty, "no pod was deleted while gateway B could not be read");
        Assert.That(watch.MinDesired, Is.GreaterThanOrEqualTo(2), "desired did not drop while gateway B could not be read");
        Assert.That(await MetricAsync("pilotlight_autoscaler_demand_unknown"), Is.EqualTo(1));

        await viaB;
        await stoppingB;

        // B's pod is gone from the Endpoints (as the endpoints controller does): demand is complete and idle.
        await WriteEndpointsAsync(_a);
        await Eventually.HoldsAsync(async () => await MetricAsync("pilotlight_autoscaler_gateway_unread", unread) == 0, Timeout,
            "every listed gateway is read again");
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "fn")).Status?.DesiredReplicas == 0
                && (await _admin.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=fn")).Items.All(p => p.Metadata.DeletionTimestamp is not null),
            Timeout, "scaled to zero once demand is known again");
    }

    /// <summary>One long request; asserts it was answered 200 and its pod was never marked for deletion while it ran.</summary>
    private async Task<string> ServeAsync((string Ip, int Port) gateway, string ns, int ms, ServingWatch watch)
    {
        using var response = await _http.PostAsync($"{Url(gateway)}/{ns}/fn/predict?ms={ms}", new StringContent("long"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        var pod = JsonDocument.Parse(body).RootElement.GetProperty("pod").GetString()!;
        Assert.That(watch.Deleted, Does.Not.Contain(pod), $"{pod} was deleted while it served a request");
        return pod;
    }
}
