using System.Net;
using System.Text.Json.Nodes;

namespace Pilotlight.Client.Deploy;

/// <summary>What applying one object did.</summary>
/// <param name="Resource">Where its kind lives.</param>
/// <param name="Namespace">Its namespace; null for cluster-scoped objects.</param>
/// <param name="Name">Its name.</param>
/// <param name="Generation">metadata.generation after the apply: the spec the operator must observe.</param>
/// <param name="Source">The manifest file and document it came from.</param>
public sealed record AppliedResource(ApiResource Resource, string? Namespace, string Name, long Generation, string Source)
{
    /// <summary>As kubectl prints it: <c>gpufunction.pilotlight.dev/echo</c>.</summary>
    public string DisplayName => $"{Resource.DisplayName}/{Name}";
}

/// <summary>
/// Applies manifests by server-side apply, as field manager <see cref="FieldManager"/>: the API server merges each
/// object with what is there and records which fields this manager owns, for any kind.
/// </summary>
public sealed class ServerSideApply
{
    /// <summary>The field manager the CLI applies as.</summary>
    public const string FieldManager = "pilotlight-cli";

    private readonly ApiServerRequests _api;
    private readonly ResourceDiscovery _discovery;
    private readonly string _defaultNamespace;

    /// <summary>Applies through <paramref name="connection"/>; namespaced objects without a namespace go to the connection's.</summary>
    public ServerSideApply(ClusterConnection connection)
        : this(ApiServerRequests.For(connection), connection.Namespace)
    {
    }

    internal ServerSideApply(ApiServerRequests api, string defaultNamespace)
    {
        _api = api;
        _discovery = new ResourceDiscovery(api);
        _defaultNamespace = defaultNamespace;
    }

    /// <summary>
    /// Applies <paramref name="manifest"/>; with <paramref name="forceConflicts"/> takes over fields other managers
    /// own. Unknown kinds, invalid objects and conflicts are <see cref="PilotlightClientException"/>s with a hint.
    /// </summary>
    public async Task<AppliedResource> ApplyAsync(ManifestObject manifest, bool forceConflicts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var resource = await _discovery.ResolveAsync(manifest.ApiVersion, manifest.Kind, cancellationToken).ConfigureAwait(false);
        var body = (JsonObject)manifest.Object.DeepClone();
        string? ns = null;
        if (resource.Namespaced)
        {
            ns = manifest.Namespace ?? _defaultNamespace;
            // The path names the namespace; the body must agree with it.
            ((JsonObject)body["metadata"]!)["namespace"] = ns;
        }

        var display = $"{resource.DisplayName}/{manifest.Name}";
        try
        {
            var applied = await _api.ApplyAsync(resource.PathOf(ns, manifest.Name), body, FieldManager, forceConflicts, cancellationToken).ConfigureAwait(false);
            var generation = applied["metadata"]?["generation"]?.GetValue<long>() ?? 0;
            return new AppliedResource(resource, ns, manifest.Name, generation, manifest.Source);
        }
        catch (ApiServerException e) when (e.Status == HttpStatusCode.Conflict)
        {
            throw new PilotlightClientException($"{display} ({manifest.Source}): apply conflict: {e.Message}",
                "Another field manager (kubectl, a GitOps tool, a controller) owns those fields. Re-run with --force-conflicts to take them over, or leave them out of the manifest.", e);
        }
        catch (ApiServerException e) when (e.Status is HttpStatusCode.UnprocessableEntity or HttpStatusCode.BadRequest)
        {
            throw new PilotlightClientException($"{display} ({manifest.Source}) is invalid: {e.Message}",
                "Fix the fields named above; `kubectl explain` describes a kind's fields (e.g. kubectl explain gpufunction.spec).", e);
        }
        catch (ApiServerException e) when (e.Status == HttpStatusCode.Forbidden)
        {
            throw new PilotlightClientException($"{display} ({manifest.Source}): forbidden: {e.Message}",
                "Your user may not patch that resource there; ask for a Role that grants patch (and create) on it.", e);
        }
        catch (ApiServerException e) when (e.Status == HttpStatusCode.NotFound)
        {
            throw new PilotlightClientException($"{display} ({manifest.Source}): {e.Message}",
                ns is null ? null : $"Does namespace {ns} exist? Create it, or pass -n for another.", e);
        }
        catch (ApiServerException e)
        {
            throw new PilotlightClientException($"{display} ({manifest.Source}): {e.Message}", null, e);
        }
    }
}
