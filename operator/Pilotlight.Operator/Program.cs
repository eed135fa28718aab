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
//   --sandbox-egress-deny CIDR[,CIDR] ranges no sandbox may reach whatever it allows (the cluster's pod, service
//                                     and node ranges), on top of link-local and cloud metadata addresses
//   --sandbox-egress-allowed CIDR[,CIDR]  what network.allowCidrs may name (default 0.0.0.0/0,::/0)
//   --sandbox-max-workspace QTY       the largest workspaceSize (default 10Gi)
//   --sandbox-toleration-keys K[,K]   taint keys a Sandbox's tolerations may name (default nvidia.com/gpu; "" none)
//   --sandbox-node-selector-keys K[,K]  node label keys a Sandbox's nodeSelector may name (default: arch, os,
//                                     instance type, region, zone)
//   --endpoint-base URL    gateway URL functions are reached at
//   --namespace NS         watch one namespace only
//   --leader-elect         hold a Lease in --lease-namespace (default $POD_NAMESPACE or pilotlight-system)
//   --metrics-port N       Prometheus /metrics, /healthz and /readyz (200 once every informer has listed; 503 before)
//                          (default 8080; 0 disables)
//   --workers N            reconciles each controller runs at once (default 8, 1..1000)
//   --kube-api-qps F       API requests per second of the operator's client, as client-go's QPS (default 100; 0: no
//                          limit); watches are exempt
//   --kube-api-burst N     API requests allowed at once above the qps (default 200)
//   --gateways URL[,URL]   gateways whose demand the autoscaler reads; spec.schedule's requests go to the first
//                          (the next only when one cannot be reached), else to --endpoint-base
//   --gateway-service NS/NAME  a Service in front of the gateway pods: every pod in its Endpoints is read (added
//                          to --gateways, which must then not name the same gateways); a not-ready address counts
//                          as unread
//   --schedule-gateway URL  where spec.schedule's requests go first (then --gateways, else --endpoint-base)
//   --gateway-token-file PATH  a token for the gateway's audience, sent with scheduled requests (re-read each time)
//   --usage-journal PATH   closed billing intervals (JSON lines on a volume), for /usage
//   --usage-status-interval DUR  how stale a function's status.usage may grow while no pod opens or closes (default 5m;
//                          a pod opening or closing rewrites it at once; live totals are on /metrics and /usage)
//   --stable-window DUR    autoscaler averaging window (default 60s); also how long demand must be read from
//                          every gateway after a start or failover before anything scales down
//   --panic-window DUR     autoscaler burst window (default 6s)
//   --autoscaler-tick DUR  how often the autoscaler decides (default 2s)
//   --webhook-port N       serve the validating admission webhook over HTTPS at /validate (default 0: off)
//   --webhook-hosts H[,H]  names (and IPs) the API server reaches the webhook by, e.g. NAME.NS.svc (required with a port)
//   --webhook-secret NS/NAME  the Secret holding the webhook's CA and certificate, shared by replicas
//                          (default $POD_NAMESPACE/pilotlight-webhook-tls); created and renewed by the operator
//   --webhook-configuration NAME  the ValidatingWebhookConfiguration whose caBundle the operator keeps current
//   --pod-label-writers USER[,USER]  the users (the operator's ServiceAccount) who may put pilotlight.dev/* labels on
//                          pods; the webhook refuses anyone else (the chart routes pods labelled managed-by=pilotlight to it)
//   --sandbox-agent-secret NS/NAME  the Secret with the CA sandbox agents trust and the gateway's client certificate
//                          (tls.crt/tls.key, which the gateway mounts); created and renewed by the operator. Without
//                          it sandbox agents speak plain HTTP to anyone who reaches them (development only)
//   --allowed-volume-types T[,T]  volume sources functions may use (default configMap,secret,emptyDir,
//                          persistentVolumeClaim,projected,csi)
//   --allowed-service-accounts SA[,SA]  ServiceAccounts functions may run as besides default (default none)
//   --function-pod-security baseline|restricted  the Pod Security Standards profile function pods meet
//                          (default baseline; restricted needs images that run as non-root)
//   --platform-image-pull-secrets S[,S]  Secrets for the platform's images (shim, meter, agent) every pod the operator
//                          makes names, after its own (by name: each must exist in the pod's namespace)
//   --gateway-namespace NS the namespace of the gateway pods, the only one a sandbox's NetworkPolicy admits to its agent
//                          (default pilotlight-system; the chart passes its release namespace)
//   --reservation-priority-class NAME  the PriorityClass of capacity-reservation placeholders (default
//                          pilotlight-reservation; the chart names it after its release)
//   --log-format text|json one line of text per entry (default) or one JSON object per line (the .NET JSON console
//                          formatter)
//   --log-level LEVEL      Trace, Debug, Information (default), Warning, Error or Critical
//   --invoke-keys-configmap NS/NAME  publish SHA-256 verifiers of invoke-key Secrets (label pilotlight.dev/invoke-key=true)
//                          in this ConfigMap for the gateway (default: none; invoke keys off, no Secret is watched)
// With --gateways and --gateway-service both empty the autoscaler sees no demand at all: functions stay at minReplicas
// (and wake requests still scale them up); a listed gateway that cannot be read holds every scale-down.
// The metrics port also serves GET /usage?namespace=&function=&from=&to= (1 s resolution), to callers whose bearer
// token may get that GpuFunction, and GET /usage?namespace=&sandbox=... for a Sandbox, to those who may get it.
var flags = Flags.Parse(args);
if (flags.Error is { } error)
{
    Console.Error.WriteLine($"pilotlight-operator: {error}");
    return 2;
}

