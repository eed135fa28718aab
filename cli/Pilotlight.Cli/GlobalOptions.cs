using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>Options every command takes, as kubectl names them.</summary>
public static class GlobalOptions
{
    public static readonly Option<string?> Kubeconfig = new("--kubeconfig")
    {
        Description = "Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
        Recursive = true,
    };

    public static readonly Option<string?> Context = new("--context")
    {
        Description = "The kubeconfig context to use (default: the current context).",
        Recursive = true,
    };

    public static readonly Option<string?> Namespace = new("--namespace", "-n")
    {
        Description = "Namespace (default: the context's namespace, else default).",
        Recursive = true,
    };

    public static void AddTo(RootCommand root)
    {
        root.Options.Add(Kubeconfig);
        root.Options.Add(Context);
        root.Options.Add(Namespace);
    }

    /// <summary>The cluster the global options name.</summary>
    public static ClusterConnection Connect(ParseResult result) =>
        ClusterConnection.Open(result.GetValue(Kubeconfig), result.GetValue(Context), result.GetValue(Namespace));
}
