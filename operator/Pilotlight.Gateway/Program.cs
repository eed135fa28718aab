using k8s;
using Pilotlight.Gateway;

// pilotlight-gateway: routes /{namespace}/{function}/{path} to the function's
// pods and wakes functions at zero. Flags: --kubeconfig PATH, --listen URL
// (default http://0.0.0.0:8080), --queue-limit N (held requests per function, default 1000).
string? kubeconfig = null, listen = "http://0.0.0.0:8080";
var options = new GatewayOptions();
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
        default:
            Console.Error.WriteLine($"pilotlight-gateway: unknown or invalid argument '{args[i]}'");
            return 2;
    }
}

var config = kubeconfig is not null ? KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig)
    : KubernetesClientConfiguration.IsInCluster() ? KubernetesClientConfiguration.InClusterConfig()
    : KubernetesClientConfiguration.BuildDefaultConfig();
using var client = new Kubernetes(config);
await GatewayApp.Build(client, listen!, options).RunAsync();
return 0;
