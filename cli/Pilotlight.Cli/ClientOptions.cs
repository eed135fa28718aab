using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>Options for talking to the gateway and the operator, on every command.</summary>
public static class ClientOptions
{
    public static readonly Option<string?> Token = new("--token")
    {
        Description = "Bearer token for the gateway (default: $PILOTLIGHT_TOKEN, then --as, then the kubeconfig user's token).",
        Recursive = true,
    };

    public static readonly Option<string?> As = new("--as")
    {
        Description = "Mint a short-lived token for this ServiceAccount ([NAMESPACE/]NAME) with TokenRequest and call as it.",
        Recursive = true,
    };

    public static readonly Option<string?> Gateway = new("--gateway")
    {
        Description = "Gateway base URL (default: $PILOTLIGHT_GATEWAY, then the function's status.endpoint).",
        Recursive = true,
    };

    public static readonly Option<string?> Operator = new("--operator")
    {
        Description = "Operator URL for usage (default: $PILOTLIGHT_OPERATOR).",
        Recursive = true,
    };

    public static void AddTo(RootCommand root)
    {
        root.Options.Add(Token);
        root.Options.Add(As);
        root.Options.Add(Gateway);
        root.Options.Add(Operator);
    }

    /// <summary>The token for a call; <paramref name="audience"/> is what a minted one is for (null: the API server).</summary>
    public static Task<string?> TokenAsync(ParseResult result, ClusterConnection connection, string? audience, CancellationToken cancellationToken) =>
        GatewayCredentials.ResolveAsync(connection, result.GetValue(Token), result.GetValue(As), audience, cancellationToken);

    /// <summary>
    /// The gateway: explicit, else from a function's status.endpoint (<paramref name="ns"/>/<paramref name="function"/>,
    /// else any function in the namespace).
    /// </summary>
    public static async Task<Uri> GatewayAsync(ParseResult result, ClusterConnection connection, string ns, string? function, CancellationToken cancellationToken)
    {
        if (GatewayEndpoint.Explicit(result.GetValue(Gateway)) is { } explicitUri)
        {
            return explicitUri;
        }

        var resources = new PilotlightResources(connection);
        var candidates = function is not null
            ? [await resources.GetAsync(PilotlightKind.GpuFunction, ns, function, cancellationToken).ConfigureAwait(false)]
            : await resources.ListAsync(PilotlightKind.GpuFunction, ns, cancellationToken).ConfigureAwait(false);
        if (function is null && candidates.Count == 0)
        {
            // Sandboxes have no endpoint of their own: any function's names the same gateway.
            try
            {
                candidates = await resources.ListAsync(PilotlightKind.GpuFunction, null, cancellationToken).ConfigureAwait(false);
            }
            catch (PilotlightClientException)
            {
                // Not allowed to list across namespaces: fall through to the hint below.
            }
        }

        foreach (var f in candidates)
        {
            if (CliOutput.Text(f, "status", "endpoint") is { Length: > 0 } endpoint)
            {
                return GatewayEndpoint.FromFunctionEndpoint(endpoint, CliOutput.Text(f, "metadata", "namespace") ?? ns, CliOutput.Text(f, "metadata", "name") ?? "");
            }
        }

        throw new PilotlightClientException("Cannot tell where the gateway is.",
            $"Pass --gateway URL or set {GatewayEndpoint.Variable} (the function's status.endpoint is empty until the operator has seen it).");
    }

    /// <summary>The operator's URL for the usage API.</summary>
    public static Uri OperatorUri(ParseResult result)
    {
        var value = result.GetValue(Operator) ?? Environment.GetEnvironmentVariable(GatewayEndpoint.OperatorVariable);
        return string.IsNullOrWhiteSpace(value)
            ? throw new PilotlightClientException("Cannot tell where the operator is.",
                $"Pass --operator URL or set {GatewayEndpoint.OperatorVariable} (e.g. kubectl port-forward -n pilotlight-system deploy/pilotlight-operator 8080, then http://127.0.0.1:8080).")
            : GatewayEndpoint.Parse(value, "--operator");
    }

    /// <summary>Splits <c>NS/NAME</c>, or <c>NAME</c> in the connection's namespace.</summary>
    public static (string Namespace, string Name) Target(string value, string defaultNamespace)
    {
        var parts = value.Split('/');
        return parts switch
        {
            [var name] when name.Length > 0 => (defaultNamespace, name),
            [var ns, var name] when ns.Length > 0 && name.Length > 0 => (ns, name),
            _ => throw new PilotlightClientException($"'{value}' is not NAME or NAMESPACE/NAME.", null),
        };
    }
}
