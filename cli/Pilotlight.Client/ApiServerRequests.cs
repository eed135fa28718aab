using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using k8s;

namespace Pilotlight.Client;

/// <summary>
/// Requests the typed client has no call for (any kind by its resource path, server-side apply), sent with the
/// connection's credentials and TLS settings. Bodies are JSON, read as <see cref="JsonNode"/>: no reflection.
/// </summary>
internal sealed class ApiServerRequests(Kubernetes kubernetes)
{
    /// <summary>For a connection's client.</summary>
    public static ApiServerRequests For(ClusterConnection connection) =>
        new(connection.Kubernetes as Kubernetes
            ?? throw new InvalidOperationException("raw API requests need the KubernetesClient Kubernetes class"));

    /// <summary>GET <paramref name="path"/>; null on 404.</summary>
    public async Task<JsonNode?> GetAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Uri(path));
        var (status, body) = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (status == HttpStatusCode.NotFound)
        {
            return null;
        }

        return status is >= HttpStatusCode.OK and < HttpStatusCode.MultipleChoices
            ? JsonNode.Parse(body)
            : throw new ApiServerException(status, StatusMessage(body) ?? $"GET {path}: {(int)status} {status}");
    }

    /// <summary>PATCH <paramref name="path"/> with an apply patch (server-side apply); the object the server returns.</summary>
    public async Task<JsonNode> ApplyAsync(string path, JsonNode body, string fieldManager, bool force, CancellationToken cancellationToken)
    {
        var query = $"?fieldManager={System.Uri.EscapeDataString(fieldManager)}{(force ? "&force=true" : "")}";
        using var request = new HttpRequestMessage(HttpMethod.Patch, Uri(path + query))
        {
            // JSON is YAML: the apply patch type takes either.
            Content = new StringContent(body.ToJsonString(), new MediaTypeHeaderValue("application/apply-patch+yaml")),
        };
        var (status, text) = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        return status is >= HttpStatusCode.OK and < HttpStatusCode.MultipleChoices
            ? JsonNode.Parse(text)!
            : throw new ApiServerException(status, StatusMessage(text) ?? $"PATCH {path}: {(int)status} {status}");
    }

    private Uri Uri(string path) => new(kubernetes.BaseUri, path.TrimStart('/'));

    private async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (kubernetes.Credentials is { } credentials)
        {
            await credentials.ProcessHttpRequestAsync(request, ct).ConfigureAwait(false);
        }

        using var response = await kubernetes.HttpClient.SendAsync(request, ct).ConfigureAwait(false);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
    }

    /// <summary>The message of a metav1.Status body, if it is one.</summary>
    private static string? StatusMessage(string body)
    {
        try
        {
            return JsonNode.Parse(body) is JsonObject { } status && status["kind"]?.GetValue<string>() == "Status"
                ? status["message"]?.GetValue<string>()
                : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}

/// <summary>An API server answer that was not a success, with the message of its Status.</summary>
internal sealed class ApiServerException(HttpStatusCode status, string message) : Exception(message)
{
    /// <summary>The HTTP status.</summary>
    public HttpStatusCode Status { get; } = status;
}
