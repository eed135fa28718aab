using System.Runtime.InteropServices;
using k8s;
using Microsoft.Extensions.Logging;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Pilotlight.Operator.Gpu;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Pilotlight.Operator.Usage;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Sandboxes;
using Prometheus;

// pilotlight-operator: reconciles GpuFunctions. Flags (all optional):
//   --kubeconfig PATH      default: in-cluster config, else ~/.kube/config
//   --gpu-catalog PATH     GPU type -> product labels (YAML); default: shipped catalog
//   --shim-image IMAGE     runtime shim sidecar image (also the sandbox agent)
//   --meter-image IMAGE    metering sidecar image (also the GPU probe and the idle program of placeholders)
//   --sandbox-runtime-classes A[,B]   RuntimeClasses a Sandbox may ask for (e.g. runsc,kata)
//   --sandbox-default-runtime-class A RuntimeClass of a Sandbox that names none
//   --sandbox-max-timeout DUR         cap on Sandbox spec.timeout (default 24h)
//   --sandbox-metrics-namespace NS    the namespace Prometheus scrapes from: the only one admitted to the
//                                     metering sidecar of sandbox pods (default: none)
//   --endpoint-base URL    gateway URL functions are reached at
//   --namespace NS         watch one namespace only
//   --leader-elect         hold a Lease in --lease-namespace (default $POD_NAMESPACE or pilotlight-system)
//   --metrics-port N       Prometheus /metrics (default 8080; 0 disables)
//   --gateways URL[,URL]   gateways whose demand the autoscaler reads
//   --usage-journal PATH   closed billing intervals (JSON lines on a volume), for /usage
// The metrics port also serves GET /usage?namespace=&function=&from=&to= (1 s resolution).
var flags = Flags.Parse(args);
if (flags.Error is { } error)
{
    Console.Error.WriteLine($"pilotlight-operator: {error}");
    return 2;
}

using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information));
var log = loggers.CreateLogger("pilotlight-operator");

KubernetesClientConfiguration config;
try
{
    config = flags.Get("kubeconfig") is { } path ? KubernetesClientConfiguration.BuildConfigFromConfigFile(path)
        : KubernetesClientConfiguration.IsInCluster() ? KubernetesClientConfiguration.InClusterConfig()
        : KubernetesClientConfiguration.BuildDefaultConfig();
}
catch (Exception ex)
{
    Console.Error.WriteLine($"pilotlight-operator: no usable Kubernetes configuration: {ex.Message}");
    return 2;
}

GpuCatalog catalog;
try
{
    catalog = flags.Get("gpu-catalog") is { } catalogPath ? GpuCatalog.Parse(await File.ReadAllTextAsync(catalogPath)) : GpuCatalog.Default;
}
catch (Exception ex) when (ex is IOException or FormatException or YamlDotNet.Core.YamlException)
{
    Console.Error.WriteLine($"pilotlight-operator: invalid --gpu-catalog: {ex.Message}");
    return 2;
}

var gateways = new List<Uri>();
foreach (var url in (flags.Get("gateways") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
{
    if (!Uri.TryCreate(url, UriKind.Absolute, out var gateway))
    {
        Console.Error.WriteLine($"pilotlight-operator: --gateways: '{url}' is not an absolute URL");
        return 2;
    }

    gateways.Add(gateway);
}

var sandboxMaxTimeout = TimeSpan.FromHours(24);
if (flags.Get("sandbox-max-timeout") is { } maxTimeout
    && (!Pilotlight.Api.Schema.DurationString.TryParse(maxTimeout, out sandboxMaxTimeout) || sandboxMaxTimeout <= TimeSpan.Zero))
{
    Console.Error.WriteLine($"pilotlight-operator: --sandbox-max-timeout: '{maxTimeout}' is not a positive duration such as 1h");
    return 2;
}

var leaseNamespace = flags.Get("lease-namespace") ?? Environment.GetEnvironmentVariable("POD_NAMESPACE") ?? "pilotlight-system";
var options = new OperatorOptions
{
    Catalog = catalog,
    Pods = new()
    {
        ShimImage = flags.Get("shim-image") ?? new FunctionPodOptions().ShimImage,
        MeterImage = flags.Get("meter-image") ?? new FunctionPodOptions().MeterImage,
    },
    Sandboxes = new()
    {
        AgentImage = flags.Get("shim-image") ?? new SandboxOptions().AgentImage,
        AllowedRuntimeClasses = (flags.Get("sandbox-runtime-classes") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        DefaultRuntimeClass = flags.Get("sandbox-default-runtime-class"),
        MaxTimeout = sandboxMaxTimeout,
        MeterImage = flags.Get("meter-image") ?? new SandboxOptions().MeterImage,
        MetricsScraperNamespaceLabels = flags.Get("sandbox-metrics-namespace") is { Length: > 0 } scrapers
            ? new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = scrapers }
            : null,
    },
    EndpointBase = flags.Get("endpoint-base") ?? new OperatorOptions().EndpointBase,
    WatchNamespace = flags.Get("namespace"),
    LeaderElection = flags.Has("leader-elect") ? new LeaderElectionOptions(leaseNamespace, "pilotlight-operator") : null,
    Identity = Environment.GetEnvironmentVariable("POD_NAME") ?? Environment.MachineName,
    Gateways = gateways,
    UsageJournal = new Pilotlight.Operator.Usage.UsageJournal(flags.Get("usage-journal")),
};

using var client = new Kubernetes(config);
using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

var metricsPort = int.Parse(flags.Get("metrics-port") ?? "8080", System.Globalization.CultureInfo.InvariantCulture);
WebApplication? web = null;
if (metricsPort > 0)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.WebHost.UseUrls($"http://0.0.0.0:{metricsPort}");
    builder.Logging.ClearProviders();
    web = builder.Build();
    var usage = new UsageApi(client, options.UsageJournal, TimeProvider.System);
    web.MapGet("/healthz", () => "ok");
    web.MapGet("/usage", async (string? @namespace, string? function, string? from, string? to, CancellationToken ct) =>
        await usage.QueryAsync(@namespace, function, from, to, ct) is var (report, problem, status) && report is not null
            ? Results.Json(report)
            : Results.Text(problem + "\n", statusCode: status));
    web.UseMetricServer("/metrics");
    await web.StartAsync();
}

log.LogInformation("Starting; watching {Scope}, leader election {Election}", options.WatchNamespace ?? "all namespaces",
    options.LeaderElection is null ? "off" : $"on ({leaseNamespace}/pilotlight-operator)");
await PilotlightOperator.Create(client, options, new ControllerMetrics(), loggers: loggers).RunAsync(stop.Token);
if (web is not null)
{
    await web.StopAsync();
}

log.LogInformation("Stopped");
return 0;
