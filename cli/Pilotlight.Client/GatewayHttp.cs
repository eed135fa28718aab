using System.Net.Http.Headers;

namespace Pilotlight.Client;

/// <summary>The one HTTP client setup for the gateway and the operator: no cookies, no redirects, no overall timeout (bodies stream).</summary>
public static class GatewayHttp
{
    /// <summary>A client for long streamed calls.</summary>
    public static HttpClient Create() => new(new SocketsHttpHandler
    {
        UseCookies = false,
        AllowAutoRedirect = false,
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>Adds <c>Authorization: Bearer</c> when there is a token.</summary>
    public static void Authorize(HttpRequestMessage request, string? token)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!string.IsNullOrEmpty(token))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
    }

    /// <summary>Sends, turning connection failures into an actionable error.</summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpRequestMessage request, string what, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new PilotlightClientException($"Cannot reach {what} at {request.RequestUri?.GetLeftPart(UriPartial.Authority)}: {e.Message}",
                "Check the URL (--gateway / PILOTLIGHT_GATEWAY, --operator / PILOTLIGHT_OPERATOR) and that it is reachable from here (kubectl port-forward).", e);
        }
    }
}
