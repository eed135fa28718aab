using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Prometheus;

namespace Pilotlight.Gateway;

/// <summary>
/// Per-client limits on invocations. Both are off by default: how many requests a caller may rightly have in
/// flight depends on the functions it calls (a batch job fans out hundreds), and the function's own queue limit
/// and maxReplicas already bound what it costs; a platform that shares its gateway with clients it does not
/// trust sets them.
/// </summary>
public sealed record ClientLimitOptions
{
    /// <summary>Invocations one client may have in flight at once (<c>--client-concurrency</c>); 0: no limit.</summary>
    public int ConcurrentRequests { get; init; }

    /// <summary>Invocations one client may start per second, on average (<c>--client-requests-per-second</c>); 0: no limit.</summary>
    public int RequestsPerSecond { get; init; }

    /// <summary>Invocations one client may start at once above its rate (<c>--client-burst</c>); 0: the rate itself.</summary>
    public int Burst { get; init; }

    /// <summary>
    /// Clients tracked at once. Past this, clients not yet tracked share one partition until idle ones are forgotten,
    /// so a caller cycling through addresses cannot grow the gateway's memory.
    /// </summary>
    public int MaxClients { get; init; } = 10_000;
}

/// <summary>
/// Who an admitted invocation came from, set by <see cref="InvocationAccess"/> for an authenticated caller: the
/// per-client limits count by it, so that callers behind one proxy or ingress address are told apart.
/// </summary>
/// <param name="Name">The caller's Kubernetes user name.</param>
public sealed record InvocationCaller(string Name);

/// <summary>
/// Holds each client to <see cref="ClientLimitOptions"/> with ASP.NET Core's rate limiters (a concurrency limiter and
/// a token bucket per client, partitioned by the authenticated caller, else by the client's address). A refused
/// request is answered 429 with Retry-After; refusals are counted by function and by which limit refused, never by
/// client. Idle partitions are dropped by the limiters themselves; the number of tracked clients is bounded.
/// </summary>
public sealed class ClientLimits : IDisposable
{
    /// <summary>The partition clients share while <see cref="ClientLimitOptions.MaxClients"/> are tracked.</summary>
    internal const string Overflow = "(overflow)";

    /// <summary>A client unseen for this long is forgotten when room is needed (its limiters are idle by then).</summary>
    private static readonly TimeSpan Forget = TimeSpan.FromSeconds(30);

    private readonly ClientLimitOptions _options;
    private readonly TimeProvider _time;
    private readonly PartitionedRateLimiter<string>? _concurrency;
    private readonly PartitionedRateLimiter<string>? _rate;
    private readonly ConcurrentDictionary<string, long> _seen = new(StringComparer.Ordinal);
    private readonly Counter _refused;
    private long _lastSweep;
    private int _tracked;

    /// <summary>Limits per <paramref name="options"/>; metrics in <paramref name="registry"/> (the default one when null).</summary>
    public ClientLimits(ClientLimitOptions options, TimeProvider time, CollectorRegistry? registry = null)
    {
        _options = options;
        _time = time;
        if (options.ConcurrentRequests > 0)
        {
            var permits = options.ConcurrentRequests;
            _concurrency = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.GetConcurrencyLimiter(client,
                _ => new ConcurrencyLimiterOptions { PermitLimit = permits, QueueLimit = 0 }));
        }

