using k8s;
using Pilotlight.Gateway;

// pilotlight-gateway: routes /{namespace}/{function}/{path} to the function's
// pods and wakes functions at zero. Flags: --kubeconfig PATH, --listen URL
// (default http://0.0.0.0:8080), --queue-limit N (held requests per function, default 1000),
// --replay-limit BYTES (largest request body kept for retries, default 1048576), --drain-seconds N (the
// longest a stopping gateway keeps serving what it holds, default 30), --admin-port N (serves only
// /wait-for-drain, for the pod's preStop hook), --token-audience AUD (the audience callers' tokens must be
// issued for, default pilotlight), --allow-public-functions true|false (honour spec.access: Public, default
// true), --max-request-body-size SIZE (largest invocation body, a quantity like 100Mi, default 100Mi; past it 413),
// --host-domain DOMAIN (also route {function}.{namespace}.DOMAIN by host), --client-concurrency N,
// --client-requests-per-second N, --client-burst N (per-client limits, 429 past them; 0, the default: none),
// --invoke-keys-configmap NS/NAME (the ConfigMap the operator publishes invoke-key verifiers in; default none:
// invoke keys are refused), --internal-port N (serves /internal/demand, /internal/signals and /metrics, which the
// public port then answers 404; default none: they share the public port), --internal-callers USER[,USER] (whose
// token, for the token audience, may read /internal/*: the operator's ServiceAccount; default none: no token asked),
// --agent-port N (sandbox agents' port, default 8443), --agent-client-cert PATH and --agent-client-key PATH (the PEM
// client certificate shown to sandbox agents over TLS, re-read when the files change; without them agents are
// spoken to in plain HTTP, which only agents run without a CA accept), --log-format text|json (one line of text per
// entry, the default, or one JSON object per line), --log-level LEVEL (Trace..Critical, default Information).
// SIGTERM drains too: not ready at once, the requests it holds and forwards are served, and it exits once
// idle or after --drain-seconds.
string? kubeconfig = null, listen = "http://0.0.0.0:8080", agentCert = null, agentKey = null, logFormat = null, logLevel = null;
var options = new GatewayOptions { DrainOnSignal = true };
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--kubeconfig" when i + 1 < args.Length: kubeconfig = args[++i]; break;
        case "--listen" when i + 1 < args.Length: listen = args[++i]; break;
        case "--queue-limit" when i + 1 < args.Length && int.TryParse(args[i + 1], out var limit) && limit > 0:
            options = options with { QueueLimit = limit };
            i++;
            break;
        case "--replay-limit" when i + 1 < args.Length && long.TryParse(args[i + 1], out var replay) && replay >= 0:
            options = options with { ReplayLimit = replay };
            i++;
            break;
        case "--drain-seconds" when i + 1 < args.Length && int.TryParse(args[i + 1], out var drain) && drain > 0:
            options = options with { DrainTimeout = TimeSpan.FromSeconds(drain) };
            i++;
            break;
        case "--admin-port" when i + 1 < args.Length && int.TryParse(args[i + 1], out var admin) && admin is > 0 and <= 65535:
            options = options with { AdminPort = admin };
            i++;
            break;
        case "--token-audience" when i + 1 < args.Length && args[i + 1].Length > 0:
            options = options with { Access = options.Access with { Audience = args[++i] } };
            break;
        case "--allow-public-functions" when i + 1 < args.Length && bool.TryParse(args[i + 1], out var allowPublic):
            options = options with { Access = options.Access with { AllowPublic = allowPublic } };
            i++;
            break;
        case "--max-request-body-size" when i + 1 < args.Length && RequestBodyLimit.TryParse(args[i + 1], out var maxBody):
            options = options with { MaxRequestBodySize = maxBody };
            i++;
            break;
        case "--host-domain" when i + 1 < args.Length && args[i + 1].Trim('.').Length > 0:
            options = options with { HostDomain = args[++i].Trim('.') };
            break;
        case "--client-concurrency" when i + 1 < args.Length && int.TryParse(args[i + 1], out var perClient) && perClient >= 0:
            options = options with { ClientLimits = options.ClientLimits with { ConcurrentRequests = perClient } };
            i++;
            break;
        case "--client-requests-per-second" when i + 1 < args.Length && int.TryParse(args[i + 1], out var rate) && rate >= 0:
            options = options with { ClientLimits = options.ClientLimits with { RequestsPerSecond = rate } };
            i++;
            break;
        case "--client-burst" when i + 1 < args.Length && int.TryParse(args[i + 1], out var burst) && burst >= 0:
            options = options with { ClientLimits = options.ClientLimits with { Burst = burst } };
            i++;
            break;
        case "--invoke-keys-configmap" when i + 1 < args.Length && args[i + 1].Split('/') is [{ Length: > 0 } keysNs, { Length: > 0 } keysName]:
            options = options with { Access = options.Access with { InvokeKeysConfigMap = new(keysNs, keysName) } };
            i++;
            break;
        case "--internal-port" when i + 1 < args.Length && int.TryParse(args[i + 1], out var internalPort) && internalPort is > 0 and <= 65535:
            options = options with { InternalPort = internalPort };
            i++;
            break;
        case "--agent-port" when i + 1 < args.Length && int.TryParse(args[i + 1], out var agentPort) && agentPort is > 0 and <= 65535:
            options = options with { AgentPort = agentPort };
            i++;
            break;
        case "--agent-client-cert" when i + 1 < args.Length:
            agentCert = args[++i];
            break;
        case "--agent-client-key" when i + 1 < args.Length:
            agentKey = args[++i];
            break;
        case "--log-format" when i + 1 < args.Length:
            logFormat = args[++i];
            break;
        case "--log-level" when i + 1 < args.Length:
            logLevel = args[++i];
            break;
        case "--internal-callers" when i + 1 < args.Length:
            options = options with { InternalCallers = [.. args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)] };
            break;
        default:
            Console.Error.WriteLine($"pilotlight-gateway: unknown or invalid argument '{args[i]}'");
            return 2;
    }
}

var (logSettings, logError) = Pilotlight.ControllerRuntime.ConsoleLogSettings.Parse(logFormat, logLevel);
if (logError is not null)
{
    Console.Error.WriteLine($"pilotlight-gateway: {logError}");
    return 2;
}

if ((agentCert is null) != (agentKey is null))
{
    Console.Error.WriteLine("pilotlight-gateway: --agent-client-cert and --agent-client-key go together");
    return 2;
}

if (agentCert is not null)
{
    var files = new CertificateFiles(agentCert, agentKey!);
    if (files.Current() is null)
    {
        Console.Error.WriteLine($"pilotlight-gateway: --agent-client-cert {agentCert}: not a readable PEM certificate with its key");
        return 2;
    }

    options = options with { AgentClientCertificate = files.Current };
}

var config = kubeconfig is not null ? KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig)
    : KubernetesClientConfiguration.IsInCluster() ? KubernetesClientConfiguration.InClusterConfig()
    : KubernetesClientConfiguration.BuildDefaultConfig();
using var client = new Kubernetes(config);
await GatewayApp.Build(client, listen!, options, logging: logSettings!.Apply).RunAsync();
return 0;
