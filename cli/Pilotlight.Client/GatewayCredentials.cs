using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Pilotlight.Client;

/// <summary>
/// The bearer token sent to the gateway, in this order: an explicit token (<c>--token</c>, else
/// <c>PILOTLIGHT_TOKEN</c>); a token minted by TokenRequest for a ServiceAccount (<c>--as [NS/]NAME</c>); else the
/// kubeconfig user's own token (exec plugins included). Function invocation wants audience <c>pilotlight</c>; the
/// sandbox API reviews tokens for the API server's own audience, so sandbox calls mint without one.
/// </summary>
public static class GatewayCredentials
{
    /// <summary>The audience the gateway checks invocation tokens for (its <c>--token-audience</c> default).</summary>
    public const string InvokeAudience = "pilotlight";

    /// <summary>Environment variable holding an explicit token.</summary>
    public const string TokenVariable = "PILOTLIGHT_TOKEN";

    /// <summary>Splits <c>[NS/]NAME</c>; the namespace defaults to <paramref name="defaultNamespace"/>.</summary>
    public static (string Namespace, string Name) ParseServiceAccount(string value, string defaultNamespace)
    {
        var parts = value.Split('/');
        return parts switch
        {
            [var name] when name.Length > 0 => (defaultNamespace, name),
            [var ns, var name] when ns.Length > 0 && name.Length > 0 => (ns, name),
            _ => throw new PilotlightClientException($"'{value}' is not a ServiceAccount.", "Write --as NAME or --as NAMESPACE/NAME."),
        };
    }

    /// <summary>The token to send, or null when there is none (a public function needs none).</summary>
    /// <param name="connection">The cluster, for TokenRequest and the kubeconfig's token.</param>
    /// <param name="token">An explicit token; null to look at <c>PILOTLIGHT_TOKEN</c>.</param>
    /// <param name="serviceAccount"><c>[NS/]NAME</c> to mint a token for; null for none.</param>
    /// <param name="audience">The audience to mint for; null for the API server's own.</param>
    /// <param name="cancellationToken">Cancels the TokenRequest.</param>
    public static async Task<string?> ResolveAsync(ClusterConnection connection, string? token, string? serviceAccount, string? audience,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        token ??= Environment.GetEnvironmentVariable(TokenVariable);
        if (!string.IsNullOrWhiteSpace(token))
        {
            return token.Trim();
        }

        if (!string.IsNullOrEmpty(serviceAccount))
        {
            var (ns, name) = ParseServiceAccount(serviceAccount, connection.Namespace);
            var request = new Authenticationv1TokenRequest
            {
                Spec = new V1TokenRequestSpec { Audiences = audience is null ? null : [audience], ExpirationSeconds = 600 },
            };
            try
            {
                var minted = await connection.Kubernetes.CoreV1.CreateNamespacedServiceAccountTokenAsync(request, name, ns, cancellationToken: cancellationToken)
                    .ConfigureAwait(false);
                return minted.Status.Token;
            }
            catch (HttpOperationException e)
            {
                throw new PilotlightClientException($"Could not mint a token for ServiceAccount {ns}/{name}: HTTP {(int)e.Response.StatusCode}.",
                    (int)e.Response.StatusCode == 404 ? "Check that the ServiceAccount exists." : "You need create on serviceaccounts/token in that namespace.", e);
            }
        }

        return connection.Configuration.AccessToken is { Length: > 0 } own ? own : null;
    }
}
