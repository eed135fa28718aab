using k8s;

namespace Pilotlight.Client;

/// <summary>
/// Where a client talks to: the Kubernetes API server from a kubeconfig (tokens, client certificates and exec
/// plugins, as kubectl reads them) and the namespace the user meant.
/// </summary>
public sealed class ClusterConnection : IDisposable
{
    private ClusterConnection(KubernetesClientConfiguration configuration, string @namespace)
    {
        Configuration = configuration;
        Namespace = @namespace;
        Kubernetes = new Kubernetes(configuration);
    }

    /// <summary>The kubeconfig's resolved settings (server, credentials, TLS).</summary>
    public KubernetesClientConfiguration Configuration { get; }

    /// <summary>The namespace named on the command line, else the context's, else <c>default</c>.</summary>
    public string Namespace { get; }

    /// <summary>A client for the API server.</summary>
    public IKubernetes Kubernetes { get; }

    /// <summary>
    /// Reads a kubeconfig: <paramref name="kubeconfigPath"/>, else <c>$KUBECONFIG</c>, else <c>~/.kube/config</c>;
    /// inside a pod with none of those, the pod's ServiceAccount.
    /// </summary>
    public static ClusterConnection Open(string? kubeconfigPath = null, string? context = null, string? @namespace = null)
    {
        KubernetesClientConfiguration configuration;
        var path = kubeconfigPath ?? Environment.GetEnvironmentVariable("KUBECONFIG")?.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        var defaultPath = KubernetesClientConfiguration.KubeConfigDefaultLocation;
        if (path is null && !File.Exists(defaultPath) && KubernetesClientConfiguration.IsInCluster())
        {
            configuration = KubernetesClientConfiguration.InClusterConfig();
        }
        else
        {
            path ??= defaultPath;
            if (!File.Exists(path))
            {
                throw new PilotlightClientException(
                    $"No kubeconfig at {path}.", "Pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (e.g. with your cloud's get-credentials command).");
            }
            configuration = KubeconfigReader.Load(path, context);
        }
        return new ClusterConnection(configuration, @namespace ?? configuration.Namespace ?? "default");
    }

    /// <inheritdoc/>
    public void Dispose() => Kubernetes.Dispose();
}
