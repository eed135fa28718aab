using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Scaling;
using Pilotlight.Operator.Usage;
using Microsoft.AspNetCore.Builder;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// One operator (all namespaces) and one gateway on the shared control
/// plane, as a platform would run them, for every test that needs them: two
/// operators on one cluster would fight over the same functions. The
/// catalog lacks B200, as a platform team's might; the autoscaler's windows
/// are short so scale-to-zero happens within a test.
/// </summary>
internal static class SharedOperator
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static Running? _running;

    public static AutoscalerSettings Autoscaling { get; } = new()
    {
        StableWindow = TimeSpan.FromSeconds(6), PanicWindow = TimeSpan.FromSeconds(2), Tick = TimeSpan.FromMilliseconds(500),
    };

    public sealed record Running(ControlPlane Plane, string GatewayUrl, Task Operator, WebApplication Gateway, CancellationTokenSource Stop, UsageJournal Journal);

    public static async Task<Running> GetAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_running is null)
            {
                var plane = await SharedControlPlane.GetAsync();
                var client = plane.CreateClient();
                var gatewayUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
                var gateway = GatewayApp.Build(client, gatewayUrl, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
                await gateway.StartAsync();

                // The RuntimeClasses sandboxes may use (a node would have gVisor and Kata installed).
                foreach (var (runtime, handler) in new[] { ("runsc", "runsc"), ("kata", "kata-qemu") })
                {
                    try
                    {
                        await client.NodeV1.CreateRuntimeClassAsync(new k8s.Models.V1RuntimeClass
                        {
                            Metadata = new k8s.Models.V1ObjectMeta { Name = runtime }, Handler = handler,
                        });
                    }
                    catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
                    {
                    }
                }

                var catalog = new GpuCatalog(GpuCatalog.Default.Products.Where(kv => kv.Key != GpuType.B200).ToDictionary());
                var stop = new CancellationTokenSource();
                var journal = new UsageJournal();
                var host = PilotlightOperator.Create(client, new OperatorOptions
                {
                    Catalog = catalog, Identity = "test", Gateways = [new Uri(gatewayUrl)], Autoscaler = Autoscaling, EndpointBase = gatewayUrl,
                    UsageJournal = journal,
                    Sandboxes = new Pilotlight.Operator.Sandboxes.SandboxOptions
                    {
                        AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = "runsc", MaxTimeout = TimeSpan.FromMinutes(10),
                    },
                }, new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()), loggers: ProgressLoggerProvider.Factory());
                _running = new Running(plane, gatewayUrl, host.RunAsync(stop.Token), gateway, stop, journal);
            }

            return _running;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Called by <see cref="SharedControlPlane"/> before the control plane stops.</summary>
    public static async Task StopAsync()
    {
        if (_running is { } running)
        {
            await running.Stop.CancelAsync();
            await running.Operator;
            await running.Gateway.StopAsync();
            await running.Gateway.DisposeAsync();
            _running = null;
        }
    }
}
