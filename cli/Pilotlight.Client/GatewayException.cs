using System.Net;
using System.Text.Json;

namespace Pilotlight.Client;

/// <summary>The gateway (or the operator's usage API) refused or failed a call: its status, its reason, what to do.</summary>
public sealed class GatewayException(int status, string reason, string hint, TimeSpan? retryAfter = null)
    : PilotlightClientException($"Gateway answered {status} {ReasonPhrase(status)}: {reason}", hint)
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = status;

    /// <summary>The gateway's own words (its response body), or the status's phrase when it sent none.</summary>
    public string Reason { get; } = reason;

    /// <summary>From <c>Retry-After</c>, when the gateway sent one.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>
    /// The exception for an answer: <paramref name="body"/> is the gateway's text or its <c>{"error": "..."}</c>;
    /// <paramref name="target"/> names what was called (e.g. <c>function team-a/llm</c>) for the hint.
    /// </summary>
    public static GatewayException From(int status, string? body, TimeSpan? retryAfter, string target)
    {
        var reason = ReasonOf(body) is { Length: > 0 } r ? r : ReasonPhrase(status);
        var hint = status switch
        {
            401 => "Your token was not accepted. Pass --token (or PILOTLIGHT_TOKEN) with a token for audience 'pilotlight' "
                + "(kubectl create token NAME --audience pilotlight), or --as NAMESPACE/SERVICEACCOUNT to mint one.",
            403 => $"You are authenticated but not allowed to call {target}. Ask an admin for a RoleBinding granting it "
                + "(e.g. the pilotlight-invoker or pilotlight-sandbox-user ClusterRole), or use --as with a ServiceAccount that has one.",
            404 => $"The gateway knows no {target}. Check the name and namespace (pilotlight get functions -n NAMESPACE).",
            409 => $"The {target} is not ready yet; wait a moment and try again.",
            410 => $"The {target} has finished; create a new one.",
            413 => "The request body is too large for the gateway; send less.",
            429 => $"Too many requests; retry after {Seconds(retryAfter ?? TimeSpan.FromSeconds(1))}.",
            503 => $"The gateway cannot serve {target} now (no capacity, or at its queue limit); retry after {Seconds(retryAfter ?? TimeSpan.FromSeconds(1))}.",
            504 => $"The {target} did not answer in time (a cold start longer than the gateway's hold time, or a slow request). "
                + "Retry, or check its pods with pilotlight describe.",
            502 => $"The gateway could not reach {target}'s pod. Check its pods with pilotlight describe.",
            _ => "Check the gateway's logs.",
        };
        return new GatewayException(status, reason, hint, retryAfter);
    }

    /// <summary>Reads Retry-After (seconds or a date) from a response.</summary>
    public static TimeSpan? RetryAfterOf(HttpResponseMessage response) =>
        response.Headers.RetryAfter switch
        {
            { Delta: { } d } => d,
            { Date: { } at } => at - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero,
            _ => null,
        };

    /// <summary>The exception for a failed response, its body read (up to 4 KiB).</summary>
    public static async Task<GatewayException> FromResponseAsync(HttpResponseMessage response, string target, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        return From((int)response.StatusCode, body.Length > 4096 ? body[..4096] : body, RetryAfterOf(response), target);
    }

    private static string Seconds(TimeSpan t) => $"{Math.Max(1, (int)Math.Ceiling(t.TotalSeconds))} s";

    private static string? ReasonOf(string? body)
    {
        var text = body?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        if (text.StartsWith('{'))
        {
            try
            {
                using var doc = JsonDocument.Parse(text);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String)
                {
                    return e.GetString();
                }
            }
            catch (JsonException)
            {
                // Not JSON after all: the text itself is the reason.
            }
        }

        return text;
    }

    private static string ReasonPhrase(int status) => status switch
    {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => ((HttpStatusCode)status).ToString(),
    };
}
