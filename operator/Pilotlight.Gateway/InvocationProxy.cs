using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.ExceptionServices;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Polly;
using Polly.Retry;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.Gateway;

/// <summary>
/// Serves <c>/{namespace}/{function}/{rest}</c>: picks the ready pod with the
/// fewest requests in flight (below the function's maxConcurrency), holds the
/// request while the function wakes from zero, forwards it with YARP's forwarder (HTTP/1.1, or h2c when the
/// client spoke HTTP/2; WebSocket upgrades; streamed answers and trailers) and retries it per spec.retries.
/// </summary>
public sealed class InvocationProxy
{
    /// <summary>The shim's header on a 503 it answered without forwarding (see the runtime shim).</summary>
    public const string RefusedHeader = "X-Pilotlight-Refused";

    /// <summary>Response header: <c>true</c> when the request waited for a new pod (a cold start), else <c>false</c>.</summary>
    public const string ColdStartHeader = "X-Pilotlight-Cold-Start";

    /// <summary>Response header: <c>cold</c>, <c>warm</c> or <c>ready</c> (see <see cref="StartKind"/>).</summary>
    public const string StartHeader = "X-Pilotlight-Start";

    /// <summary>Response header: milliseconds from the request's arrival to its dispatch to a pod.</summary>
    public const string RoutedAfterHeader = "X-Pilotlight-Routed-After-Ms";

    private readonly Informer<GpuFunction> _functions;
    private readonly FunctionRoutes _routes;
    private readonly HttpMessageInvoker _http;
    private readonly IHttpForwarder _forwarder;
    private readonly GatewayOptions _options;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly WakeStamps _wakes;
    private readonly SignalBoard _signals;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ObjectKey, CachedPipeline> _pipelines = new();

    private static readonly ResiliencePropertyKey<Invocation> InvocationKey = new("pilotlight.invocation");

