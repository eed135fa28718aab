using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Prometheus;

namespace Pilotlight.Gateway;

/// <summary>How the gateway decides who may invoke a function.</summary>
public sealed record InvocationAccessOptions
{
    /// <summary>
    /// The audience a caller's token must be issued for (<c>--token-audience</c>): a token minted for the gateway
    /// (<c>kubectl create token SA --audience pilotlight</c>, or a projected ServiceAccount token), never an API-server
    /// token a caller would otherwise have to hand around.
    /// </summary>
    public string Audience { get; init; } = "pilotlight";

    /// <summary>Whether a function's <c>spec.access: Public</c> is honoured (<c>--allow-public-functions</c>); when false such functions are private.</summary>
    public bool AllowPublic { get; init; } = true;

    /// <summary>How long an allow or deny decision is kept for the same token and function.</summary>
    public TimeSpan CacheFor { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Most decisions kept (one per token and function); the oldest go first.</summary>
    public int CacheSize { get; init; } = 10_000;

    /// <summary>Failed authentications allowed per client address per minute before it gets 429 without the API server being asked.</summary>
    public int FailuresPerMinute { get; init; } = 30;

    /// <summary>
    /// The ConfigMap the operator publishes invoke-key verifiers in (<c>--invoke-keys-configmap NAMESPACE/NAME</c>); null:
    /// invoke keys are refused.
    /// </summary>
    public Pilotlight.ControllerRuntime.ObjectKey? InvokeKeysConfigMap { get; init; }
}

/// <summary>
/// Admits an invocation or answers it: a public function (where the platform allows them) admits anyone; a private
/// one needs a bearer token the API server accepts for <see cref="InvocationAccessOptions.Audience"/> (TokenReview)
/// from a user who may <c>create</c> <c>gpufunctions/invoke</c> on that function (SubjectAccessReview). Answers 401
/// (no or bad token, also for functions that do not exist, so names cannot be probed), 403 (not allowed), 429 (too
/// many failed tokens from one address), 404 (allowed, but no such function) and 503 (the API server could not be
/// asked). An admitted caller is named on the request (<see cref="InvocationCaller"/>) for the per-client limits; the
/// forwarder removes the token before the function (unless the function asked for the caller's credentials).
/// Decisions are cached by a hash of the token, never the token itself, which is never logged. An invoke key
/// (<c>plk_...</c>, see <see cref="Keys"/>) is checked against the operator's published verifiers instead and never
/// sent to the API server.
/// </summary>
public sealed class InvocationAccess : IDisposable
{
    private readonly IKubernetes _client;
    private readonly InvocationAccessOptions _options;
    private readonly ILogger _logger;
    private readonly MemoryCache _decisions;
    private readonly PartitionedRateLimiter<string> _failures;
    private readonly Counter _results;

