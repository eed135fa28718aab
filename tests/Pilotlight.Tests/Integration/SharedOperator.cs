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
/// operators on one cluster would fight over the same functions. They run
/// as the chart's ServiceAccounts under the chart's rendered RBAC, never as
/// admin (every integration test that drives an operator or a gateway does so
/// through this one pair). The
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

    public sealed record Running(ControlPlane Plane, string GatewayUrl, Task Operator, WebApplication Gateway, CancellationTokenSource Stop, UsageJournal Journal)
    {
        /// <summary>The clients the operator and the gateway act through, closed after they stop.</summary>
        internal IReadOnlyList<IDisposable> Clients { get; init; } = [];
    }

    /// <summary>True once the shared operator and gateway have been started in this run.</summary>
    public static bool Started { get; private set; }

    public static async Task<Running> GetAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_running is null)
            {
                var plane = await SharedControlPlane.GetAsync();
                var client = plane.CreateClient();

                // Installed as the chart installs them: the operator and the gateway act as their
                // ServiceAccounts with no rights but the chart's roles, so a scenario that needs
                // more fails here, and ChartRbacAudit compares what they did with what they may.
                await (await ChartRbac.RenderAsync()).InstallAsync(plane);
                var operatorClient = plane.CreateClient(ChartRbac.OperatorUser);
                var gatewayClient = plane.CreateClient(ChartRbac.GatewayUser);

                var gatewayUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
                var gateway = GatewayApp.Build(gatewayClient, gatewayUrl, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
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
                var host = PilotlightOperator.Create(operatorClient, new OperatorOptions
                {
                    Catalog = catalog, Identity = "test", Gateways = [new Uri(gatewayUrl)], Autoscaler = Autoscaling, EndpointBase = gatewayUrl,
                    UsageJournal = journal,
                    // As the chart runs it (--leader-elect, the Lease in the release namespace), with a
                    // lease long enough that a loaded test machine does not lose it between renewals.
                    LeaderElection = new LeaderElectionOptions(Helm.Namespace, "pilotlight-operator")
                    {
                        LeaseDuration = TimeSpan.FromSeconds(60), RenewDeadline = TimeSpan.FromSeconds(45), RetryPeriod = TimeSpan.FromSeconds(2),
                    },
                    Sandboxes = new Pilotlight.Operator.Sandboxes.SandboxOptions
                    {
                        AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = "runsc", MaxTimeout = TimeSpan.FromMinutes(10),
                    },
                }, new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()), loggers: ProgressLoggerProvider.Factory());
                _running = new Running(plane, gatewayUrl, host.RunAsync(stop.Token), gateway, stop, journal) { Clients = [operatorClient, gatewayClient] };
                Started = true;
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

            // Closes their connections, and with them any watch still open (the API server
            // logs a watch when it ends; ChartRbacAudit reads the log next).
            foreach (var client in running.Clients)
            {
                client.Dispose();
            }

            _running = null;
        }
    }
}
