using System.Text.Json.Nodes;

namespace Pilotlight.Client.Deploy;

/// <summary>One object of a manifest, as JSON, with where it came from.</summary>
/// <param name="Object">The object (apiVersion, kind, metadata, ...).</param>
/// <param name="Source">File and document it came from, e.g. <c>fn.yaml#2</c>, for messages.</param>
public sealed record ManifestObject(JsonObject Object, string Source)
{
    /// <summary><c>apiVersion</c>, e.g. <c>pilotlight.dev/v1alpha1</c> or <c>v1</c>.</summary>
    public string ApiVersion => Text(Object["apiVersion"]) ?? "";

    /// <summary><c>kind</c>, e.g. <c>GpuFunction</c>.</summary>
    public string Kind => Text(Object["kind"]) ?? "";

    /// <summary><c>metadata.name</c>.</summary>
    public string Name => Text(Object["metadata"]?["name"]) ?? "";

    /// <summary><c>metadata.namespace</c>, if the manifest says.</summary>
    public string? Namespace => Text(Object["metadata"]?["namespace"]);

    /// <summary>The API group: the part of apiVersion before the slash; empty for the core group.</summary>
    public string Group => ApiVersion.Contains('/') ? ApiVersion[..ApiVersion.IndexOf('/')] : "";

    /// <summary>The API version: the part of apiVersion after the slash.</summary>
    public string Version => ApiVersion.Contains('/') ? ApiVersion[(ApiVersion.IndexOf('/') + 1)..] : ApiVersion;

    private static string? Text(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;
}
