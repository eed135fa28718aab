namespace Pilotlight.Operator.Functions;

/// <summary>Labels and annotations the operator puts on what it creates for a function.</summary>
public static class FunctionLabels
{
    /// <summary>Name of the owning GpuFunction.</summary>
    public const string Function = "pilotlight.dev/function";

    /// <summary>Hash of the pod template, so a spec change rolls pods.</summary>
    public const string TemplateHash = "pilotlight.dev/template-hash";

    /// <summary>Marks everything the operator manages.</summary>
    public const string ManagedBy = "app.kubernetes.io/managed-by";

    /// <summary>Value of <see cref="ManagedBy"/>.</summary>
    public const string ManagedByValue = "pilotlight";

    /// <summary>Which container <c>kubectl logs</c> and <c>exec</c> pick by default.</summary>
    public const string DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container";
}
