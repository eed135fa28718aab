namespace Pilotlight.Api.Schema;

/// <summary>
/// Names and groups a custom resource for the CRD generator. The group, version,
/// kind and plural come from KubernetesClient's <c>KubernetesEntityAttribute</c>;
/// this carries what that attribute lacks.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class CustomResourceAttribute : Attribute
{
    /// <summary>Lower-case singular name, e.g. <c>gpufunction</c>.</summary>
    public required string Singular { get; init; }

    /// <summary>Short names usable with kubectl, e.g. <c>gfn</c>.</summary>
    public string[] ShortNames { get; init; } = [];

    /// <summary>Categories, so <c>kubectl get pilotlight</c> lists every kind in one.</summary>
    public string[] Categories { get; init; } = [];

    /// <summary>True for namespaced resources (the default), false for cluster-scoped.</summary>
    public bool Namespaced { get; init; } = true;
}

/// <summary>An additional printer column shown by <c>kubectl get</c>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
public sealed class PrinterColumnAttribute(string name, string type, string jsonPath) : Attribute
{
    /// <summary>Column header.</summary>
    public string Name { get; } = name;

    /// <summary>OpenAPI type of the column: string, integer, number, boolean or date.</summary>
    public string Type { get; } = type;

    /// <summary>JSONPath into the object, e.g. <c>.status.replicas</c>.</summary>
    public string JsonPath { get; } = jsonPath;

    /// <summary>0 shows the column always; higher only with <c>-o wide</c>.</summary>
    public int Priority { get; init; }

    /// <summary>Column description.</summary>
    public string? Description { get; init; }
}

/// <summary>
/// Marks a property whose content the API server keeps as-is instead of pruning
/// it against a schema (<c>x-kubernetes-preserve-unknown-fields</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Class, AllowMultiple = false)]
public sealed class PreserveUnknownFieldsAttribute : Attribute;

/// <summary>
/// Gives a list property the list semantics the API server uses for server-side
/// apply merges (<c>x-kubernetes-list-type</c> and, for maps, <c>x-kubernetes-list-map-keys</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class ListTypeAttribute(string listType, params string[] mapKeys) : Attribute
{
    /// <summary>atomic, set or map.</summary>
    public string ListType { get; } = listType;

    /// <summary>Keys identifying an item when <see cref="ListType"/> is map.</summary>
    public IReadOnlyList<string> MapKeys { get; } = mapKeys;
}

/// <summary>
/// A CEL rule the API server checks on an object of this type (<c>x-kubernetes-validations</c>): enforced by
/// Kubernetes 1.25 and later, dropped by older API servers (the operator's admission webhook and its reconcilers
/// check the same rules there). Only rules whose cost does not grow with the object are written this way.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
public sealed class ValidationRuleAttribute(string rule, string message) : Attribute
{
    /// <summary>The CEL expression, true when the object is valid; <c>self</c> is the object.</summary>
    public string Rule { get; } = rule;

    /// <summary>What the API server answers when the rule is false, with the field named.</summary>
    public string Message { get; } = message;
}
