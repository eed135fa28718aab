using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.Gateway;

/// <summary>
/// The gateway's sandbox API, under <c>/_sandbox/{namespace}/{name}/</c> (an
/// underscore cannot start a namespace, so it never shadows a function):
/// <c>POST exec</c>, <c>GET exec/ws</c> (a WebSocket upgrade, forwarded by YARP without the caller's credentials), <c>GET|PUT|DELETE files?path=</c>, <c>GET files/list?path=</c>,
/// <c>GET|PUT archive?path=</c> (a directory as tar; the same permissions as files) and <c>POST terminate</c>. Callers present a Kubernetes bearer token; the
/// gateway checks it with a TokenReview and asks a SubjectAccessReview whether
/// that user may do the operation on that sandbox: no token or an invalid one
/// is 401, not allowed is 403. Exec and file calls are passed to the sandbox's
/// agent, streaming both ways; each one counts as activity for idleTimeout.
/// </summary>
public sealed class SandboxApi
{
    /// <summary>URL prefix of the API.</summary>
    public const string Prefix = "/_sandbox";

    /// <summary>The header naming the sandbox pod's namespace for its agent.</summary>
    internal const string NamespaceHeader = "X-Pilotlight-Sandbox-Namespace";

    /// <summary>The header naming the sandbox pod's UID for its agent.</summary>
    internal const string PodUidHeader = "X-Pilotlight-Pod-Uid";

    private static readonly TimeSpan ReviewCacheFor = TimeSpan.FromSeconds(10);
    private readonly Informer<Sandbox> _sandboxes;
    private readonly Informer<V1Pod> _pods;
    private readonly IKubernetes _client;
    private readonly HttpClient _agents;
    private readonly int _agentPort;
    private readonly bool _secure;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    // Bounded: one entry per token, operation and sandbox, so random tokens cannot grow it without end.
    private readonly MemoryCache _reviews = new(new MemoryCacheOptions { SizeLimit = 10_000 });
    private readonly SignalBoard _signals;
    private readonly IHttpForwarder? _forwarder;
    private readonly HttpMessageInvoker _sockets;

