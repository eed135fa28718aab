using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Gateway;

/// <summary>What went wrong with one attempt to send a request to a pod, as far as retrying goes.</summary>
public enum AttemptFailure
{
    /// <summary>Nothing a retry could fix: an answer (2xx-4xx), a timeout, the client gone.</summary>
    None,

    /// <summary>
    /// The pod refused the request before the user's server saw it: the connection was refused, or the shim
    /// answered 503 with <c>X-Pilotlight-Refused</c> (draining, busy). Always safe to send elsewhere.
    /// </summary>
    Refused,

    /// <summary>The connection failed or was reset after the request went out and before any response came.</summary>
    Connection,

    /// <summary>A 5xx from the user's server.</summary>
    ServerError,

    /// <summary>A 5xx whose response asks not to be retried (<see cref="AttemptOutcome.NoRetryHeader"/>: true).</summary>
    ServerErrorNoRetry,
}

/// <summary>The retry rules of the gateway, as pure functions.</summary>
public static class AttemptOutcome
{
    /// <summary>A 5xx carrying this header with the value <c>true</c> is answered as it is, never retried.</summary>
    public const string NoRetryHeader = "X-Pilotlight-No-Retry";

    /// <summary>Classifies the outcome of one attempt: an exception thrown by the send, or the response whose headers came back.</summary>
    public static AttemptFailure Classify(Exception? exception, HttpResponseMessage? response)
    {
        if (exception is not null)
        {
            return exception switch
            {
                // Connecting failed: not one byte of the request reached the pod.
                HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } or HttpRequestException { InnerException: SocketException }
                    => AttemptFailure.Refused,
                HttpRequestException => AttemptFailure.Connection,
                _ => AttemptFailure.None,
            };
        }

        if (response is null || (int)response.StatusCode < 500)
        {
            return AttemptFailure.None;
        }

        if (response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.Contains(InvocationProxy.RefusedHeader))
        {
            return AttemptFailure.Refused;
        }

        return SaysNoRetry(response.Headers) ? AttemptFailure.ServerErrorNoRetry : AttemptFailure.ServerError;
    }

    /// <summary>The metric label of a failure that was retried (bounded: refused, connection, server_error).</summary>
    public static string Label(AttemptFailure failure) => failure switch
    {
        AttemptFailure.Refused => "refused",
        AttemptFailure.Connection => "connection",
        _ => "server_error",
    };

    /// <summary>
    /// The delay before retry number <paramref name="retry"/> (0 for the first): <c>initialDelay</c> times
    /// <c>backoffCoefficient</c> to the power <paramref name="retry"/>, never more than <c>maxDelay</c>.
    /// </summary>
    public static TimeSpan Delay(RetryPolicy policy, int retry)
    {
        var initial = DurationString.TryParse(policy.InitialDelay, out var i) ? i : TimeSpan.FromSeconds(1);
        var max = DurationString.TryParse(policy.MaxDelay, out var m) ? m : TimeSpan.FromSeconds(60);
        var coefficient = Math.Max(1.0, policy.BackoffCoefficient);
        var seconds = initial.TotalSeconds * Math.Pow(coefficient, Math.Max(0, retry));
        return double.IsFinite(seconds) && seconds < max.TotalSeconds ? TimeSpan.FromSeconds(seconds) : max;
    }

    /// <summary>
    /// Pods the next attempt must not go to: those that refused the request (never again for it); those it
    /// failed on while another serving pod is left, else the one it failed on last while there is another,
    /// else none (the only pod again).
    /// </summary>
    internal static IReadOnlySet<string> Excluded(IReadOnlySet<string> refused, IReadOnlySet<string> failed, string? lastFailed,
        IReadOnlyList<PodEndpoint> ready)
    {
        if (failed.Count == 0)
        {
            return refused;
        }

        var excluded = new HashSet<string>(refused);
        if (ready.Any(p => !excluded.Contains(p.Name) && !failed.Contains(p.Name)))
        {
            excluded.UnionWith(failed);
        }
        else if (lastFailed is not null && ready.Any(p => !excluded.Contains(p.Name) && p.Name != lastFailed))
        {
            excluded.Add(lastFailed);
        }

        return excluded;
    }

    private static bool SaysNoRetry(HttpResponseHeaders headers) =>
        headers.TryGetValues(NoRetryHeader, out var values) && values.Any(v => v.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));
}
