using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Pilotlight.Client;

/// <summary>The Pilotlight kinds a client reads and writes, as plural resource names.</summary>
public enum PilotlightKind
{
    /// <summary>GpuFunction (gpufunctions).</summary>
    GpuFunction,

    /// <summary>Sandbox (sandboxes).</summary>
    Sandbox,
}

/// <summary>
/// Reads and writes Pilotlight objects as JSON trees (what the API server sent, unchanged): printed as they are for
/// <c>-o json|yaml</c>, and read field by field for tables, so the client needs no reflection-bound models.
/// </summary>
public sealed class PilotlightResources(ClusterConnection connection)
{
    /// <summary>The API group.</summary>
    public const string Group = "pilotlight.dev";

    /// <summary>The API version.</summary>
    public const string Version = "v1alpha1";

    /// <summary>The plural resource name of a kind.</summary>
    public static string Plural(PilotlightKind kind) => kind == PilotlightKind.GpuFunction ? "gpufunctions" : "sandboxes";

    /// <summary>Objects of <paramref name="kind"/> in <paramref name="ns"/>, or in every namespace when null.</summary>
    public async Task<IReadOnlyList<JsonObject>> ListAsync(PilotlightKind kind, string? ns, CancellationToken cancellationToken = default)
    {
        var list = await CallAsync(kind, null, () => ns is null
            ? connection.Kubernetes.CustomObjects.ListClusterCustomObjectAsync(Group, Version, Plural(kind), cancellationToken: cancellationToken)
            : connection.Kubernetes.CustomObjects.ListNamespacedCustomObjectAsync(Group, Version, ns, Plural(kind), cancellationToken: cancellationToken)).ConfigureAwait(false);
        return list["items"] is JsonArray items ? [.. items.OfType<JsonObject>().Select(i => (JsonObject)i.DeepClone())] : [];
    }

    /// <summary>One object; a <see cref="PilotlightClientException"/> when it does not exist.</summary>
    public Task<JsonObject> GetAsync(PilotlightKind kind, string ns, string name, CancellationToken cancellationToken = default) =>
        CallAsync(kind, $"{ns}/{name}", () => connection.Kubernetes.CustomObjects.GetNamespacedCustomObjectAsync(Group, Version, ns, Plural(kind), name,
            cancellationToken: cancellationToken));

    /// <summary>Creates an object from its JSON; returns what the API server stored.</summary>
    public Task<JsonObject> CreateAsync(PilotlightKind kind, string ns, JsonObject body, CancellationToken cancellationToken = default) =>
        CallAsync(kind, $"{ns}/{body["metadata"]?["name"]}", () => connection.Kubernetes.CustomObjects.CreateNamespacedCustomObjectAsync(
            JsonDocument.Parse(body.ToJsonString()).RootElement, Group, Version, ns, Plural(kind), cancellationToken: cancellationToken));

    /// <summary>Deletes an object (foreground: its pods go with it).</summary>
    public Task DeleteAsync(PilotlightKind kind, string ns, string name, CancellationToken cancellationToken = default) =>
        CallAsync(kind, $"{ns}/{name}", () => connection.Kubernetes.CustomObjects.DeleteNamespacedCustomObjectAsync(Group, Version, ns, Plural(kind), name,
            cancellationToken: cancellationToken));

    /// <summary>The newest events about an object, oldest first.</summary>
    public async Task<IReadOnlyList<Corev1Event>> EventsAsync(string ns, string name, string kind, int limit = 20, CancellationToken cancellationToken = default)
    {
        var events = await connection.Kubernetes.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: $"involvedObject.name={name},involvedObject.kind={kind}",
            cancellationToken: cancellationToken).ConfigureAwait(false);
        return [.. events.Items.OrderBy(e => e.LastTimestamp ?? e.EventTime ?? e.Metadata.CreationTimestamp).TakeLast(limit)];
    }

    private static async Task<JsonObject> CallAsync(PilotlightKind kind, string? name, Func<Task<object>> call)
    {
        object result;
        try
        {
            result = await call().ConfigureAwait(false);
        }
        catch (HttpOperationException e)
        {
            var status = (int)e.Response.StatusCode;
            var what = name is null ? Plural(kind) : $"{kind} {name}";
            throw status switch
            {
                404 when name is not null => new PilotlightClientException($"{what} not found.", $"List them with pilotlight get {Plural(kind)}."),
                404 => new PilotlightClientException($"The API server does not serve {Group}/{Plural(kind)}.", "Install Pilotlight's CRDs (helm install pilotlight charts/pilotlight)."),
                401 => new PilotlightClientException("The API server did not accept your credentials.", "Refresh your kubeconfig's credentials (log in again)."),
                403 => new PilotlightClientException($"You may not access {what}: {e.Response.Content}", "Ask an admin for a Role granting it, or pick another namespace with -n."),
                409 => new PilotlightClientException($"{what} already exists.", "Pick another name, or delete it first."),
                _ => new PilotlightClientException($"The API server answered {status} for {what}: {e.Response.Content}", null, e),
            };
        }
        catch (HttpRequestException e)
        {
            throw new PilotlightClientException($"Cannot reach the API server: {e.Message}", "Check the kubeconfig's server and your network (kubectl cluster-info).", e);
        }

        var node = result switch
        {
            JsonElement element => JsonNode.Parse(element.GetRawText()),
            JsonNode n => n,
            _ => null,
        };
        return node as JsonObject ?? [];
    }
}
