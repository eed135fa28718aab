using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>How a bench's gateways and operator run.</summary>
internal sealed record BenchTopology
{
    /// <summary>One gateway and the operator inside the bench process (quick to start; they share its CPU and GC).</summary>
    public static BenchTopology InProcess { get; } = new();

    /// <summary>
    /// Gateways run as their own processes from the built <c>Pilotlight.Gateway.dll</c> with its command-line
    /// flags, as a deployment runs them; 0: one gateway inside the bench process.
    /// </summary>
    public int GatewayProcesses { get; init; }

    /// <summary>Flags added to every gateway process's command line (e.g. <c>--drain-seconds</c>).</summary>
    public IReadOnlyList<string> GatewayArgs { get; init; } = [];

    /// <summary>
    /// The gateway processes are listed in a selector-less Service's Endpoints that the bench keeps (as the
    /// endpoints controller would, from each gateway's <c>/readyz</c>), and the operator runs as its own process
    /// told only <c>--gateway-service</c>. The API server refuses loopback addresses in Endpoints, so the gateways
    /// then listen on this machine's first non-loopback IPv4 address (traffic to it stays on this machine).
    /// </summary>
    public bool GatewayService { get; init; }

    /// <summary>Flags added to the operator process's command line (with <see cref="GatewayService"/>).</summary>
    public IReadOnlyList<string> OperatorArgs { get; init; } = [];
}

/// <summary>
/// What the end-to-end benchmarks measure against: a fresh local control plane with the CRDs, one simulated node
/// whose pods run as real processes, the gateway(s) and the operator (with admin rights; RBAC is the tests' concern),
/// placed as <see cref="BenchTopology"/> says. Stop it before reading what the bench's own watches saw; dispose it
/// to tear everything down.
/// </summary>
internal sealed class BenchStack : IAsyncDisposable
{
    /// <summary>Namespace of the gateway Service (<see cref="BenchTopology.GatewayService"/>).</summary>
    public const string GatewayServiceNamespace = "pilotlight-system";

    /// <summary>Name of the gateway Service.</summary>
    public const string GatewayServiceName = "bench-gateway-pods";

    private readonly CancellationTokenSource _stop = new();
    private readonly List<BenchGateway> _gateways = [];
    private Task _operator = Task.CompletedTask;
    private Task _endpointsKeeper = Task.CompletedTask;
    private ManagedProcess? _operatorProcess;

    private BenchStack(ControlPlane plane, Kubernetes client, NodeSimulator simulator, BenchTopology topology)
    {
        Plane = plane;
        Client = client;
        Simulator = simulator;
        Topology = topology;
    }

    public ControlPlane Plane { get; }

    public Kubernetes Client { get; }

    public NodeSimulator Simulator { get; }

    public BenchTopology Topology { get; }

    /// <summary>Every gateway, in start order.</summary>
    public IReadOnlyList<BenchGateway> Gateways => _gateways;

    /// <summary>The first gateway's URL.</summary>
    public string GatewayUrl => _gateways[0].Url;

    /// <summary>The operator's <c>/metrics</c> URL when it runs as a process, else null.</summary>
    public string? OperatorMetricsUrl { get; private set; }

