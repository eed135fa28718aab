using k8s;
using Microsoft.AspNetCore.Builder;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// What the end-to-end benchmarks measure against: a fresh local control plane with the CRDs, one simulated node
/// whose pods run as real processes, the gateway and the operator (with admin rights; RBAC is the tests' concern).
/// Stop it before reading what the bench's own watches saw; dispose it to tear everything down.
/// </summary>
internal sealed class BenchStack : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task _operator = Task.CompletedTask;

    private BenchStack(ControlPlane plane, Kubernetes client, NodeSimulator simulator, WebApplication gateway, string gatewayUrl)
    {
        Plane = plane;
        Client = client;
        Simulator = simulator;
        Gateway = gateway;
        GatewayUrl = gatewayUrl;
    }

    public ControlPlane Plane { get; }

    public Kubernetes Client { get; }

    public NodeSimulator Simulator { get; }

    public WebApplication Gateway { get; }

    public string GatewayUrl { get; }

    /// <summary>Cancelled by <see cref="StopAsync"/>: for the bench's own watches.</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>Starts everything.</summary>
    /// <param name="bench">The bench's name, for progress lines.</param>
    /// <param name="node">The name of the one simulated node.</param>
    /// <param name="preset">What kind of node it is.</param>
    /// <param name="configure">Changes to the operator's options (the gateway is always set).</param>
    public static async Task<BenchStack> StartAsync(string bench, string node, GpuNodePreset preset, Func<OperatorOptions, OperatorOptions>? configure = null)
    {
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

        var gatewayUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        var gateway = GatewayApp.Build(client, gatewayUrl, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await gateway.StartAsync();
        var stack = new BenchStack(plane, client, simulator, gateway, gatewayUrl);
        var options = new OperatorOptions { Gateways = [new Uri(gatewayUrl)] };
        stack._operator = PilotlightOperator.Create(client, configure?.Invoke(options) ?? options, new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()))
            .RunAsync(stack._stop.Token);
        return stack;
    }

    /// <summary>Stops the operator, the bench's watches (<see cref="Stopping"/>) and the gateway.</summary>
    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync();
        await _operator;
        await Gateway.StopAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await Gateway.DisposeAsync();
        await Simulator.DisposeAsync();
        Client.Dispose();
        await Plane.DisposeAsync();
        _stop.Dispose();
    }
}