var logSettings = flags.Logging;
using var loggers = LoggerFactory.Create(logSettings.Apply);
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

ObjectKey? gatewayService = null;
if (flags.Get("gateway-service") is { } serviceFlag)
{
    var parts = serviceFlag.Split('/');
    if (parts.Length != 2 || !parts.All(part => part.Length is > 0 and <= 63 && part[0] != '-' && part[^1] != '-'
            && part.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')))
    {
        Console.Error.WriteLine($"pilotlight-operator: --gateway-service: '{serviceFlag}' is not NAMESPACE/NAME");
        return 2;
    }

    gatewayService = new(parts[0], parts[1]);
}

Uri? scheduleGateway = null;
if (flags.Get("schedule-gateway") is { } scheduleFlag && !Uri.TryCreate(scheduleFlag, UriKind.Absolute, out scheduleGateway))
{
    Console.Error.WriteLine($"pilotlight-operator: --schedule-gateway: '{scheduleFlag}' is not an absolute URL");
    return 2;
}

var sandboxMaxTimeout = TimeSpan.FromHours(24);
if (flags.Get("sandbox-max-timeout") is { } maxTimeout
    && (!Pilotlight.Api.Schema.DurationString.TryParse(maxTimeout, out sandboxMaxTimeout) || sandboxMaxTimeout <= TimeSpan.Zero))
{
    Console.Error.WriteLine($"pilotlight-operator: --sandbox-max-timeout: '{maxTimeout}' is not a positive duration such as 1h");
    return 2;
}

var egressDeny = Ranges("sandbox-egress-deny");
var egressAllowed = Ranges("sandbox-egress-allowed");
if (egressDeny is null || egressAllowed is null)
{
    return 2;
}

k8s.Models.ResourceQuantity maxWorkspace = new SandboxOptions().MaxWorkspaceSize;
if (flags.Get("sandbox-max-workspace") is { } workspaceFlag)
{
    try
    {
        maxWorkspace = new k8s.Models.ResourceQuantity(workspaceFlag);
        _ = maxWorkspace.ToDecimal();
    }
    catch (Exception e) when (e is FormatException or ArgumentException)
    {
        Console.Error.WriteLine($"pilotlight-operator: --sandbox-max-workspace: '{workspaceFlag}' is not a quantity such as 10Gi");
        return 2;
    }
}

var autoscaling = new Pilotlight.Operator.Scaling.AutoscalerSettings();
foreach (var (flag, apply) in new (string, Func<TimeSpan, Pilotlight.Operator.Scaling.AutoscalerSettings>)[]
{
    ("stable-window", d => autoscaling with { StableWindow = d }),
    ("panic-window", d => autoscaling with { PanicWindow = d }),
    ("autoscaler-tick", d => autoscaling with { Tick = d }),
})
{
    if (flags.Get(flag) is not { } text)
    {
        continue;
    }

    if (!Pilotlight.Api.Schema.DurationString.TryParse(text, out var duration) || duration <= TimeSpan.Zero)
    {
        Console.Error.WriteLine($"pilotlight-operator: --{flag}: '{text}' is not a positive duration such as 6s or 500ms");
        return 2;
    }

    autoscaling = apply(duration);
}

var usageStatusInterval = Pilotlight.Operator.Functions.GpuFunctionReconciler.DefaultUsageStatusInterval;
if (flags.Get("usage-status-interval") is { } usageInterval
    && (!Pilotlight.Api.Schema.DurationString.TryParse(usageInterval, out usageStatusInterval) || usageStatusInterval <= TimeSpan.Zero))
{
    Console.Error.WriteLine($"pilotlight-operator: --usage-status-interval: '{usageInterval}' is not a positive duration such as 5m");
    return 2;
}

var admission = new Pilotlight.Operator.Admission.AdmissionPolicy();
if (flags.Get("allowed-volume-types") is { } volumeTypes)
{
    admission = admission with { AllowedVolumeTypes = Pilotlight.Operator.Admission.AdmissionPolicy.ListFlag(volumeTypes) };
}

if (flags.Get("allowed-service-accounts") is { } accounts)
{
    admission = admission with { AllowedServiceAccounts = Pilotlight.Operator.Admission.AdmissionPolicy.ListFlag(accounts) };
}

var podSecurity = (flags.Get("function-pod-security") ?? "baseline") switch
{
    "baseline" => PodSecurityProfile.Baseline,
    "restricted" => PodSecurityProfile.Restricted,
    _ => (PodSecurityProfile?)null,
};
if (podSecurity is null)
{
    var profile = flags.Get("function-pod-security");
    Console.Error.WriteLine($"pilotlight-operator: --function-pod-security: '{profile}' is not baseline or restricted");
    return 2;
}

var webhookPort = int.Parse(flags.Get("webhook-port") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
var webhookHosts = Pilotlight.Operator.Admission.AdmissionPolicy.ListFlag(flags.Get("webhook-hosts")).ToList();
if (webhookPort > 0 && webhookHosts.Count == 0)
{
    Console.Error.WriteLine("pilotlight-operator: --webhook-port needs --webhook-hosts (the names the API server reaches it by)");
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
        PodSecurity = podSecurity.Value,
        PlatformImagePullSecrets = flags.PlatformImagePullSecrets,
        SidecarLog = flags.Logging.SidecarEnvironment(),
        ReservationPriorityClass = flags.Get("reservation-priority-class") ?? new FunctionPodOptions().ReservationPriorityClass,
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
        EgressFloor = [.. SandboxOptions.DefaultEgressFloor, .. egressDeny],
        AllowedEgress = egressAllowed.Count > 0 ? egressAllowed : new SandboxOptions().AllowedEgress,
        MaxWorkspaceSize = maxWorkspace,
        AllowedTolerationKeys = flags.Get("sandbox-toleration-keys") is { } tolerationKeys
            ? tolerationKeys.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : new SandboxOptions().AllowedTolerationKeys,
        AllowedNodeSelectorKeys = flags.Get("sandbox-node-selector-keys") is { } selectorKeys
            ? selectorKeys.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : SandboxOptions.DefaultNodeSelectorKeys,
        PlatformImagePullSecrets = flags.PlatformImagePullSecrets,
        SidecarLog = flags.Logging.SidecarEnvironment(),
        GatewayNamespaceLabels = flags.Get("gateway-namespace") is { } gatewayNamespace
            ? SandboxOptions.GatewayNamespace(gatewayNamespace)
            : new SandboxOptions().GatewayNamespaceLabels,
    },
    EndpointBase = flags.Get("endpoint-base") ?? new OperatorOptions().EndpointBase,
    WatchNamespace = flags.Get("namespace"),
    LeaderElection = flags.Has("leader-elect") ? new LeaderElectionOptions(leaseNamespace, "pilotlight-operator") : null,
    Identity = Environment.GetEnvironmentVariable("POD_NAME") ?? Environment.MachineName,
    Gateways = gateways,
    GatewayService = gatewayService,
    ScheduleGateway = scheduleGateway,
    Autoscaler = autoscaling,
    UsageJournal = new Pilotlight.Operator.Usage.UsageJournal(flags.Get("usage-journal")),
    Admission = admission,
    GatewayTokenFile = flags.Get("gateway-token-file"),
    UsageStatusInterval = usageStatusInterval,
    Workers = flags.Workers,
};

ObjectKey webhookSecret = new(Environment.GetEnvironmentVariable("POD_NAMESPACE") ?? leaseNamespace, "pilotlight-webhook-tls");
if (flags.Get("webhook-secret") is { } secretFlag)
{
    var parts = secretFlag.Split('/');
    if (parts.Length != 2 || parts.Any(part => part.Length == 0))
    {
        Console.Error.WriteLine($"pilotlight-operator: --webhook-secret: '{secretFlag}' is not NAMESPACE/NAME");
        return 2;
    }

    webhookSecret = new(parts[0], parts[1]);
}

if (flags.Get("invoke-keys-configmap") is { } keysFlag)
{
    var parts = keysFlag.Split('/');
    if (parts.Length != 2 || parts.Any(part => part.Length == 0))
    {
        Console.Error.WriteLine($"pilotlight-operator: --invoke-keys-configmap: '{keysFlag}' is not NAMESPACE/NAME");
        return 2;
    }

    options = options with { InvokeKeys = new Pilotlight.Operator.Access.InvokeKeyPublisherOptions { ConfigMap = new(parts[0], parts[1]) } };
}

using var client = flags.KubeApiQps > 0
    ? new Kubernetes(config, new ApiRateLimitHandler(flags.KubeApiQps, flags.KubeApiBurst, flags.KubeApiQpsAuto,
        () => log.LogInformation(
            "The API server does Priority and Fairness: the client-side limit of {Qps} requests a second is lifted (--kube-api-qps auto)", flags.KubeApiQps)))
    : new Kubernetes(config);
using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

var metricsPort = int.Parse(flags.Get("metrics-port") ?? "8080", System.Globalization.CultureInfo.InvariantCulture);
// Created last (after the certificates), but /readyz is served from the start: 503 until it exists and has synced.
ControllerHost? host = null;
WebApplication? web = null;
if (metricsPort > 0)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.WebHost.UseUrls($"http://0.0.0.0:{metricsPort}");
    builder.Logging.ClearProviders();
    web = builder.Build();
    OperatorWeb.Map(web, new UsageApi(client, options.UsageJournal, TimeProvider.System), new UsageAccess(client), () => host?.Unsynced);
    web.UseMetricServer("/metrics");
    await web.StartAsync();
}

WebApplication? webhook = null;
if (webhookPort > 0)
{
    var certificates = new Pilotlight.Operator.Admission.WebhookCertificates(client, new Pilotlight.Operator.Admission.WebhookCertificateOptions
    {
        Secret = webhookSecret, Hosts = webhookHosts, Configuration = flags.Get("webhook-configuration"),
    }, logger: loggers.CreateLogger("webhook"));
    webhook = await Pilotlight.Operator.Admission.AdmissionServer.StartAsync(
        new Pilotlight.Operator.Admission.AdmissionWebhook(catalog, admission, options.Pods, options.Sandboxes)
        {
            PodLabelWriters = Pilotlight.Operator.Admission.AdmissionPolicy.ListFlag(flags.Get("pod-label-writers")),
        },
        certificates, System.Net.IPAddress.Any, webhookPort, TimeSpan.FromHours(1), stop.Token);
    log.LogInformation("Admission webhook on :{Port} for {Hosts}", webhookPort, string.Join(", ", webhookHosts));
}

if (flags.Get("sandbox-agent-secret") is { } agentFlag)
{
    var parts = agentFlag.Split('/');
    if (parts.Length != 2 || parts.Any(part => part.Length == 0))
    {
        Console.Error.WriteLine($"pilotlight-operator: --sandbox-agent-secret: '{agentFlag}' is not NAMESPACE/NAME");
        return 2;
    }

    // Every replica makes sure of it (conditional writes, as for the webhook's) and reads the CA new sandbox pods get.
    var agentCertificates = new Pilotlight.Operator.Admission.WebhookCertificates(client, new Pilotlight.Operator.Admission.WebhookCertificateOptions
    {
        Secret = new(parts[0], parts[1]), Hosts = ["pilotlight-gateway"], CaName = "pilotlight-sandbox-agent-ca", ClientAuthentication = true,
        Validity = TimeSpan.FromDays(90), RenewBefore = TimeSpan.FromDays(30),
    }, logger: loggers.CreateLogger("sandbox-agent-tls"));
    await agentCertificates.EnsureAsync(stop.Token);
    _ = agentCertificates.RunAsync(TimeSpan.FromHours(1), stop.Token);
    options = options with { Sandboxes = options.Sandboxes with { AgentClientCa = () => agentCertificates.CaPem } };
}
else
{
    log.LogWarning("No --sandbox-agent-secret: sandbox agents will answer anyone who reaches them");
}

log.LogInformation("Starting; watching {Scope}, leader election {Election}", options.WatchNamespace ?? "all namespaces",
    options.LeaderElection is null ? "off" : $"on ({leaseNamespace}/pilotlight-operator)");
host = PilotlightOperator.Create(client, options, new ControllerMetrics(), loggers: loggers);
await host.RunAsync(stop.Token);
foreach (var app in new[] { web, webhook })
{
    if (app is not null)
    {
        await app.StopAsync();
    }
}

log.LogInformation("Stopped");
return 0;

// A comma-separated list of CIDR ranges from a flag; null (after saying why) when one is malformed.
List<string>? Ranges(string flag)
{
    var ranges = (flags.Get(flag) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
    if (ranges.FirstOrDefault(r => SandboxEgress.Parse(r) is null) is { } bad)
    {
        Console.Error.WriteLine($"pilotlight-operator: --{flag}: '{bad}' is not a CIDR range such as 10.0.0.0/8");
        return null;
    }

    return ranges;
}
