namespace Pilotlight.Client;

/// <summary>Where the gateway is: <c>--gateway</c>, else <c>PILOTLIGHT_GATEWAY</c>, else a function's <c>status.endpoint</c>.</summary>
public static class GatewayEndpoint
{
    /// <summary>Environment variable naming the gateway's base URL.</summary>
    public const string Variable = "PILOTLIGHT_GATEWAY";

    /// <summary>Environment variable naming the operator's URL (the usage API).</summary>
    public const string OperatorVariable = "PILOTLIGHT_OPERATOR";

    /// <summary>An explicit gateway URL, or null when neither the option nor the variable gives one.</summary>
    public static Uri? Explicit(string? option)
    {
        var value = option ?? Environment.GetEnvironmentVariable(Variable);
        return string.IsNullOrWhiteSpace(value) ? null : Parse(value, "--gateway");
    }

    /// <summary>
    /// The gateway's base URL from a function's endpoint (<c>BASE/NS/NAME</c>, as the operator writes it).
    /// </summary>
    public static Uri FromFunctionEndpoint(string endpoint, string ns, string name)
    {
        var suffix = $"/{ns}/{name}";
        var trimmed = endpoint.TrimEnd('/');
        var baseUrl = trimmed.EndsWith(suffix, StringComparison.Ordinal) ? trimmed[..^suffix.Length] : trimmed;
        return Parse(baseUrl, "status.endpoint");
    }

    /// <summary>Parses an absolute http(s) URL; the message names where it came from.</summary>
    public static Uri Parse(string value, string source) =>
        Uri.TryCreate(value.TrimEnd('/') + "/", UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new PilotlightClientException($"{source} '{value}' is not an http(s) URL.", "Give the gateway's base URL, e.g. https://gateway.example.com.");
}