    /// <summary>Access checks through <paramref name="client"/>, the gateway's own identity.</summary>
    public InvocationAccess(IKubernetes client, InvocationAccessOptions options, ILogger logger, CollectorRegistry? registry = null)
    {
        _client = client;
        _options = options;
        _logger = logger;
        _decisions = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.CacheSize });
        var perMinute = options.FailuresPerMinute;
        _failures = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetFixedWindowLimiter(address, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = true,
        }));
        _results = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry).CreateCounter("pilotlight_gateway_access_total",
            "Invocation access decisions: public, allowed, key (an invoke key), unauthenticated, forbidden, rate_limited, unavailable.", "result");
    }

    /// <summary>
    /// Invoke keys (<c>Authorization: Bearer plk_...</c>) checked against the operator's published verifiers instead
    /// of TokenReview and SubjectAccessReview; null: such keys are refused.
    /// </summary>
    public PublishedInvokeKeys? Keys { get; init; }

    /// <summary>
    /// True when the request may go on to <paramref name="function"/> (null when there is none of that name); otherwise
    /// the answer has been written.
    /// </summary>
    public async Task<bool> AdmitAsync(HttpContext context, GpuFunction? function, string ns, string name)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (function?.Spec.Access == FunctionAccess.Public && _options.AllowPublic)
        {
            _results.WithLabels("public").Inc();
            return true;
        }

        var address = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            return await DenyAsync(context, "unauthenticated", StatusCodes.Status401Unauthorized,
                $"a bearer token for audience '{_options.Audience}' is required (kubectl create token NAME --audience {_options.Audience})").ConfigureAwait(false);
        }

        var token = header[7..].Trim();
        if (Contracts.InvokeKeys.LooksLikeKey(token))
        {
            // An invoke key never goes to the API server as a token.
            return await AdmitKeyAsync(context, function, ns, name, token, address).ConfigureAwait(false);
        }

        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{token}\n{ns}\n{name}")));
        if (!_decisions.TryGetValue(key, out (int Status, string Detail, string Caller) decision))
        {
            if (OverFailureBudget(address))
            {
                // Refused without asking the API server.
                return await RateLimitedAsync(context).ConfigureAwait(false);
            }

            try
            {
                decision = await ReviewAsync(token, ns, name, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpOperationException or HttpRequestException)
            {
                _logger.LogWarning("Invocation access could not be checked: {Message}", ex is HttpOperationException h ? $"HTTP {(int)h.Response.StatusCode}" : ex.Message);
                return await DenyAsync(context, "unavailable", StatusCodes.Status503ServiceUnavailable, "access could not be checked; try again").ConfigureAwait(false);
            }

            _decisions.Set(key, decision, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _options.CacheFor });
        }

        if (decision.Status == StatusCodes.Status401Unauthorized)
        {
            // Counts against the address's budget (a cached failure too: a client repeating a bad token).
            using var spent = _failures.AttemptAcquire(address, 1);
            return await DenyAsync(context, "unauthenticated", decision.Status, decision.Detail).ConfigureAwait(false);
        }

        if (decision.Status != StatusCodes.Status200OK)
        {
            return await DenyAsync(context, "forbidden", decision.Status, decision.Detail).ConfigureAwait(false);
        }

        _results.WithLabels("allowed").Inc();
        if (function is null)
        {
            await WriteAsync(context, StatusCodes.Status404NotFound, $"no GpuFunction {ns}/{name}").ConfigureAwait(false);
            return false;
        }

        context.Features.Set(new InvocationCaller(decision.Caller));
        return true;
    }

    /// <summary>
    /// True when the request may read the gateway's internal endpoints (demand, signals): its bearer token is accepted
    /// for the audience (TokenReview) and names one of <paramref name="callers"/> (the operator's ServiceAccount);
    /// otherwise 401 or 403 has been written. Decisions are cached like invocations', by a hash of the token.
    /// </summary>
    public async Task<bool> AdmitInternalAsync(HttpContext context, IReadOnlyCollection<string> callers)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(callers);
        var address = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            return await DenyAsync(context, "unauthenticated", StatusCodes.Status401Unauthorized, "internal endpoints need the operator's bearer token").ConfigureAwait(false);
        }

        var token = header[7..].Trim();
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{token}\ninternal")));
        if (!_decisions.TryGetValue(key, out string? user))
        {
            if (OverFailureBudget(address))
            {
                return await RateLimitedAsync(context).ConfigureAwait(false);
            }

            try
            {
                var review = await _client.AuthenticationV1.CreateTokenReviewAsync(new V1TokenReview
                {
                    Spec = new V1TokenReviewSpec { Token = token, Audiences = [_options.Audience] },
                }, cancellationToken: context.RequestAborted).ConfigureAwait(false);
                user = review.Status?.Authenticated == true && review.Status.Audiences?.Contains(_options.Audience) == true
                    ? review.Status.User?.Username ?? "" : "";
            }
            catch (Exception ex) when (ex is HttpOperationException or HttpRequestException)
            {
                _logger.LogWarning("Internal access could not be checked: {Message}", ex is HttpOperationException h ? $"HTTP {(int)h.Response.StatusCode}" : ex.Message);
                return await DenyAsync(context, "unavailable", StatusCodes.Status503ServiceUnavailable, "access could not be checked; try again").ConfigureAwait(false);
            }

            _decisions.Set(key, user, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _options.CacheFor });
        }

        if (string.IsNullOrEmpty(user))
        {
            using var spent = _failures.AttemptAcquire(address, 1);
            return await DenyAsync(context, "unauthenticated", StatusCodes.Status401Unauthorized,
                $"the bearer token was not accepted for audience '{_options.Audience}'").ConfigureAwait(false);
        }

        if (!callers.Contains(user))
        {
            return await DenyAsync(context, "forbidden", StatusCodes.Status403Forbidden, $"{user} may not read the gateway's internal endpoints").ConfigureAwait(false);
        }

        return true;
    }

    private async Task<bool> AdmitKeyAsync(HttpContext context, GpuFunction? function, string ns, string name, string key, string address)
    {
        if (OverFailureBudget(address))
        {
            return await RateLimitedAsync(context).ConfigureAwait(false);
        }

        if (Keys is { HasSynced: false })
        {
            context.Response.Headers.RetryAfter = "1";
            return await DenyAsync(context, "unavailable", StatusCodes.Status503ServiceUnavailable, "invoke keys are not loaded yet; try again").ConfigureAwait(false);
        }

        // Wrong, revoked, of another namespace or for another function: one answer, so a key tells nothing about
        // which names exist, and each counts against the address's failure budget.
        if (Keys?.Current.Opens(ns, name, key) is not { } secret)
        {
            using var spent = _failures.AttemptAcquire(address, 1);
            return await DenyAsync(context, "unauthenticated", StatusCodes.Status401Unauthorized,
                $"the invoke key was not accepted for {ns}/{name}").ConfigureAwait(false);
        }

        _results.WithLabels("key").Inc();
        if (function is null)
        {
            await WriteAsync(context, StatusCodes.Status404NotFound, $"no GpuFunction {ns}/{name}").ConfigureAwait(false);
            return false;
        }

        // Named by its Secret for the per-client limits; the forwarder removes the key like a token.
        context.Features.Set(new InvocationCaller($"invoke-key:{ns}/{secret}"));
        return true;
    }

    private async Task<(int Status, string Detail, string Caller)> ReviewAsync(string token, string ns, string name, CancellationToken ct)
    {
        var review = await _client.AuthenticationV1.CreateTokenReviewAsync(new V1TokenReview
        {
            Spec = new V1TokenReviewSpec { Token = token, Audiences = [_options.Audience] },
        }, cancellationToken: ct).ConfigureAwait(false);
        if (review.Status?.Authenticated != true || review.Status.User is not { } user || review.Status.Audiences?.Contains(_options.Audience) != true)
        {
            return (StatusCodes.Status401Unauthorized, $"the bearer token was not accepted for audience '{_options.Audience}'", "");
        }

        var allowed = await Pilotlight.ControllerRuntime.AccessReviews.AllowsAsync(_client, user, new V1ResourceAttributes
        {
            Group = Group.Name, Resource = "gpufunctions", Subresource = "invoke", Verb = "create", NamespaceProperty = ns, Name = name,
        }, ct).ConfigureAwait(false);
        return allowed
            ? (StatusCodes.Status200OK, "", user.Username)
            : (StatusCodes.Status403Forbidden, $"{user.Username} may not invoke {ns}/{name} (create gpufunctions/invoke)", user.Username);
    }

    /// <summary>True when <paramref name="address"/> has used up its failed-authentication budget (nothing is taken from it).</summary>
    private bool OverFailureBudget(string address)
    {
        using var lease = _failures.AttemptAcquire(address, 0);
        return !lease.IsAcquired;
    }

    private Task<bool> RateLimitedAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "60";
        return DenyAsync(context, "rate_limited", StatusCodes.Status429TooManyRequests, "too many requests with tokens that were not accepted; try again later");
    }

    private async Task<bool> DenyAsync(HttpContext context, string result, int status, string detail)
    {
        _results.WithLabels(result).Inc();
        if (status == StatusCodes.Status401Unauthorized)
        {
            context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"pilotlight\"";
        }

        await WriteAsync(context, status, detail).ConfigureAwait(false);
        return false;
    }

    private static async Task WriteAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(message + "\n").ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _decisions.Dispose();
        _failures.Dispose();
    }
}
