using System.Threading.RateLimiting;

namespace Pilotlight.Operator;

/// <summary>
/// A client-side limit on API requests, as client-go's QPS/burst: every request waits for a token
/// of a token bucket (<c>burst</c> at once, refilled at <c>qps</c>), except watches (<c>watch=true</c>),
/// which are long-running and would otherwise hold tokens for their whole life. Pass it to
/// <c>new Kubernetes(config, handler)</c>.
/// </summary>
/// <remarks>
/// With <c>liftUnderFairness</c> (<c>--kube-api-qps auto</c>, the default) the limit holds only until an answer of
/// the API server shows that it does API Priority and Fairness (the <c>X-Kubernetes-PF-FlowSchema-UID</c> header,
/// on by default since Kubernetes 1.20): the server then queues and shares requests among clients itself, and a
/// client-side limit only makes the operator slower than the server could serve it (10,000 new functions need about
/// 15,000 writes: 150 s at 100 a second). SIG API Machinery recommends relying on it, and controller-runtime stopped
/// limiting by default for that reason.
/// </remarks>
public sealed class ApiRateLimitHandler : DelegatingHandler
{
    /// <summary>The response header an API server doing Priority and Fairness puts on every answer it classified.</summary>
    public const string FlowSchemaHeader = "X-Kubernetes-PF-FlowSchema-UID";

    private readonly RateLimiter _limiter;
    private readonly bool _liftUnderFairness;
    private readonly Action? _lifted;
    private int _off;

    /// <summary>
    /// A limit of <paramref name="qps"/> requests per second with bursts of <paramref name="burst"/>; with
    /// <paramref name="liftUnderFairness"/>, lifted for good at the first answer that shows the API server's Priority
    /// and Fairness (then <paramref name="lifted"/> is called once).
    /// </summary>
    public ApiRateLimitHandler(double qps, int burst, bool liftUnderFairness = false, Action? lifted = null)
        : this(CreateLimiter(qps, burst), liftUnderFairness, lifted)
    {
    }

    /// <summary>A handler over any limiter (tests).</summary>
    internal ApiRateLimitHandler(RateLimiter limiter, bool liftUnderFairness = false, Action? lifted = null)
    {
        _limiter = limiter;
        _liftUnderFairness = liftUnderFairness;
        _lifted = lifted;
    }

    /// <summary>True once the limit was lifted because the API server does Priority and Fairness.</summary>
    public bool Lifted => Volatile.Read(ref _off) != 0;

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
        if (!Lifted && !IsWatch(request.RequestUri))
        {
            using var lease = await _limiter.AcquireAsync(1, cancellationToken).ConfigureAwait(false);
            if (!lease.IsAcquired)
            {
                throw new HttpRequestException("The client-side API rate limiter refused the request");
            }
        }

        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        // Once, however many answers arrive together. Requests already queued for a token get theirs at the
        // limiter's pace; new ones no longer wait.
        if (_liftUnderFairness && !Lifted && response.Headers.Contains(FlowSchemaHeader) && Interlocked.Exchange(ref _off, 1) == 0)
        {
            _lifted?.Invoke();
        }

        return response;
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
