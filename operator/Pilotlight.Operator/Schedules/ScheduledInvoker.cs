using System.Globalization;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Schedules;

/// <summary>How a scheduled request ended: the gateway's status code, or why there was none.</summary>
/// <param name="StatusCode">The HTTP status code, when an answer came.</param>
/// <param name="Error">Why no answer came (connection refused, timed out), when none did.</param>
public sealed record InvocationOutcome(int? StatusCode, string? Error)
{
    /// <summary>True for a 2xx answer.</summary>
    public bool Succeeded => StatusCode is >= 200 and < 300;
}

/// <summary>Sends a function's scheduled request.</summary>
public interface IScheduledInvoker
{
    /// <summary>Sends <c>POST schedule.path</c> for the tick <paramref name="tick"/> and waits for the answer.</summary>
    Task<InvocationOutcome> InvokeAsync(GpuFunction function, DateTimeOffset tick, CancellationToken ct);
}

/// <summary>
/// Sends scheduled requests through the gateway, as any client's request goes:
/// <c>POST {gateway}/{namespace}/{name}{schedule.path}</c> with an empty body,
/// so the gateway holds it while the function wakes and its timeouts and
/// retries apply. The gateway is <c>--schedule-gateway</c> (the chart passes
/// this release's gateway Service, reachable in the cluster), else the first of
/// <c>--gateways</c>, the next one only when a gateway cannot be reached at all
/// (nothing was sent), and <c>--endpoint-base</c> when neither is given (it may
/// be an external address, so it is not preferred).
/// </summary>
public sealed class GatewayInvoker(HttpClient http, Func<IReadOnlyList<Uri>> gateways) : IScheduledInvoker
{
    /// <summary>Header carrying the tick's scheduled time (RFC 3339), so the function can tell a scheduled call and its tick.</summary>
    public const string ScheduleTimeHeader = "X-Pilotlight-Schedule-Time";

    /// <summary>
    /// Adds credentials to a scheduled request (see <see cref="BearerFrom"/>): the gateway admits a private
    /// function's callers by their token. Whatever it adds must never be logged.
    /// </summary>
    public Func<HttpRequestMessage, CancellationToken, ValueTask> Authenticate { get; init; } = (_, _) => ValueTask.CompletedTask;

    /// <summary>
    /// Adds <c>Authorization: Bearer</c> with the token in <paramref name="path"/>, read at each request (a projected
    /// token is refreshed in place); nothing when <paramref name="path"/> is null or the file cannot be read (the
    /// gateway then answers 401, which the tick's result records).
    /// </summary>
    public static Func<HttpRequestMessage, CancellationToken, ValueTask> BearerFrom(string? path) => path is null
        ? (_, _) => ValueTask.CompletedTask
        : async (request, ct) =>
        {
            try
            {
                var token = (await File.ReadAllTextAsync(path, ct).ConfigureAwait(false)).Trim();
                if (token.Length > 0)
                {
                    request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        };

    /// <summary>Extra time beyond the function's own startupTimeout and timeout before the operator gives up waiting.</summary>
    public TimeSpan Slack { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The URL of the scheduled request through <paramref name="gateway"/>.</summary>
    public static Uri RequestUri(Uri gateway, GpuFunction function) =>
        new($"{gateway.ToString().TrimEnd('/')}/{function.Metadata.NamespaceProperty}/{function.Metadata.Name}{function.Spec.Schedule?.Path ?? "/"}");

    /// <inheritdoc />
    public async Task<InvocationOutcome> InvokeAsync(GpuFunction function, DateTimeOffset tick, CancellationToken ct)
    {
        // The gateway bounds the hold by startupTimeout and the run by timeout; this only stops waiting forever.
        var bound = Duration(function.Spec.StartupTimeout) + Duration(function.Spec.Timeout) + Slack;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(bound);
        var targets = gateways();
        string? error = "no gateway configured";
        foreach (var gateway in targets)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, RequestUri(gateway, function)) { Content = new ByteArrayContent([]) };
            request.Headers.Add(ScheduleTimeHeader, tick.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            await Authenticate(request, timeout.Token).ConfigureAwait(false);
            try
            {
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                // Read the answer to its end: the invocation is over when the function has answered in full.
                await response.Content.CopyToAsync(Stream.Null, timeout.Token).ConfigureAwait(false);
                return new InvocationOutcome((int)response.StatusCode, null);
            }
            catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
            {
                // Nothing reached this gateway: the next one may take it.
                error = $"gateway {gateway.Host} unreachable: {e.Message}";
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                return new InvocationOutcome(null, $"request failed: {e.Message}");
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return new InvocationOutcome(null, $"no answer within {bound.TotalSeconds:0}s (startupTimeout + timeout + {Slack.TotalSeconds:0}s)");
            }
        }

        return new InvocationOutcome(null, error);
    }

    private static TimeSpan Duration(string text) => DurationString.TryParse(text, out var d) ? d : TimeSpan.Zero;
}