    /// <summary>A proxy over the given caches, forwarding through <paramref name="forwarder"/>.</summary>
    public InvocationProxy(Informer<GpuFunction> functions, FunctionRoutes routes, SignalBoard signals, GatewayOptions options,
        GatewayMetrics metrics, TimeProvider time, ILogger logger, IHttpForwarder forwarder)
    {
        _forwarder = forwarder;
        _functions = functions;
        _routes = routes;
        _options = options;
        _metrics = metrics;
        _time = time;
        _signals = signals;
        // Wakes go to the operator through the signal board it polls; the gateway writes nothing to the API.
        _wakes = new WakeStamps((key, at, waiting) =>
        {
            signals.Wake(key, at, waiting);
            return Task.CompletedTask;
        }, time, logger);
        // The one pooled client of every attempt and probe: a proxy passes cookies, redirects and encodings through untouched.
        _http = new HttpMessageInvoker(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            // gRPC calls to one pod share HTTP/2 connections; past its stream limit a call opens another.
            EnableMultipleHttp2Connections = true,
            // The client's trace headers pass as they came; the forwarder's own activity does not add more.
            ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
        });
        functions.AddHandler(e =>
        {
            if (e.Type == k8s.WatchEventType.Deleted)
            {
                // Per-function state lives as long as the function: a deleted one leaves nothing behind.
                var key = ObjectKey.Of(e.Object);
                _pipelines.TryRemove(key, out _);
                _wakes.Forget(key);
                signals.ForgetFunction(key);
            }
        });
        routes.WarmServed += route =>
        {
            // A request left a standby pod the operator has not claimed yet: stamp the wake now, after the
            // request was served, so the claim and the pool's refill start without waiting for a demand poll.
            if (_functions.Get(route.Key) is { } served)
            {
                _wakes.Wake(served, () => route.InFlight);
            }
        };
        routes.PodsChanged += route =>
        {
            // Pods came or went while requests wait at zero: stamp again (as spacing allows) and ask starting pods.
            if (route.Held > 0 && route.Ready.Count == 0 && _functions.Get(route.Key) is { } waking)
            {
                Wake(waking, route);
                Probe(route);
            }
        };
    }

    /// <summary>Handles one invocation; <paramref name="hostRouted"/>: routed by host, so the pod gets the whole path.</summary>
    public async Task InvokeAsync(HttpContext context, string ns, string name, string? rest, bool hostRouted = false)
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
            await ServeAsync(context, function, route, rest, hostRouted).ConfigureAwait(false);
        }
        finally
        {
            route.Finished();
            _metrics.Requests.WithLabels(ns, name, $"{context.Response.StatusCode / 100}xx").Inc();
            _metrics.Latency.WithLabels(ns, name).Observe(_time.GetElapsedTime(started).TotalSeconds);
        }
    }

    private async Task ServeAsync(HttpContext context, GpuFunction function, FunctionRoute route, string? rest, bool hostRouted)
    {
        var spec = function.Spec;
        var arrived = _time.GetUtcNow();
        var arrivedTimestamp = _time.GetTimestamp();
        var servingAtArrival = route.Ready;
        if (servingAtArrival.Count == 0)
        {
            Wake(function, route);
        }

        RequestBody body;
        try
        {
            body = await RequestBody.ReadAsync(context.Request, _options.ReplayLimit, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EndOfStreamException or BadHttpRequestException or IOException or OperationCanceledException)
        {
            // The client's body ended before its Content-Length, or the client went away.
            await WriteAsync(context, StatusCodes.Status400BadRequest, "the request body ended before its Content-Length").ConfigureAwait(false);
            return;
        }

        var invocation = new Invocation(context, function, route, rest, hostRouted, body, arrived, arrivedTimestamp, servingAtArrival, _options.ConnectRetries);

        var resilience = ResilienceContextPool.Shared.Get(context.RequestAborted);
        resilience.Properties.Set(InvocationKey, invocation);
        Attempt attempt;
        try
        {
            attempt = await PipelineFor(function).ExecuteAsync(
                static (ctx, self) => self.SendOnceAsync(ctx.Properties.GetValue(InvocationKey, null!), ctx.CancellationToken), resilience, this)
                .ConfigureAwait(false);
        }
        catch (QueueFullException)
        {
            context.Response.Headers.RetryAfter = "1";
            await WriteAsync(context, StatusCodes.Status503ServiceUnavailable, $"{route.Held} requests already wait for {route.Key}").ConfigureAwait(false);
            return;
        }
        catch (HeldTooLongException)
        {
            await WriteAsync(context, StatusCodes.Status504GatewayTimeout,
                $"no ready pod for {route.Key} within startupTimeout {spec.StartupTimeout} (the bound on holding a request while the function wakes)").ConfigureAwait(false);
            return;
        }
        catch (AttemptTimedOutException)
        {
            await WriteAsync(context, StatusCodes.Status504GatewayTimeout,
                $"{route.Key} did not answer within its timeout {spec.Timeout} (the bound on each attempt, from its dispatch to a pod)").ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is no one to answer.
            return;
        }
        catch (HttpRequestException ex)
        {
            CountGiveUp(invocation, AttemptOutcome.Classify(ex, null));
            await WriteAsync(context, StatusCodes.Status502BadGateway, $"{route.Key}: {ex.Message}").ConfigureAwait(false);
            return;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilience);
        }

        using (attempt)
        {
            // The answer went to the client as the forwarder copied it (start headers included), unless it was
            // held back for a retry that could not happen after all (the body was read on the way out).
            CountGiveUp(invocation, attempt.Failure);
            var start = invocation.Start ?? StartKind.Ready;
            _metrics.Starts.WithLabels(route.Key.Namespace ?? "", route.Key.Name, start.Value()).Inc();
            if (start == StartKind.Cold && invocation.Function.Metadata.Uid is { Length: > 0 } uid)
            {
                // For status.coldStarts, through the signals the operator polls.
                _signals.ColdStart(route.Key, uid);
            }
            if (!context.Response.HasStarted && RequestBodyLimit.Exceeded(context))
            {
                // A body of no declared length grew past the limit while it streamed (the forwarder answered 400).
                await RequestBodyLimit.RefuseAsync(context, _options.MaxRequestBodySize).ConfigureAwait(false);
            }
            else if (attempt.Declined)
            {
                await WriteAsync(context, StatusCodes.Status502BadGateway,
                    $"{route.Key}: {attempt.Pod.Name} answered {attempt.Status} and the request could not be sent again (its body was streamed)").ConfigureAwait(false);
            }
        }
    }

    /// <summary>Adds the start headers to the response the forwarder is about to copy.</summary>
    private static void Stamp(HttpResponse response, Invocation invocation)
    {
        var start = invocation.Start ?? StartKind.Ready;
        response.Headers[ColdStartHeader] = start == StartKind.Cold ? "true" : "false";
        response.Headers[StartHeader] = start.Value();
        // How long the request was held before the gateway first sent it to a pod (the wake-up, on a cold start).
        response.Headers[RoutedAfterHeader] = (invocation.RoutedAfterMs ?? 0).ToString("F1", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The seam around forwarding: acquires a pod (holding the request while none has room, up to
    /// startupTimeout) and forwards the request once. An answer is copied to the client as it streams (a WebSocket
    /// until it closes) unless it is a failure about to be retried; either way the attempt returns when it is over.
    /// The attempt's <c>timeout</c> starts at dispatch and bounds all of it. Retries wrap this; they never reach inside it.
    /// </summary>
    private async ValueTask<Attempt> SendOnceAsync(Invocation invocation, CancellationToken ct)
    {
        var (pod, held) = await AcquireAsync(invocation, ct).ConfigureAwait(false);
        if (pod is null)
        {
            throw new HeldTooLongException();
        }

        invocation.Dispatched(pod, held, _time.GetElapsedTime(invocation.ArrivedTimestamp).TotalMilliseconds);
        var context = invocation.Context;
        var limit = DurationString.Parse(invocation.Function.Spec.Timeout);
        using var timeout = new CancellationTokenSource(limit, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        var transformer = new InvocationTransformer(invocation.Prefix, invocation.WillRetry, response => Stamp(response, invocation),
            invocation.Function.Spec.PassCallerCredentials);
        ForwarderError error;
        try
        {
            // A failed attempt before this one left its status and error on the response; none of it went out.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Features.Set<IForwarderErrorFeature>(null);
            invocation.Body.Attach(context.Request);
            error = await _forwarder.SendAsync(context, pod.Uri.GetLeftPart(UriPartial.Authority), _http, invocation.Config(limit), transformer, linked.Token)
                .ConfigureAwait(false);
        }
        catch
        {
            invocation.Route.Release(pod);
            throw;
        }

        if (transformer.Declined || error == ForwarderError.None || context.Response.HasStarted
            || error is ForwarderError.RequestBodyClient or ForwarderError.RequestBodyCanceled && !timeout.IsCancellationRequested)
        {
            // An answer, copied or held back for a retry; or one cut short once its headers were out (the forwarder
            // reset the client's stream); or a client whose body broke (the forwarder answered 400).
            invocation.Failed(pod, transformer.Failure);
            return new Attempt(invocation.Route, pod, transformer.Failure, transformer.Declined, transformer.Status);
        }

        invocation.Route.Release(pod);
        if (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new AttemptTimedOutException();
        }

        ct.ThrowIfCancellationRequested();
        var cause = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        if (error == ForwarderError.RequestTimedOut)
        {
            // SocketsHttpHandler's ConnectTimeout (the forwarder's own activity timeout is longer than the attempt's): the pod was never reached.
            invocation.Failed(pod, AttemptFailure.Refused);
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"connecting to {pod.Name} timed out", cause);
        }

        var failed = cause as HttpRequestException ?? new HttpRequestException(HttpRequestError.Unknown, $"{pod.Name}: {error}", cause);
        invocation.Failed(pod, AttemptOutcome.Classify(failed, null));
        ExceptionDispatchInfo.Throw(failed);
        throw failed; // Unreachable; the compiler does not know Throw never returns.
    }

    /// <summary>
    /// The retry pipeline of a function, built once per spec (cached by generation): <c>spec.retries</c> with
    /// its back-off around the always-on immediate retry of refused attempts.
    /// </summary>
    private ResiliencePipeline<Attempt> PipelineFor(GpuFunction function)
    {
        var key = ObjectKey.Of(function);
        var generation = function.Metadata.Generation ?? 0;
        var policy = function.Spec.Retries;
        if (_pipelines.TryGetValue(key, out var cached) && cached.Generation == generation && cached.Policy == policy)
        {
            return cached.Pipeline;
        }

        var builder = new ResiliencePipelineBuilder<Attempt> { TimeProvider = _time };
        if (policy is { MaxRetries: > 0 })
        {
            builder.AddRetry(new RetryStrategyOptions<Attempt>
            {
                Name = "spec.retries",
                MaxRetryAttempts = policy.MaxRetries,
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(AttemptOutcome.Delay(policy, args.AttemptNumber)),
                ShouldHandle = args => ValueTask.FromResult(Failure(args.Outcome) is AttemptFailure.Refused or AttemptFailure.Connection or AttemptFailure.ServerError
                    && Retryable(args.Context, args.Outcome)),
                OnRetry = args =>
                {
                    Of(args.Context).RetriedBySpec();
                    return OnRetryAsync(args.Context, args.Outcome);
                },
            });
        }

        if (_options.ConnectRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<Attempt>
            {
                Name = "refused",
                MaxRetryAttempts = _options.ConnectRetries,
                Delay = TimeSpan.Zero,
                BackoffType = DelayBackoffType.Constant,
                ShouldHandle = args => ValueTask.FromResult(Failure(args.Outcome) == AttemptFailure.Refused && Retryable(args.Context, args.Outcome)),
                OnRetry = args =>
                {
                    Of(args.Context).RetriedRefused();
                    return OnRetryAsync(args.Context, args.Outcome);
                },
            });
        }

        var pipeline = builder.Build();
        _pipelines[key] = new CachedPipeline(generation, policy, pipeline);
        return pipeline;
    }

    private static Invocation Of(ResilienceContext context) => context.Properties.GetValue(InvocationKey, null!);

    /// <summary>
    /// An answer is retried only when the transformer held it back (it asked <see cref="Invocation.WillRetry"/>,
    /// which counts as these strategies do); a failure with no answer, while the body can be sent again.
    /// </summary>
    private static bool Retryable(ResilienceContext context, Outcome<Attempt> outcome) =>
        Of(context).Body.CanResend && (outcome.Result is not { } attempt || attempt.Declined);

    private static AttemptFailure Failure(Outcome<Attempt> outcome) =>
        outcome.Exception is { } ex ? AttemptOutcome.Classify(ex, null) : outcome.Result?.Failure ?? AttemptFailure.None;

    private ValueTask OnRetryAsync(ResilienceContext context, Outcome<Attempt> outcome)
    {
        // Frees the failed pod's slot before the back-off.
        outcome.Result?.Dispose();
        var invocation = Of(context);
        _metrics.Retries.WithLabels(invocation.Route.Key.Namespace ?? "", invocation.Route.Key.Name, AttemptOutcome.Label(Failure(outcome))).Inc();
        return ValueTask.CompletedTask;
    }

    /// <summary>Counts a failure answered as it is although the function asked for retries, by why.</summary>
    private void CountGiveUp(Invocation invocation, AttemptFailure failure)
    {
        if (invocation.Function.Spec.Retries is not { MaxRetries: > 0 } || failure == AttemptFailure.None)
        {
            return;
        }

        var reason = failure == AttemptFailure.ServerErrorNoRetry ? "no_retry_header"
            : !invocation.Body.CanResend ? "body_not_replayable"
            : "exhausted";
        _metrics.RetriesGivenUp.WithLabels(invocation.Route.Key.Namespace ?? "", invocation.Route.Key.Name, reason).Inc();
    }

    /// <summary>
    /// Waits for a pod with room, preferring pods this request has not failed on; the pod is null when the
    /// function's startupTimeout passes first. When no serving pod has room, a ready warm pod of the function
    /// takes the request at once, from the gateway's cache alone (see <see cref="FunctionRoute"/>): the operator
    /// claims it after, never before, routing. <c>held</c> says whether the request had to wait, or went to a
    /// standby: either way its pod may not have been serving when it arrived, which is what the start header
    /// tells apart. Held requests are handed pods in arrival order by the route (see <see cref="FunctionRoute.TryHold"/>).
    /// </summary>
    private async Task<(PodEndpoint? Pod, bool Held)> AcquireAsync(Invocation invocation, CancellationToken ct)
    {
        var route = invocation.Route;
        var function = invocation.Function;
        var maxConcurrency = Math.Max(1, function.Spec.Scaling.MaxConcurrency);
        var labels = (route.Key.Namespace ?? "", route.Key.Name);
        var owner = _options.WarmRouting ? function.Metadata.Uid : null;
        if (route.TryAcquire(maxConcurrency, invocation.Excluded, owner) is { } now)
        {
            if (now.Warm)
            {
                _metrics.WarmRoutes.WithLabels(labels.Item1, labels.Item2).Inc();
            }

            return (now, now.Warm);
        }

        if (route.TryHold(_options.QueueLimit, maxConcurrency, invocation.Excluded, invocation.ArrivedTimestamp, owner) is not { } held)
        {
            throw new QueueFullException();
        }

        _metrics.Held.WithLabels(labels.Item1, labels.Item2).Inc();
        var waited = _time.GetTimestamp();
        try
        {
            if (route.Ready.Count == 0)
            {
                Wake(function, route);
            }

            Probe(route);

            // startupTimeout alone bounds the hold: the attempt's timeout starts only at dispatch.
            using var startup = new CancellationTokenSource(DurationString.Parse(function.Spec.StartupTimeout), _time);
            using var holding = CancellationTokenSource.CreateLinkedTokenSource(ct, startup.Token);
            using (holding.Token.Register(static h => ((FunctionRoute.HeldRequest)h!).Cancel(), held))
            {
                try
                {
                    // Handed over by the route, slot taken; a pod handed over just as the hold ends is still used.
                    var pod = await held.Pod.ConfigureAwait(false);
                    if (pod.Warm)
                    {
                        _metrics.WarmRoutes.WithLabels(labels.Item1, labels.Item2).Inc();
                    }

                    return (pod, true);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    return (null, true);
                }
            }
        }
        finally
        {
            _metrics.Held.WithLabels(labels.Item1, labels.Item2).Dec();
            if (invocation.Cold)
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
    /// Tells the autoscaler at once that requests wait for a function with no ready pod, and how many (those
    /// in flight here: with no ready pod, each is held or about to be), through the <see cref="SignalBoard"/> the operator reads;
    /// <see cref="WakeStamps"/> says when a stamp goes out. Not while a warm pod of the function has room: the
    /// request goes there with no API write on its way, and the stamp follows once it was served
    /// (<see cref="FunctionRoutes.WarmServed"/>).
    /// </summary>
    private void Wake(GpuFunction function, FunctionRoute route)
    {
        if (_options.WarmRouting && route.WouldRouteWarm(function.Spec.Scaling.MaxConcurrency, function.Metadata.Uid))
        {
            return;
        }

        _wakes.Wake(function, () => route.InFlight);
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

    private sealed class AttemptTimedOutException : Exception;

    private sealed record CachedPipeline(long Generation, RetryPolicy? Policy, ResiliencePipeline<Attempt> Pipeline);

    /// <summary>One request on its way through the gateway: what retries and the start header need to know.</summary>
    private sealed class Invocation(HttpContext context, GpuFunction function, FunctionRoute route, string? rest, bool hostRouted, RequestBody body,
        DateTimeOffset arrived, long arrivedTimestamp, IReadOnlyList<PodEndpoint> servingAtArrival, int connectRetries)
    {
        private static readonly TimeSpan IdleMargin = TimeSpan.FromSeconds(30);

        private readonly HashSet<string> _refused = [];
        private readonly HashSet<string> _failed = [];
        private string? _lastFailed;
        private bool _held;
        private int _specRetries;
        private int _refusedRetries;

        public HttpContext Context { get; } = context;

        public GpuFunction Function { get; } = function;

        public FunctionRoute Route { get; } = route;

        public string? Rest { get; } = rest;

        public RequestBody Body { get; } = body;

        public long ArrivedTimestamp { get; } = arrivedTimestamp;

        /// <summary>No pod served the function when the request arrived: it wakes the function.</summary>
        public bool Cold { get; } = servingAtArrival.Count == 0;

        public double? RoutedAfterMs { get; private set; }

        /// <summary>How the pod of the latest attempt came to serve it.</summary>
        public StartKind? Start { get; private set; }

        public void Dispatched(PodEndpoint pod, bool held, double afterMs)
        {
            RoutedAfterMs ??= afterMs;
            _held |= held;
            var serving = !_held || servingAtArrival.Any(p => p.Name == pod.Name);
            Start = StartKinds.Classify(serving, arrived, pod.Created, pod.ReadySince);
        }

        public void Failed(PodEndpoint pod, AttemptFailure failure)
        {
            switch (failure)
            {
                case AttemptFailure.None:
                    return;
                case AttemptFailure.Refused:
                    _refused.Add(pod.Name);
                    return;
                default:
                    _failed.Add(pod.Name);
                    _lastFailed = pod.Name;
                    return;
            }
        }

        /// <summary>The path prefix the pod does not see, <c>/{namespace}/{function}</c>; none when routed by host.</summary>
        public PathString Prefix { get; } = hostRouted ? PathString.Empty : new($"/{route.Key.Namespace}/{route.Key.Name}");

        /// <summary>
        /// Whether the retry pipeline will retry an attempt that failed so: the inner strategy retries a refusal
        /// up to the gateway's connect retries (counted afresh for each outer attempt), the outer one any
        /// retryable failure up to spec.retries; neither once the body cannot be sent again.
        /// </summary>
        public bool WillRetry(AttemptFailure failure)
        {
            if (!Body.CanResend)
            {
                return false;
            }

            var specLeft = Function.Spec.Retries is { MaxRetries: > 0 } policy && _specRetries < policy.MaxRetries;
            return failure switch
            {
                AttemptFailure.Refused => _refusedRetries < connectRetries || specLeft,
                AttemptFailure.Connection or AttemptFailure.ServerError => specLeft,
                _ => false,
            };
        }

        /// <summary>spec.retries sent the request again; the inner strategy starts counting afresh.</summary>
        public void RetriedBySpec()
        {
            _specRetries++;
            _refusedRetries = 0;
        }

        /// <summary>The inner strategy sent a refused request again.</summary>
        public void RetriedRefused() => _refusedRetries++;

        /// <summary>
        /// How the forwarder talks to the pod: HTTP/2 with prior knowledge when the client spoke HTTP/2 (gRPC needs
        /// it end to end; the shim accepts h2c on its port), else HTTP/1.1 (WebSocket upgrades need it). The
        /// forwarder's idle timeout stays past the attempt's own, which is what bounds an attempt.
        /// </summary>
        public ForwarderRequestConfig Config(TimeSpan attemptTimeout) => HttpProtocol.IsHttp2(Context.Request.Protocol)
            ? new ForwarderRequestConfig { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, ActivityTimeout = attemptTimeout + IdleMargin }
            : new ForwarderRequestConfig { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower, ActivityTimeout = attemptTimeout + IdleMargin };

        /// <summary>Pods not to try next (see <see cref="AttemptOutcome.Excluded"/>).</summary>
        public IReadOnlySet<string> Excluded(IReadOnlyList<PodEndpoint> ready) => AttemptOutcome.Excluded(_refused, _failed, _lastFailed, ready);
    }
}
