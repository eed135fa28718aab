using System.Threading.RateLimiting;

namespace Pilotlight.Operator;

/// <summary>
/// A client-side limit on API requests, as client-go's QPS/burst: every request waits for a token
/// of a token bucket (<c>burst</c> at once, refilled at <c>qps</c>), except watches (<c>watch=true</c>),
/// which are long-running and would otherwise hold tokens for their whole life. Pass it to
/// <c>new Kubernetes(config, handler)</c>.
/// </summary>
public sealed class ApiRateLimitHandler : DelegatingHandler
{
    private readonly RateLimiter _limiter;

    /// <summary>A limit of <paramref name="qps"/> requests per second with bursts of <paramref name="burst"/>.</summary>
    public ApiRateLimitHandler(double qps, int burst)
        : this(CreateLimiter(qps, burst))
    {
    }

    /// <summary>A handler over any limiter (tests).</summary>
    internal ApiRateLimitHandler(RateLimiter limiter) => _limiter = limiter;

    /// <summary>The token bucket for <paramref name="qps"/> (positive) and <paramref name="burst"/> (at least 1).</summary>
    public static TokenBucketRateLimiter CreateLimiter(double qps, int burst)
    {
        if (!(qps > 0) || double.IsInfinity(qps))
        {
            throw new ArgumentOutOfRangeException(nameof(qps), qps, "qps must be a positive number");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);

        // Refill in steps of about 100 ms (at least one token), rather than a timer per token.
        var tokens = Math.Max(1, (int)Math.Round(qps / 10));
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = TimeSpan.FromSeconds(tokens / qps),
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    /// <summary>Whether <paramref name="uri"/> is a watch (query <c>watch=true</c> or <c>watch=1</c>).</summary>
    public static bool IsWatch(Uri? uri)
    {
        var query = uri?.IsAbsoluteUri == true ? uri.Query : uri?.OriginalString.Split('?', 2) is [_, var q] ? q : "";
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            if (pair.Equals("watch=true", StringComparison.OrdinalIgnoreCase) || pair == "watch=1")
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc />
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!IsWatch(request.RequestUri))
        {
            using var lease = await _limiter.AcquireAsync(1, cancellationToken).ConfigureAwait(false);
            if (!lease.IsAcquired)
            {
                throw new HttpRequestException("The client-side API rate limiter refused the request");
            }
        }

        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _limiter.Dispose();
        }

        base.Dispose(disposing);
    }
}
