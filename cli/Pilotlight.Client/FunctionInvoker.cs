namespace Pilotlight.Client;

/// <summary>What to send to a function.</summary>
/// <param name="Namespace">The function's namespace.</param>
/// <param name="Function">The function's name.</param>
/// <param name="Path">The path under the function (no leading slash needed), with any query string.</param>
/// <param name="Method">The HTTP method; POST when there is a body, else GET, when null.</param>
/// <param name="Headers">Extra request headers.</param>
/// <param name="Body">The request body, streamed as it is read; null for none.</param>
public sealed record Invocation(string Namespace, string Function, string? Path = null, string? Method = null,
    IReadOnlyList<KeyValuePair<string, string>>? Headers = null, Stream? Body = null);

/// <summary>The headers the gateway adds to a function's answer, read from the response.</summary>
/// <param name="ColdStart">The request waited for a pod to start (<c>X-Pilotlight-Cold-Start</c>).</param>
/// <param name="Start">How the serving pod came to serve (<c>X-Pilotlight-Start</c>: warm, cold, ...).</param>
/// <param name="RoutedAfter">How long the gateway held the request before routing it (<c>X-Pilotlight-Routed-After-Ms</c>).</param>
public sealed record InvocationTiming(string? ColdStart, string? Start, TimeSpan? RoutedAfter)
{
    /// <summary>Reads the gateway's headers.</summary>
    public static InvocationTiming From(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        string? Header(string name) => response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;
        return new InvocationTiming(Header("X-Pilotlight-Cold-Start"), Header("X-Pilotlight-Start"),
            double.TryParse(Header("X-Pilotlight-Routed-After-Ms"), System.Globalization.CultureInfo.InvariantCulture, out var ms) ? TimeSpan.FromMilliseconds(ms) : null);
    }
}

/// <summary>Invokes functions through the gateway, streaming request and response bodies.</summary>
public sealed class FunctionInvoker(HttpClient http, Uri gateway, string? token)
{
    /// <summary>
    /// Statuses the gateway itself answers with (refusals, no capacity, timeouts); they become
    /// <see cref="GatewayException"/>s. Any other status is the function's own and is returned.
    /// </summary>
    public static bool IsGatewayStatus(int status) => status is 401 or 403 or 404 or 429 or 502 or 503 or 504;

    /// <summary>
    /// Sends the request and returns the response as soon as its headers arrive; the caller reads (and disposes) the
    /// body. A refusal by the gateway throws <see cref="GatewayException"/>.
    /// </summary>
    public async Task<HttpResponseMessage> InvokeAsync(Invocation invocation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(invocation);
        var path = invocation.Path?.TrimStart('/') ?? "";
        var uri = new Uri(gateway, $"{Uri.EscapeDataString(invocation.Namespace)}/{Uri.EscapeDataString(invocation.Function)}/{path}");
        using var request = new HttpRequestMessage(new HttpMethod(invocation.Method ?? (invocation.Body is null ? "GET" : "POST")), uri);
        if (invocation.Body is not null)
        {
            request.Content = new StreamContent(invocation.Body, 64 * 1024);
        }

        foreach (var (name, value) in invocation.Headers ?? [])
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content ??= new ByteArrayContent([]);
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }

        GatewayHttp.Authorize(request, token);
        var response = await GatewayHttp.SendAsync(http, request, "the gateway", cancellationToken).ConfigureAwait(false);
        if (IsGatewayStatus((int)response.StatusCode))
        {
            using (response)
            {
                throw await GatewayException.FromResponseAsync(response, $"function {invocation.Namespace}/{invocation.Function}", cancellationToken).ConfigureAwait(false);
            }
        }

        return response;
    }
}