    /// <summary>The API over the given caches.</summary>
    public SandboxApi(Informer<Sandbox> sandboxes, Informer<V1Pod> pods, IKubernetes client, SignalBoard signals, int agentPort, TimeProvider time, ILogger logger,
        Func<X509Certificate2?>? clientCertificate = null, IHttpForwarder? forwarder = null)
    {
        _forwarder = forwarder;
        _secure = clientCertificate is not null;
        _signals = signals;
        _sandboxes = sandboxes;
        _pods = pods;
        _client = client;
        _agentPort = agentPort;
        _time = time;
        _logger = logger;
        var handler = new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false };
        if (clientCertificate is not null)
        {
            // The agent trusts this client certificate's CA; the agent's own certificate is one it made at start, so it
            // is not checked here: who answers is settled by the agent comparing the pod UID sent with its own.
            handler.SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                LocalCertificateSelectionCallback = (_, _, _, _, _) => clientCertificate()!,
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            };
        }

        _agents = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        // Interactive exec goes through YARP's forwarder (WebSocket upgrades), with a handler as its docs prescribe.
        _sockets = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            SslOptions = handler.SslOptions,
        });
    }

    /// <summary>What an operation needs in RBAC terms: (verb, subresource).</summary>
    public static (string Verb, string Subresource)? Permission(string method, string operation) => (method, operation) switch
    {
        ("POST", "exec") or ("GET", "exec/ws") => ("create", "exec"),
        ("GET", "files") or ("GET", "files/list") or ("GET", "archive") => ("get", "files"),
        ("PUT", "files") or ("DELETE", "files") or ("PUT", "archive") => ("update", "files"),
        ("POST", "terminate") => ("update", "terminate"),
        _ => null,
    };

    /// <summary>Handles one call.</summary>
    public async Task HandleAsync(HttpContext context, string ns, string name, string operation)
    {
        var ct = context.RequestAborted;
        if (Permission(context.Request.Method, operation) is not { } permission)
        {
            await ProblemAsync(context, StatusCodes.Status404NotFound, $"no sandbox operation {context.Request.Method} {operation}").ConfigureAwait(false);
            return;
        }

        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await ProblemAsync(context, StatusCodes.Status401Unauthorized, "a Kubernetes bearer token is required").ConfigureAwait(false);
            return;
        }

        var (allowed, status, detail) = await AuthorizeAsync(header[7..].Trim(), ns, name, permission, ct).ConfigureAwait(false);
        if (!allowed)
        {
            if (status == StatusCodes.Status401Unauthorized)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
            }

            await ProblemAsync(context, status, detail).ConfigureAwait(false);
            return;
        }

        var key = new ObjectKey(ns, name);
        if (_sandboxes.Get(key) is not { } sandbox)
        {
            await ProblemAsync(context, StatusCodes.Status404NotFound, $"sandbox {ns}/{name} not found").ConfigureAwait(false);
            return;
        }

        if (sandbox.Status?.Conditions?.FirstOrDefault(c => c.Type == SandboxConditions.Finished) is { Status: "True" } finished)
        {
            await ProblemAsync(context, StatusCodes.Status410Gone, $"sandbox {ns}/{name} has finished: {finished.Reason}").ConfigureAwait(false);
            return;
        }

        if (operation == "terminate")
        {
            // The operator reads the request from this gateway's signals, ends the sandbox and says so in its status.
            _signals.Terminate(key, sandbox.Metadata.Uid);
            context.Response.StatusCode = StatusCodes.Status202Accepted;
            return;
        }

        if (_signals.TerminateRequested(key, sandbox.Metadata.Uid))
        {
            await ProblemAsync(context, StatusCodes.Status410Gone, $"sandbox {ns}/{name} is being terminated").ConfigureAwait(false);
            return;
        }

        var pod = sandbox.Status?.PodName is { } podName ? _pods.Get(new ObjectKey(ns, podName)) : null;
        if (pod?.Status?.PodIP is not { Length: > 0 } ip || !PodReadiness.IsReady(pod)
            || pod.Metadata.Labels?.TryGetValue(SandboxAnnotations.SandboxLabel, out var owner) != true || owner != name
            // The label says which sandbox; only the controller reference to this Sandbox's UID says the pod is really its own.
            || pod.Metadata.OwnerReferences?.Any(o => o.Controller == true && o.Kind == Sandbox.KindName && o.Uid == sandbox.Metadata.Uid) != true)
        {
            context.Response.Headers.RetryAfter = "1";
            await ProblemAsync(context, StatusCodes.Status409Conflict, $"sandbox {ns}/{name} is not ready yet").ConfigureAwait(false);
            return;
        }

        // Activity when the call begins and when it ends; while it runs the sandbox is not idle, however long that is.
        _signals.Activity(key, sandbox.Metadata.Uid, 1);
        try
        {
            var target = new Uri($"{(_secure ? "https" : "http")}://{ip}:{_agentPort}/{operation}{context.Request.QueryString}");
            if (operation == "exec/ws")
            {
                await ForwardSocketAsync(context, target, pod).ConfigureAwait(false);
            }
            else
            {
                await ForwardAsync(context, target, pod, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _signals.Activity(key, sandbox.Metadata.Uid, -1);
        }
    }

    private async Task<(bool Allowed, int Status, string Detail)> AuthorizeAsync(string token, string ns, string name, (string Verb, string Subresource) permission,
        CancellationToken ct)
    {
        // Cached by a hash: the token itself is never kept, logged or echoed.
        var cacheKey = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{token}\n{ns}\n{name}\n{permission.Verb}\n{permission.Subresource}")));
        var now = _time.GetUtcNow();
        if (_reviews.TryGetValue(cacheKey, out (DateTimeOffset At, bool Allowed, string Detail) cached) && now - cached.At < ReviewCacheFor)
        {
            return cached.Allowed ? (true, 200, "") : (false, cached.Detail.StartsWith("401", StringComparison.Ordinal) ? 401 : 403, cached.Detail[4..]);
        }

        try
        {
            var review = await _client.AuthenticationV1.CreateTokenReviewAsync(new V1TokenReview { Spec = new V1TokenReviewSpec { Token = token } }, cancellationToken: ct)
                .ConfigureAwait(false);
            if (review.Status?.Authenticated != true || review.Status.User is not { } user)
            {
                Remember(cacheKey, (now, false, "401 the bearer token was not accepted"));
                return (false, 401, "the bearer token was not accepted");
            }

            var allowed = await AccessReviews.AllowsAsync(_client, user, new V1ResourceAttributes
            {
                Group = Group.Name,
                Resource = "sandboxes",
                Subresource = permission.Subresource,
                Verb = permission.Verb,
                NamespaceProperty = ns,
                Name = name,
            }, ct).ConfigureAwait(false);
            if (!allowed)
            {
                var detail = $"{user.Username} may not {permission.Verb} sandboxes/{permission.Subresource} of {ns}/{name}";
                Remember(cacheKey, (now, false, "403 " + detail));
                return (false, 403, detail);
            }

            Remember(cacheKey, (now, true, ""));
            return (true, 200, "");
        }
        catch (HttpOperationException e)
        {
            _logger.LogWarning("Sandbox authorisation could not be checked: HTTP {Status}", (int)e.Response.StatusCode);
            return (false, 503, "authorisation could not be checked; try again");
        }
    }

    private void Remember(string key, (DateTimeOffset At, bool Allowed, string Detail) decision) =>
        _reviews.Set(key, decision, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = ReviewCacheFor });

    /// <summary>
    /// The largest request body the gateway passes to an agent: the agent's default file cap (64 MiB) plus room for
    /// an exec request's JSON. Kestrel's own default (about 28.6 MiB) would otherwise cut larger files off mid-copy.
    /// The agent applies its own, possibly smaller, limit behind this one.
    /// </summary>
    public const long MaxBodyBytes = (64L << 20) + (1L << 20);

    /// <summary>
    /// The largest tar a <c>PUT archive</c> may send: a directory of many files, each still bounded by the agent's
    /// file cap, and all of them by the sandbox's workspace size.
    /// </summary>
    public const long MaxArchiveBytes = 4L << 30;

    private async Task ForwardAsync(HttpContext context, Uri target, V1Pod pod, CancellationToken ct)
    {
        var max = target.AbsolutePath == "/archive" ? MaxArchiveBytes : MaxBodyBytes;
        if (context.Request.ContentLength is { } declared && declared > max)
        {
            await ProblemAsync(context, StatusCodes.Status413PayloadTooLarge,
                $"request body of {declared} bytes is over the limit of {max} bytes").ConfigureAwait(false);
            return;
        }

        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = max;
        }

        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), target);
        // The pod this call is for: its agent refuses a call meant for another (a reused IP, a stale endpoint).
        request.Headers.Add(NamespaceHeader, pod.Metadata.NamespaceProperty);
        request.Headers.Add(PodUidHeader, pod.Metadata.Uid);
        if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            request.Content = new StreamContent(context.Request.Body);
            if (context.Request.ContentType is { } type)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
            }
        }

        HttpResponseMessage response;
        try
        {
            response = await _agents.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (e.InnerException is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge })
        {
            // A body sent without a length ran past the limit while being copied.
            await ProblemAsync(context, StatusCodes.Status413PayloadTooLarge, $"request body over the limit of {MaxBodyBytes} bytes").ConfigureAwait(false);
            return;
        }
        catch (HttpRequestException e)
        {
            await ProblemAsync(context, StatusCodes.Status502BadGateway, $"the sandbox's agent could not be reached: {e.Message}").ConfigureAwait(false);
            return;
        }

        using (response)
        {
            context.Response.StatusCode = (int)response.StatusCode;
            foreach (var h in response.Content.Headers)
            {
                if (h.Key is "Content-Type" or "Content-Length")
                {
                    context.Response.Headers[h.Key] = h.Value.ToArray();
                }
            }

            // Exec output streams line by line: flush as it comes.
            await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                await context.Response.Body.FlushAsync(ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Passes an interactive exec's WebSocket upgrade to the agent and both directions of it until either side closes.</summary>
    private async Task ForwardSocketAsync(HttpContext context, Uri target, V1Pod pod)
    {
        if (_forwarder is null)
        {
            await ProblemAsync(context, StatusCodes.Status501NotImplemented, "interactive exec is not available on this gateway").ConfigureAwait(false);
            return;
        }

        var transformer = new SandboxSocketTransformer(target, pod.Metadata.NamespaceProperty, pod.Metadata.Uid);
        // An idle shell is not a dead one: the agent's own exec timeout (at most an hour) ends it.
        var config = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromHours(1) + TimeSpan.FromMinutes(1) };
        var error = await _forwarder.SendAsync(context, target.GetLeftPart(UriPartial.Authority), _sockets, config, transformer).ConfigureAwait(false);
        if (error != ForwarderError.None)
        {
            _logger.LogInformation("Interactive exec to {Pod} ended with {Error}", pod.Metadata.Name, error);
        }
    }

    private static Task ProblemAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new Dictionary<string, string> { ["error"] = message });
    }
}
