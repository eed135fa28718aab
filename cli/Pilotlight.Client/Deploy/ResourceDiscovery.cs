using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace Pilotlight.Client.Deploy;

/// <summary>Where the API server keeps a kind: its resource (plural) and whether it is namespaced.</summary>
/// <param name="Group">API group; empty for the core group.</param>
/// <param name="Version">API version.</param>
/// <param name="Kind">The kind.</param>
/// <param name="Plural">The resource name in paths, e.g. <c>gpufunctions</c>.</param>
/// <param name="Namespaced">Whether objects live in a namespace.</param>
public sealed record ApiResource(string Group, string Version, string Kind, string Plural, bool Namespaced)
{
    /// <summary>The path of an object (or, with a null name, of the collection).</summary>
    public string PathOf(string? @namespace, string? name)
    {
        var root = Group.Length == 0 ? $"/api/{Version}" : $"/apis/{Group}/{Version}";
        var scope = Namespaced ? $"/namespaces/{Uri.EscapeDataString(@namespace ?? "default")}" : "";
        return $"{root}{scope}/{Plural}{(name is null ? "" : "/" + Uri.EscapeDataString(name))}";
    }

    /// <summary>How kubectl names the kind in output: <c>gpufunction.pilotlight.dev</c>, or <c>configmap</c> in the core group.</summary>
    public string DisplayName => Group.Length == 0 ? Kind.ToLowerInvariant() : $"{Kind.ToLowerInvariant()}.{Group}";
}

/// <summary>
/// Resolves kinds to resources by API discovery, asking only for the group versions manifests name (one request
/// each, cached): any kind the server serves, CRDs included, without a list compiled in.
/// </summary>
internal sealed class ResourceDiscovery(ApiServerRequests api)
{
    private readonly ConcurrentDictionary<string, Task<JsonNode?>> _groupVersions = new();

    /// <summary>The resource for <paramref name="apiVersion"/> and <paramref name="kind"/>; a user-facing error when the server has none.</summary>
    public async Task<ApiResource> ResolveAsync(string apiVersion, string kind, CancellationToken cancellationToken)
    {
        var path = apiVersion.Contains('/') ? $"/apis/{apiVersion}" : $"/api/{apiVersion}";
        var list = await _groupVersions.GetOrAdd(apiVersion, _ => api.GetAsync(path, cancellationToken)).ConfigureAwait(false);
        var group = apiVersion.Contains('/') ? apiVersion[..apiVersion.IndexOf('/')] : "";
        var version = apiVersion.Contains('/') ? apiVersion[(apiVersion.IndexOf('/') + 1)..] : apiVersion;
        if (list is null)
        {
            throw new PilotlightClientException(
                $"The cluster does not serve {apiVersion} (for kind {kind}).",
                group.EndsWith("pilotlight.dev", StringComparison.Ordinal)
                    ? "Install Pilotlight's CRDs (helm install pilotlight charts/pilotlight, or kubectl apply -f crds/) and check the apiVersion."
                    : "Check the apiVersion, or install the CRD that defines it (kubectl api-versions lists what the cluster serves).");
        }

        var match = (list["resources"] as JsonArray ?? [])
            .OfType<JsonObject>()
            .FirstOrDefault(r => r["kind"]?.GetValue<string>() == kind && r["name"]?.GetValue<string>() is { } name && !name.Contains('/'));
        if (match is null)
        {
            var kinds = (list["resources"] as JsonArray ?? []).OfType<JsonObject>()
                .Where(r => r["name"]?.GetValue<string>()?.Contains('/') == false)
                .Select(r => r["kind"]?.GetValue<string>())
                .OfType<string>()
                .Distinct()
                .Order(StringComparer.Ordinal);
            throw new PilotlightClientException(
                $"Unknown kind {kind} in {apiVersion}.",
                $"{apiVersion} has: {string.Join(", ", kinds)}. Check the spelling (kinds are case-sensitive).");
        }

        return new ApiResource(group, version, kind, match["name"]!.GetValue<string>(), match["namespaced"]?.GetValue<bool>() == true);
    }
}
