using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.RuntimeShim;

/// <summary>
/// Forwards one request to the upstream through the <see cref="ShimRuntime"/> gate with YARP's forwarder:
/// HTTP/1.1, or HTTP/2 with prior knowledge (h2c) when the request came as HTTP/2 (gRPC); WebSocket upgrades;
/// request and response bodies streamed both ways, never buffered; trailers.
/// </summary>
internal sealed class Forwarder : IDisposable
{
    /// <summary>Set on a 503 the shim answered itself without forwarding (draining or busy).</summary>
    public const string RefusedHeader = "X-Pilotlight-Refused";

    /// <summary>Past the request timeout, which is what bounds a request: the forwarder's idle timeout never fires first.</summary>
    private static readonly TimeSpan IdleMargin = TimeSpan.FromSeconds(30);

    private readonly ShimOptions _options;
    private readonly ShimRuntime _runtime;
    private readonly TimeProvider _time;
    private readonly ILogger<Forwarder> _log;
    private readonly IHttpForwarder _forwarder;
    private readonly string _upstreamBase;
    private readonly HttpMessageInvoker _invoker;
    private readonly ForwarderRequestConfig _http1;
    private readonly ForwarderRequestConfig _http2;

    public Forwarder(ShimOptions options, ShimRuntime runtime, TimeProvider time, ILogger<Forwarder> log, IHttpForwarder forwarder)
    {
        _options = options;
        _runtime = runtime;
        _time = time;
        _log = log;
        _forwarder = forwarder;
        _upstreamBase = options.Upstream.GetLeftPart(UriPartial.Path).TrimEnd('/');
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            EnableMultipleHttp2Connections = true,
            ActivityHeadersPropagator = null,
        };
        // One connection pool for forwarding (the forwarder wants an invoker) and the shim's own checks.
        _invoker = new HttpMessageInvoker(handler, disposeHandler: true);
        Client = new HttpClient(handler, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
        var idle = options.RequestTimeout + IdleMargin;
        _http1 = new ForwarderRequestConfig { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower, ActivityTimeout = idle };
        _http2 = new ForwarderRequestConfig { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, ActivityTimeout = idle };
    }

    /// <summary>The client the shim's own calls to the upstream (health checks) go through.</summary>
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
        var config = HttpProtocol.IsHttp2(context.Request.Protocol) ? _http2 : _http1;
        var error = await _forwarder.SendAsync(context, _upstreamBase, _invoker, config, ShimTransformer.Instance, token).ConfigureAwait(false);
        if (error == ForwarderError.None || context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        if (context.Response.HasStarted)
        {
            // The status line is gone already; the forwarder has cut the response short.
            if (timeout.IsCancellationRequested)
            {
                _log.LogWarning("Request timed out after {Timeout} while streaming the response", _options.RequestTimeout);
            }

            return;
        }

        context.Response.Clear();
        if (timeout.IsCancellationRequested)
        {
            await ShimApp.PlainText(context, StatusCodes.Status504GatewayTimeout, $"upstream did not answer within {Format(_options.RequestTimeout)}").ConfigureAwait(false);
            return;
        }

        var cause = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        var reason = cause is HttpRequestException e ? Describe(e) : error == ForwarderError.RequestTimedOut ? "connect timed out" : $"{error}";
        _log.LogWarning("Upstream {Upstream} unreachable: {Reason}", _options.Upstream, reason);
        await ShimApp.PlainText(context, StatusCodes.Status502BadGateway, $"upstream {_options.Upstream}: {reason}").ConfigureAwait(false);
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

    public void Dispose()
    {
        Client.Dispose();
        _invoker.Dispose();
    }

    /// <summary>
    /// The forwarder's copy of the request and response, plus the hop's forwarding headers: X-Forwarded-For gets
    /// the peer (the gateway) appended; X-Forwarded-Proto and -Host are set when the peer did not set them.
    /// </summary>
    private sealed class ShimTransformer : HttpTransformer
    {
        public static readonly ShimTransformer Instance = new();

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix,
            CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
            var incoming = httpContext.Request;
            if (httpContext.Connection.RemoteIpAddress?.ToString() is { } remote)
            {
                var prior = incoming.Headers["X-Forwarded-For"].ToString();
                proxyRequest.Headers.Remove("X-Forwarded-For");
                proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For", string.IsNullOrEmpty(prior) ? remote : $"{prior}, {remote}");
            }

            if (!incoming.Headers.ContainsKey("X-Forwarded-Proto"))
            {
                proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Proto", incoming.Scheme);
            }

            if (!incoming.Headers.ContainsKey("X-Forwarded-Host") && incoming.Host.HasValue)
            {
                proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Host", incoming.Host.Value);
            }
        }
    }
}
