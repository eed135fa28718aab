using System.Globalization;
using System.Text.Json;

namespace Pilotlight.Client;

/// <summary>Usage of a function or sandbox over a window: the total and one value per second.</summary>
/// <param name="Namespace">Namespace.</param>
/// <param name="Name">The function's (or sandbox's) name.</param>
/// <param name="From">Window start.</param>
/// <param name="To">Window end.</param>
/// <param name="GpuSeconds">Total GPU-seconds.</param>
/// <param name="Seconds">GPU-seconds per second, from <paramref name="From"/>.</param>
public sealed record UsageSeries(string Namespace, string Name, DateTime From, DateTime To, double GpuSeconds, IReadOnlyList<double> Seconds)
{
    /// <summary>Sums the per-second values into buckets of <paramref name="bucket"/> (e.g. a minute).</summary>
    public IReadOnlyList<double> Buckets(TimeSpan bucket)
    {
        var per = Math.Max(1, (int)bucket.TotalSeconds);
        return [.. Seconds.Chunk(per).Select(c => c.Sum())];
    }
}

/// <summary>Reads the operator's usage ledger (<c>GET /usage</c>), which checks the caller may get the object.</summary>
public sealed class UsageClient(HttpClient http, Uri @operator, string? token)
{
    /// <summary>Usage of a function (or, with <paramref name="sandbox"/>, a sandbox) over [from, to); the operator's default window when null.</summary>
    public async Task<UsageSeries> GetAsync(string ns, string name, DateTimeOffset? from = null, DateTimeOffset? to = null, bool sandbox = false,
        CancellationToken cancellationToken = default)
    {
        var query = $"usage?namespace={Uri.EscapeDataString(ns)}&{(sandbox ? "sandbox" : "function")}={Uri.EscapeDataString(name)}";
        if (from is { } f)
        {
            query += "&from=" + Uri.EscapeDataString(f.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
        }

        if (to is { } t)
        {
            query += "&to=" + Uri.EscapeDataString(t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(@operator, query));
        GatewayHttp.Authorize(request, token);
        using var response = await GatewayHttp.SendAsync(http, request, "the operator", cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw await GatewayException.FromResponseAsync(response, $"{(sandbox ? "sandbox" : "function")} {ns}/{name}", cancellationToken).ConfigureAwait(false);
        }

        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        var root = doc.RootElement;
        var seconds = root.TryGetProperty("seconds", out var s) && s.ValueKind == JsonValueKind.Array
            ? s.EnumerateArray().Select(p => p.GetProperty("gpuSeconds").GetDouble()).ToList()
            : [];
        return new UsageSeries(ns, name, root.GetProperty("from").GetDateTime(), root.GetProperty("to").GetDateTime(),
            root.GetProperty("gpuSeconds").GetDouble(), seconds);
    }
}
