using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http.Features;

namespace Pilotlight.RuntimeShim;

/// <summary>
/// Forwards one request to the upstream through the <see cref="ShimRuntime"/> gate: method, path and query,
/// end-to-end headers, and request and response bodies streamed both ways.
/// </summary>
internal sealed class Forwarder : IDisposable
{
    /// <summary>Set on a 503 the shim answered itself without forwarding (draining or busy).</summary>
    public const string RefusedHeader = "X-Pilotlight-Refused";

    /// <summary>Headers that describe one connection, not the message; never forwarded (RFC 9110 §7.6.1).</summary>
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    };

    private readonly ShimOptions _options;
    private readonly ShimRuntime _runtime;
    private readonly TimeProvider _time;
    private readonly ILogger<Forwarder> _log;
    private readonly string _upstreamBase;

    public Forwarder(ShimOptions options, ShimRuntime runtime, TimeProvider time, ILogger<Forwarder> log)
    {
        _options = options;
        _runtime = runtime;
        _time = time;
        _log = log;
        _upstreamBase = options.Upstream.GetLeftPart(UriPartial.Path).TrimEnd('/');
        Client = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            ActivityHeadersPropagator = null,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>The client every call to the upstream goes through.</summary>
    public HttpClient Client { get; }

    /// <summary>The upstream address for a path-and-query that starts with '/'.</summary>
    public Uri UpstreamUri(string pathAndQuery) => new(_upstreamBase + pathAndQuery, UriKind.Absolute);

    public async Task ForwardAsync(HttpContext context)
    {
        using var timeout = new CancellationTokenSource(_options.RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, context.RequestAborted);
        var token = linked.Token;

        GateOutcome outcome;
        try
        {
            outcome = await _runtime.EnterAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            await ShimApp.PlainText(context, StatusCodes.Status504GatewayTimeout, $"timed out after {Format(_options.RequestTimeout)} waiting for a free slot").ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            return; // The client went away while queued.
        }

        if (outcome != GateOutcome.Entered)
        {
            // Not processed: a gateway may safely send it to another pod.
            context.Response.Headers.RetryAfter = "1";
            context.Response.Headers[RefusedHeader] = outcome == GateOutcome.Draining ? "draining" : "busy";
            await ShimApp.PlainText(
                context,
                StatusCodes.Status503ServiceUnavailable,
                outcome == GateOutcome.Draining ? "draining" : $"busy: {_options.MaxConcurrency} in flight and {_options.QueueLength} queued").ConfigureAwait(false);
            return;
        }

        try
        {
            await SendAsync(context, timeout, token).ConfigureAwait(false);
        }
        finally
        {
            _runtime.Exit();
        }
    }

    private async Task SendAsync(HttpContext context, CancellationTokenSource timeout, CancellationToken token)
    {
        using var request = CreateRequest(context);
        HttpResponseMessage response;
        try
        {
            response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            await ShimApp.PlainText(context, StatusCodes.Status504GatewayTimeout, $"upstream did not answer within {Format(_options.RequestTimeout)}").ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (HttpRequestException e) when (!context.Response.HasStarted)
        {
            _log.LogWarning("Upstream {Upstream} unreachable: {Reason}", _options.Upstream, Describe(e));
            await ShimApp.PlainText(context, StatusCodes.Status502BadGateway, $"upstream {_options.Upstream}: {Describe(e)}").ConfigureAwait(false);
            return;
        }

        using (response)
        {
            CopyResponseHeaders(response, context.Response);
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            try
            {
                await using var body = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
                await body.CopyToAsync(context.Response.Body, token).ConfigureAwait(false);
                await context.Response.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException)
            {
                // The status line is gone already; all that is left is to cut the response short.
                if (timeout.IsCancellationRequested)
                {
                    _log.LogWarning("Request timed out after {Timeout} while streaming the response", _options.RequestTimeout);
                }

                context.Abort();
            }
        }
    }

    private HttpRequestMessage CreateRequest(HttpContext context)
    {
        var incoming = context.Request;
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var pathAndQuery = rawTarget is { Length: > 0 } && rawTarget[0] == '/'
            ? rawTarget
            : incoming.Path.ToUriComponent() + incoming.QueryString.ToUriComponent();

        var request = new HttpRequestMessage(new HttpMethod(incoming.Method), UpstreamUri(pathAndQuery));

        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody
            ?? (incoming.ContentLength > 0 || incoming.Headers.TransferEncoding.Count > 0);
        if (canHaveBody)
        {
            request.Content = new StreamContent(incoming.Body);
        }
        else if (incoming.ContentLength == 0)
        {
            request.Content = new ByteArrayContent([]);
        }

        var connectionListed = ConnectionListed(incoming.Headers.Connection);
        foreach (var (name, values) in incoming.Headers)
        {
            if (HopByHop.Contains(name) || connectionListed.Contains(name)
                || name.Equals("Host", StringComparison.OrdinalIgnoreCase)
                || name.Equals("Expect", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        var remote = context.Connection.RemoteIpAddress?.ToString();
        if (remote is not null)
        {
            var prior = incoming.Headers["X-Forwarded-For"].ToString();
            request.Headers.Remove("X-Forwarded-For");
            request.Headers.TryAddWithoutValidation("X-Forwarded-For", string.IsNullOrEmpty(prior) ? remote : $"{prior}, {remote}");
        }

        if (!incoming.Headers.ContainsKey("X-Forwarded-Proto"))
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", incoming.Scheme);
        }

        if (!incoming.Headers.ContainsKey("X-Forwarded-Host") && incoming.Host.HasValue)
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-Host", incoming.Host.Value);
        }

        return request;
    }

    private static void CopyResponseHeaders(HttpResponseMessage from, HttpResponse to)
    {
        to.StatusCode = (int)from.StatusCode;
        var connectionListed = ConnectionListed(from.Headers.TryGetValues("Connection", out var c) ? string.Join(",", c) : null);
        foreach (var (name, values) in from.Headers.Concat(from.Content.Headers))
        {
            if (HopByHop.Contains(name) || connectionListed.Contains(name))
            {
                continue;
            }

            to.Headers[name] = values.ToArray();
        }
    }

    private static HashSet<string> ConnectionListed(string? connection)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        if (!string.IsNullOrEmpty(connection))
        {
            foreach (var part in connection.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                names.Add(part);
            }
        }

        return names;
    }

    /// <summary>A short reason for a failed upstream call, e.g. "connection refused".</summary>
    public static string Describe(HttpRequestException e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException socket)
            {
                return socket.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.TimedOut => "connect timed out",
                    SocketError.HostNotFound or SocketError.NoData => "host not found",
                    SocketError.ConnectionReset => "connection reset",
                    SocketError.NetworkUnreachable or SocketError.HostUnreachable => "unreachable",
                    _ => socket.Message,
                };
            }
        }

        return e.HttpRequestError switch
        {
            HttpRequestError.ResponseEnded => "connection closed before a response",
            HttpRequestError.InvalidResponse => "invalid HTTP response",
            _ => e.InnerException?.Message ?? e.Message,
        };
    }

    private static string Format(TimeSpan span) =>
        span.TotalSeconds >= 1 && span.TotalSeconds == Math.Floor(span.TotalSeconds)
            ? $"{span.TotalSeconds:0}s"
            : $"{span.TotalMilliseconds:0}ms";

    public void Dispose() => Client.Dispose();
}