    /// <summary>Cancelled by <see cref="StopAsync"/>: for the bench's own watches.</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>
    /// A token for the gateway's audience of a ServiceAccount that may invoke every function (the chart's invoker
    /// role, bound cluster-wide), as a caller of a private function presents it.
    /// </summary>
    public async Task<string> InvokerTokenAsync()
    {
        await Client.RbacAuthorizationV1.CreateClusterRoleAsync(new V1ClusterRole
        {
            Metadata = new V1ObjectMeta { Name = "pilotlight-invoker" },
            Rules = [new V1PolicyRule { ApiGroups = [Pilotlight.Api.V1Alpha1.Group.Name], Resources = ["gpufunctions/invoke"], Verbs = ["create"] }],
        });
        await Client.CoreV1.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = "bench-caller" } }, "default");
        await Client.RbacAuthorizationV1.CreateClusterRoleBindingAsync(new V1ClusterRoleBinding
        {
            Metadata = new V1ObjectMeta { Name = "bench-caller" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-invoker" },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = "bench-caller", NamespaceProperty = "default" }],
        });
        var token = await Client.CoreV1.CreateNamespacedServiceAccountTokenAsync(new Authenticationv1TokenRequest
        {
            Spec = new V1TokenRequestSpec { Audiences = [new InvocationAccessOptions().Audience], ExpirationSeconds = 6 * 3600 },
        }, "bench-caller", "default");
        return token.Status.Token;
    }

    /// <summary>Starts everything.</summary>
    /// <param name="bench">The bench's name, for progress lines.</param>
    /// <param name="node">The name of the one simulated node.</param>
    /// <param name="preset">What kind of node it is.</param>
    /// <param name="configure">Changes to the in-process operator's options (the gateways are always set).</param>
    /// <param name="topology">Where gateways and operator run; default: all in the bench process.</param>
    public static async Task<BenchStack> StartAsync(string bench, string node, GpuNodePreset preset,
        Func<OperatorOptions, OperatorOptions>? configure = null, BenchTopology? topology = null)
    {
        topology ??= BenchTopology.InProcess;
        Console.Error.WriteLine($"bench: {bench}: starting control plane, simulated nodes, operator and gateway");
        var plane = await ControlPlane.StartAsync();
        await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        var client = plane.CreateClient();
        var simulator = new NodeSimulator(client, new NodeSimulatorOptions
        {
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(plane.Directory, "pods")),
        });
        await simulator.StartAsync();
        await simulator.AddNodeAsync(node, preset);
        var stack = new BenchStack(plane, client, simulator, topology);
        try
        {
            await stack.StartGatewaysAndOperatorAsync(configure);
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }

        return stack;
    }

    private async Task StartGatewaysAndOperatorAsync(Func<OperatorOptions, OperatorOptions>? configure)
    {
        if (Topology.GatewayProcesses == 0)
        {
            var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
            var app = GatewayApp.Build(Client, url, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
            await app.StartAsync();
            _gateways.Add(new BenchGateway(url, app));
        }
        else
        {
            var ip = Topology.GatewayService ? HostAddress() : "127.0.0.1";
            for (var i = 0; i < Topology.GatewayProcesses; i++)
            {
                var gateway = new BenchGateway($"http://{ip}:{ControlPlane.FreePort()}", this, i);
                await gateway.StartAsync();
                _gateways.Add(gateway);
            }
        }

        if (!Topology.GatewayService)
        {
            var options = new OperatorOptions { Gateways = [.. _gateways.Select(g => new Uri(g.Url))] };
            _operator = PilotlightOperator.Create(Client, configure?.Invoke(options) ?? options, new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()))
                .RunAsync(_stop.Token);
            return;
        }

        // A Service without a selector: no endpoints controller writes its Endpoints, the keeper below does.
        await Client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = GatewayServiceNamespace } });
        await Client.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = GatewayServiceName },
            Spec = new V1ServiceSpec { ClusterIP = "None", Ports = [new V1ServicePort { Name = "http", Port = 8080 }] },
        }, GatewayServiceNamespace);
        await WriteEndpointsAsync(_gateways.Select(g => (g, true)).ToList());
        _endpointsKeeper = KeepEndpointsAsync(_stop.Token);

        var metricsPort = ControlPlane.FreePort();
        OperatorMetricsUrl = $"http://127.0.0.1:{metricsPort}/metrics";
        _operatorProcess = ManagedProcess.Start("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "Pilotlight.Operator.dll"),
            "--kubeconfig", Plane.KubeconfigPath,
            "--gateway-service", $"{GatewayServiceNamespace}/{GatewayServiceName}",
            "--endpoint-base", GatewayUrl,
            "--metrics-port", metricsPort.ToString(CultureInfo.InvariantCulture),
            .. Topology.OperatorArgs,
        ], Path.Combine(Plane.Directory, "operator.log"));
        await WaitOkAsync(OperatorMetricsUrl, () => _operatorProcess.HasExited ? $"the operator exited: {_operatorProcess.LogTail(10)}" : null);
    }

    /// <summary>
    /// Rewrites the gateway Service's Endpoints from each gateway's <c>/readyz</c> every 250 ms, as the endpoints
    /// controller does from kubelet readiness probes (only faster): a draining or dead gateway moves to
    /// notReadyAddresses, which the operator counts as unread.
    /// </summary>
    private async Task KeepEndpointsAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMilliseconds(500) };
        List<(BenchGateway, bool)> last = [];
        while (!cancellationToken.IsCancellationRequested)
        {
            var listed = new List<(BenchGateway, bool)>();
            foreach (var g in _gateways.Where(g => g.Listed))
            {
                listed.Add((g, await IsReadyAsync(http, g.Url, cancellationToken)));
            }

            foreach (var g in _gateways)
            {
                g.ListedReady = listed.Contains((g, true));
            }

            if (!listed.SequenceEqual(last))
            {
                try
                {
                    await WriteEndpointsAsync(listed);
                    last = listed;
                }
                catch (Exception e) when (e is HttpRequestException or k8s.Autorest.HttpOperationException && !cancellationToken.IsCancellationRequested)
                {
                    Console.Error.WriteLine($"bench: gateway Endpoints not written: {e.Message}");
                }
            }

            try
            {
                await Task.Delay(250, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task<bool> IsReadyAsync(HttpClient http, string url, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync($"{url}/readyz", cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            // Unreachable, too slow, or the stack is stopping (the keeper's loop then ends).
            return false;
        }
    }

    /// <summary>The gateway Service's Endpoints: one subset per gateway (same address, each its own port).</summary>
    private async Task WriteEndpointsAsync(IReadOnlyList<(BenchGateway Gateway, bool Ready)> gateways)
    {
        var endpoints = new V1Endpoints
        {
            Metadata = new V1ObjectMeta { Name = GatewayServiceName, NamespaceProperty = GatewayServiceNamespace },
            Subsets = [.. gateways.Select(g =>
            {
                var uri = new Uri(g.Gateway.Url);
                var address = new V1EndpointAddress { Ip = uri.Host };
                return new V1EndpointSubset
                {
                    Addresses = g.Ready ? [address] : null,
                    NotReadyAddresses = g.Ready ? null : [address],
                    Ports = [new Corev1EndpointPort { Name = "http", Port = uri.Port }],
                };
            })],
        };
        try
        {
            var current = await Client.CoreV1.ReadNamespacedEndpointsAsync(GatewayServiceName, GatewayServiceNamespace);
            endpoints.Metadata.ResourceVersion = current.Metadata.ResourceVersion;
            await Client.CoreV1.ReplaceNamespacedEndpointsAsync(endpoints, GatewayServiceName, GatewayServiceNamespace);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            await Client.CoreV1.CreateNamespacedEndpointsAsync(endpoints, GatewayServiceNamespace);
        }
    }

    private static string HostAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a) && !a.ToString().StartsWith("169.254.", StringComparison.Ordinal))
            ?.ToString()
        ?? throw new InvalidOperationException("a gateway Service needs a non-loopback IPv4 address: the API server refuses loopback ones in Endpoints");

    /// <summary>Waits (up to a minute) until <paramref name="url"/> answers 2xx; <paramref name="failed"/> says why to give up early.</summary>
    internal static async Task WaitOkAsync(string url, Func<string?> failed)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (DateTime.UtcNow < deadline)
        {
            if (failed() is { } why)
            {
                throw new InvalidOperationException(why);
            }

            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{url} never answered");
    }

    /// <summary>Stops the operator, the bench's watches (<see cref="Stopping"/>) and the gateways.</summary>
    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync();
        await _operator;
        await _endpointsKeeper;
        if (_operatorProcess is not null)
        {
            await _operatorProcess.StopAsync();
        }

        foreach (var gateway in _gateways)
        {
            await gateway.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        foreach (var gateway in _gateways)
        {
            await gateway.DisposeAsync();
        }

        await Simulator.DisposeAsync();
        Client.Dispose();
        await Plane.DisposeAsync();
        _stop.Dispose();
    }

    /// <summary>One gateway: inside the bench process, or its own process that the bench can kill, stop and start again.</summary>
    internal sealed class BenchGateway : IAsyncDisposable
    {
        private readonly WebApplication? _app;
        private readonly BenchStack? _stack;
        private readonly int _index;
        private ManagedProcess? _process;

        // Written by the Endpoints keeper, read by load generators on other threads.
        private volatile bool _listedReady = true;

        internal BenchGateway(string url, WebApplication app)
        {
            Url = url;
            _app = app;
        }

        internal BenchGateway(string url, BenchStack stack, int index)
        {
            Url = url;
            _stack = stack;
            _index = index;
        }

        public string Url { get; }

        /// <summary>
        /// Whether the gateway Service's Endpoints list it (ready or not), as they list a pod until it is deleted;
        /// the bench clears this once a drained gateway has exited.
        /// </summary>
        public bool Listed { get; set; } = true;

        /// <summary>Whether the Endpoints list it as ready: where a client that follows them (kube-proxy) sends requests.</summary>
        public bool ListedReady
        {
            get => _listedReady;
            internal set => _listedReady = value;
        }

        /// <summary>Whether its process has exited (false for one in the bench process).</summary>
        public bool HasExited => _process?.HasExited ?? false;

        /// <summary>Starts (or starts again, on the same address) the gateway process and waits until it is ready.</summary>
        public async Task StartAsync()
        {
            var stack = _stack ?? throw new InvalidOperationException("an in-process gateway is started with the stack");
            var log = Path.Combine(stack.Plane.Directory, $"gateway-{_index}.log");
            var process = ManagedProcess.Start("dotnet",
            [
                Path.Combine(AppContext.BaseDirectory, "Pilotlight.Gateway.dll"),
                "--kubeconfig", stack.Plane.KubeconfigPath,
                "--listen", Url,
                .. stack.Topology.GatewayArgs,
            ], log);
            _process = process;
            await WaitOkAsync($"{Url}/readyz", () => process.HasExited ? $"gateway {_index} exited: {process.LogTail(10)}" : null);
        }

        /// <summary>SIGKILL, as a crash or an OOM kill would: what it holds and forwards is cut.</summary>
        public void Kill() => Process().Kill();

        /// <summary>SIGTERM, as the kubelet stops a pod: it goes unready, drains, then exits.</summary>
        public void Terminate() => Process().Terminate();

        /// <summary>Waits for the process to exit (after <see cref="Terminate"/>), up to <paramref name="timeout"/>.</summary>
        public async Task<bool> WaitExitAsync(TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!Process().HasExited && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            return Process().HasExited;
        }

        /// <summary>Its process's id.</summary>
        public int ProcessId => Process().Id;

        private ManagedProcess Process() => _process ?? throw new InvalidOperationException("this gateway runs in the bench process");

        public async Task StopAsync()
        {
            if (_app is not null)
            {
                await _app.StopAsync();
            }
            else if (_process is not null)
            {
                await _process.StopAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_app is not null)
            {
                await _app.DisposeAsync();
            }
        }
    }
}