        if (options.RequestsPerSecond > 0)
        {
            var rate = options.RequestsPerSecond;
            var burst = options.Burst > 0 ? options.Burst : rate;
            _rate = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.GetTokenBucketLimiter(client,
                _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = burst, TokensPerPeriod = rate, ReplenishmentPeriod = TimeSpan.FromSeconds(1), QueueLimit = 0, AutoReplenishment = true,
                }));
        }

        _refused = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry).CreateCounter("pilotlight_gateway_client_limited_total",
            "Invocations refused with 429 by a per-client limit: concurrency or rate.", "namespace", "function", "limit");
    }

    /// <summary>Whether any limit is set.</summary>
    public bool Enabled => _concurrency is not null || _rate is not null;

    /// <summary>
    /// Admits an invocation of <paramref name="ns"/>/<paramref name="function"/> for the request's client and returns
    /// what it holds until the invocation is over, or answers 429 and returns null.
    /// </summary>
    public async Task<IDisposable?> AdmitAsync(HttpContext context, string ns, string function)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!Enabled)
        {
            return NoLease.Instance;
        }

        var client = Partition(ClientOf(context));
        RateLimitLease? held = null;
        if (_concurrency is not null)
        {
            held = _concurrency.AttemptAcquire(client);
            if (!held.IsAcquired)
            {
                held.Dispose();
                await RefuseAsync(context, ns, function, "concurrency", TimeSpan.FromSeconds(1),
                    $"more than {_options.ConcurrentRequests} requests of this client are in flight").ConfigureAwait(false);
                return null;
            }
        }

        if (_rate is not null)
        {
            using var token = _rate.AttemptAcquire(client);
            if (!token.IsAcquired)
            {
                held?.Dispose();
                var wait = token.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
                await RefuseAsync(context, ns, function, "rate", wait,
                    $"this client started more than {_options.RequestsPerSecond} requests a second").ConfigureAwait(false);
                return null;
            }
        }

        return (IDisposable?)held ?? NoLease.Instance;
    }

    /// <summary>The client a request counts against: its authenticated caller, else its address.</summary>
    internal static string ClientOf(HttpContext context) =>
        context.Features.Get<InvocationCaller>() is { } caller ? $"user:{caller.Name}"
        : $"address:{context.Connection.RemoteIpAddress?.ToString() ?? "unknown"}";

    /// <summary>
    /// The partition of <paramref name="client"/>: its own while fewer than MaxClients are tracked (forgetting those
    /// unseen for a while, at most once a second, when full), else <see cref="Overflow"/>.
    /// </summary>
    internal string Partition(string client)
    {
        var now = _time.GetTimestamp();
        if (_seen.ContainsKey(client))
        {
            _seen[client] = now;
            return client;
        }

        if (Volatile.Read(ref _tracked) >= _options.MaxClients)
        {
            Sweep(now);
        }

        if (Volatile.Read(ref _tracked) < _options.MaxClients && _seen.TryAdd(client, now))
        {
            Interlocked.Increment(ref _tracked);
            return client;
        }

        return _seen.ContainsKey(client) ? client : Overflow;
    }

    /// <summary>Clients tracked now.</summary>
    internal int Tracked => Volatile.Read(ref _tracked);

    /// <summary>Forgets clients unseen for <see cref="Forget"/>, at most once a second (one caller sweeps).</summary>
    private void Sweep(long now)
    {
        var last = Interlocked.Read(ref _lastSweep);
        if (last != 0 && _time.GetElapsedTime(last, now) < TimeSpan.FromSeconds(1) || Interlocked.CompareExchange(ref _lastSweep, now, last) != last)
        {
            return;
        }

        foreach (var (key, seen) in _seen)
        {
            if (_time.GetElapsedTime(seen, now) >= Forget && _seen.TryRemove(new KeyValuePair<string, long>(key, seen)))
            {
                Interlocked.Decrement(ref _tracked);
            }
        }
    }

    private async Task RefuseAsync(HttpContext context, string ns, string function, string limit, TimeSpan retryAfter, string message)
    {
        _refused.WithLabels(ns, function, limit).Inc();
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync($"{message}; try again later\n").ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _concurrency?.Dispose();
        _rate?.Dispose();
    }

    /// <summary>What an admitted invocation holds when no concurrency limit is set.</summary>
    private sealed class NoLease : IDisposable
    {
        public static readonly NoLease Instance = new();

        public void Dispose()
        {
        }
    }
}
