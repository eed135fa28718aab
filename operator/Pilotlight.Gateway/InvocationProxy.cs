using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Scaling;
using Polly;
using Polly.Retry;

namespace Pilotlight.Gateway;

/// <summary>Gateway settings.</summary>
public sealed record GatewayOptions
{
    /// <summary>Requests held per function while it has no ready pod; past this, 503 with Retry-After.</summary>
    public int QueueLimit { get; init; } = 1000;

    /// <summary>Port of the runtime shim in function pods.</summary>
    public int ShimPort { get; init; } = 8099;

    /// <summary>Connection attempts to other pods after a pod refused the connection before any byte was sent.</summary>
    public int ConnectRetries { get; init; } = 2;
}

/// <summary>
/// Serves <c>/{namespace}/{function}/{rest}</c>: picks the ready pod with the
/// fewest requests in flight (below the function's maxConcurrency), holds the
/// request while the function wakes from zero, forwards it and streams the answer back.
/// </summary>
public sealed class InvocationProxy
{
    /// <summary>The shim's header on a 503 it answered without forwarding (see the runtime shim).</summary>
    public const string RefusedHeader = "X-Pilotlight-Refused";

    /// <summary>Response header: milliseconds from the request's arrival to its dispatch to a pod.</summary>
    public const string RoutedAfterHeader = "X-Pilotlight-Routed-After-Ms";

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
    };

    private readonly Informer<GpuFunction> _functions;
    private readonly FunctionRoutes _routes;
    private readonly IKubernetes _client;
    private readonly HttpMessageInvoker _http;
    private readonly GatewayOptions _options;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ObjectKey, DateTimeOffset> _woken = new();

    /// <summary>A proxy over the given caches.</summary>
    public InvocationProxy(Informer<GpuFunction> functions, FunctionRoutes routes, IKubernetes client, GatewayOptions options,
        GatewayMetrics metrics, TimeProvider time, ILogger logger)
    {
        _functions = functions;
        _routes = routes;
        _client = client;
        _options = options;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _http = new HttpMessageInvoker(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        });
    }

    /// <summary>Handles one invocation.</summary>
    public async Task InvokeAsync(HttpContext context, string ns, string name, string? rest)
    {
        var started = _time.GetTimestamp();
        var key = new ObjectKey(ns, name);
        if (_functions.Get(key) is not { } function)
        {
            await WriteAsync(context, StatusCodes.Status404NotFound, $"no GpuFunction {ns}/{name}").ConfigureAwait(false);
            return;
        }

        var route = _routes.Get(key);
        route.Arrived(_time.GetUtcNow());
        try
        {
            await ServeAsync(context, function, route, rest).ConfigureAwait(false);
        }
        finally
        {
            route.Finished();
            _metrics.Requests.WithLabels(ns, name, $"{context.Response.StatusCode / 100}xx").Inc();
            _metrics.Latency.WithLabels(ns, name).Observe(_time.GetElapsedTime(started).TotalSeconds);
        }
    }

    private async Task ServeAsync(HttpContext context, GpuFunction function, FunctionRoute route, string? rest)
    {
        var arrived = _time.GetTimestamp();
        double? routedAfterMs = null;
        var spec = function.Spec;
        var maxConcurrency = Math.Max(1, spec.Scaling.MaxConcurrency);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(DurationString.Parse(spec.Timeout));

        var cold = route.Ready.Count == 0;
        if (cold)
        {
            Wake(function);
        }

        // Bodies are buffered (to disk past 64 KiB) so a refused connection can be retried on another pod.
        context.Request.EnableBuffering();
        var tried = new HashSet<string>();
        PodEndpoint? pod = null;
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _options.ConnectRetries,
                Delay = TimeSpan.Zero,
                // A refused connection, or a pod whose shim refused the request
                // unprocessed (draining, busy), is retried on another pod.
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is HttpRequestException { InnerException: SocketException }
                    || args.Outcome.Result is { StatusCode: HttpStatusCode.ServiceUnavailable } refused && refused.Headers.Contains(RefusedHeader)),
                OnRetry = args =>
                {
                    if (args.Outcome.Result is { } refused)
                    {
                        refused.Dispose();
                        if (pod is not null)
                        {
                            route.Release(pod);
                            pod = null;
                        }
                    }

                    _metrics.Retries.WithLabels(route.Key.Namespace ?? "", route.Key.Name).Inc();
                    context.Request.Body.Position = 0;
                    return ValueTask.CompletedTask;
                },
            })
            .Build();

        HttpResponseMessage response;
        try
        {
            response = await pipeline.ExecuteAsync(async ct =>
            {
                pod = await AcquireAsync(function, route, maxConcurrency, tried, cold, ct).ConfigureAwait(false);
                if (pod is null)
                {
                    throw new HeldTooLongException();
                }

                tried.Add(pod.Name);
                routedAfterMs ??= _time.GetElapsedTime(arrived).TotalMilliseconds;
                try
                {
                    return await _http.SendAsync(BuildRequest(context, pod, rest), ct).ConfigureAwait(false);
                }
                catch
                {
                    route.Release(pod);
                    pod = null;
                    throw;
                }
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (QueueFullException)
        {
            context.Response.Headers.RetryAfter = "1";
            await WriteAsync(context, StatusCodes.Status503ServiceUnavailable, $"{route.Held} requests already wait for {route.Key}").ConfigureAwait(false);
            return;
        }
        catch (HeldTooLongException)
        {
            await WriteAsync(context, StatusCodes.Status504GatewayTimeout, $"no ready pod for {route.Key} within startupTimeout {spec.StartupTimeout}").ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            await WriteAsync(context, StatusCodes.Status504GatewayTimeout, $"{route.Key} did not answer within its timeout {spec.Timeout}").ConfigureAwait(false);
            return;
        }
        catch (HttpRequestException ex)
        {
            await WriteAsync(context, StatusCodes.Status502BadGateway, $"{route.Key}: {ex.Message}").ConfigureAwait(false);
            return;
        }

        try
        {
            using (response)
            {
                context.Response.StatusCode = (int)response.StatusCode;
                foreach (var header in response.Headers.Concat(response.Content.Headers))
                {
                    if (!HopByHop.Contains(header.Key))
                    {
                        context.Response.Headers[header.Key] = header.Value.ToArray();
                    }
                }

                context.Response.Headers["X-Pilotlight-Cold-Start"] = cold ? "true" : "false";
                // How long the request was held before the gateway sent it to a pod (the wake-up, on a cold start).
                context.Response.Headers[RoutedAfterHeader] = (routedAfterMs ?? 0).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
                await response.Content.CopyToAsync(context.Response.Body, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            context.Abort();
        }
        finally
        {
            if (pod is not null)
            {
                route.Release(pod);
            }
        }
    }

    /// <summary>Waits for a pod with room; null when the function's startupTimeout passes first.</summary>
    private async Task<PodEndpoint?> AcquireAsync(GpuFunction function, FunctionRoute route, int maxConcurrency, IReadOnlySet<string> tried,
        bool cold, CancellationToken ct)
    {
        if (route.TryAcquire(maxConcurrency, tried, out var changed) is { } now)
        {
            return now;
        }

        if (!route.TryHold(_options.QueueLimit))
        {
            throw new QueueFullException();
        }

        Probe(route);

        var labels = (route.Key.Namespace ?? "", route.Key.Name);
        _metrics.Held.WithLabels(labels.Item1, labels.Item2).Inc();
        var waited = _time.GetTimestamp();
        try
        {
            using var startup = CancellationTokenSource.CreateLinkedTokenSource(ct);
            startup.CancelAfter(DurationString.Parse(function.Spec.StartupTimeout));
            while (true)
            {
                try
                {
                    await changed.WaitAsync(startup.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    return null;
                }

                if (route.TryAcquire(maxConcurrency, tried, out changed) is { } pod)
                {
                    return pod;
                }

                if (route.Ready.Count == 0)
                {
                    Wake(function);
                    Probe(route);
                }
            }
        }
        finally
        {
            route.Unhold();
            _metrics.Held.WithLabels(labels.Item1, labels.Item2).Dec();
            if (cold)
            {
                _metrics.ColdStartWait.WithLabels(labels.Item1, labels.Item2).Observe(_time.GetElapsedTime(waited).TotalSeconds);
            }
        }
    }

    /// <summary>
    /// While requests wait and no pod is ready, asks the shims of starting pods
    /// directly (every 25 ms) instead of waiting for readiness to reach the API
    /// and come back through the watch: the first ready shim serves at once.
    /// </summary>
    private void Probe(FunctionRoute route)
    {
        if (route.Starting.Count == 0 || !route.TryStartProbing())
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                while (route.Held > 0 && route.Ready.Count == 0 && route.Starting.Count > 0)
                {
                    foreach (var pod in route.Starting)
                    {
                        try
                        {
                            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                            using var probe = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri(pod.Uri, "/ready")), timeout.Token).ConfigureAwait(false);
                            if (probe.IsSuccessStatusCode)
                            {
                                route.MarkProbedReady(pod);
                            }
                        }
                        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
                        {
                        }
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(25), _time).ConfigureAwait(false);
                }
            }
            finally
            {
                route.StopProbing();
            }
        });
    }

    /// <summary>
    /// Tells the autoscaler at once that a request waits for a function with
    /// no ready pod, by stamping the wake annotation (at most once a second per function).
    /// </summary>
    private void Wake(GpuFunction function)
    {
        var key = ObjectKey.Of(function);
        var now = _time.GetUtcNow();
        if (_woken.TryGetValue(key, out var last) && now - last < TimeSpan.FromSeconds(1))
        {
            return;
        }

        _woken[key] = now;
        var stamp = now.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        var patch = new V1Patch($"{{\"metadata\":{{\"annotations\":{{\"{Autoscaler.WakeAnnotation}\":\"{stamp}\"}}}}}}", V1Patch.PatchType.MergePatch);
        _ = Task.Run(async () =>
        {
            try
            {
                await _client.CustomObjects.PatchNamespacedCustomObjectAsync(patch, Group.Name, Group.Version,
                    key.Namespace, "gpufunctions", key.Name).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                _logger.LogWarning("Could not wake {Function}: {Error}", key, ex.Message);
            }
        });
    }

    private static HttpRequestMessage BuildRequest(HttpContext context, PodEndpoint pod, string? rest)
    {
        var request = context.Request;
        var target = new UriBuilder(pod.Uri) { Path = "/" + (rest ?? ""), Query = request.QueryString.HasValue ? request.QueryString.Value![1..] : "" }.Uri;
        var message = new HttpRequestMessage(new HttpMethod(request.Method), target) { Version = HttpVersion.Version11 };
        if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
        {
            message.Content = new StreamContent(request.Body);
        }

        foreach (var header in request.Headers)
        {
            if (HopByHop.Contains(header.Key))
            {
                continue;
            }

            if (!message.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray()))
            {
                message.Content?.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray());
            }
        }

        message.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.Value);
        return message;
    }

    private static async Task WriteAsync(HttpContext context, int status, string message)
    {
        if (!context.Response.HasStarted)
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "text/plain; charset=utf-8";
            await context.Response.WriteAsync(message + "\n").ConfigureAwait(false);
        }
    }

    private sealed class QueueFullException : Exception;

    private sealed class HeldTooLongException : Exception;
}
