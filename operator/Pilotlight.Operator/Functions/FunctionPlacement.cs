using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Operator.Functions;

/// <summary>
/// Where a function's pods may run: the GPU types in preference order and the
/// product label values each maps to. Absent GPUs mean any node.
/// </summary>
/// <param name="Gpu">The requirement it was resolved from; null when the function asks for no GPU.</param>
/// <param name="Types">Requested type first, then fallbacks, each with its products.</param>
public sealed record FunctionPlacement(GpuRequirement? Gpu, IReadOnlyList<(GpuType Type, IReadOnlyList<string> Products)> Types)
{
    /// <summary>GPUs each pod requests.</summary>
    public int GpuCount => Gpu?.Count ?? 0;

    /// <summary>
    /// The requested type as the catalog spells it (what the metering sidecar labels usage with, so the label's values
    /// are the catalog's names whatever case a manifest used); null when the function asks for no GPU.
    /// </summary>
    public GpuType? Requested => Types is [var first, ..] ? first.Type : null;

    /// <summary>Every acceptable product label value, in preference order.</summary>
    public IReadOnlyList<string> AllProducts => Types.SelectMany(t => t.Products).Distinct().ToList();

    /// <summary>
    /// Resolves a GPU requirement against the catalog. Problems (a type the
    /// catalog lacks, fallbacks that repeat a type) come back as messages that a
    /// condition can carry, never as exceptions; a type the catalog lacks is named
    /// with the field and the list of types the catalog has, so the user can pick one.
    /// Types come back in the catalog's spelling.
    /// </summary>
    public static (FunctionPlacement? Placement, IReadOnlyList<string> Problems) Resolve(GpuRequirement? gpu, GpuCatalog catalog)
    {
        if (gpu is null)
        {
            return (new FunctionPlacement(null, []), []);
        }

        var problems = new List<string>();
        var ordered = new List<(GpuType Type, string Field)> { (gpu.Type, "spec.gpu.type") };
        var fallbacks = gpu.Fallbacks ?? [];
        for (var i = 0; i < fallbacks.Count; i++)
        {
            var fallback = fallbacks[i];
            if (ordered.Any(o => o.Type == fallback))
            {
                problems.Add(fallback == gpu.Type
                    ? $"spec.gpu.fallbacks[{i}]: lists {fallback.Name}, the requested type itself"
                    : $"spec.gpu.fallbacks[{i}]: lists {fallback.Name} twice");
                continue;
            }

            ordered.Add((fallback, $"spec.gpu.fallbacks[{i}]"));
        }

        var types = new List<(GpuType, IReadOnlyList<string>)>();
        foreach (var (type, field) in ordered)
        {
            if (catalog.Find(type) is not { } known)
            {
                problems.Add($"{field}: GPU type '{type.Name}' is not in the platform's GPU catalog (known: {string.Join(", ", catalog.Names)})");
                continue;
            }

            types.Add((known, catalog.ProductsOf(known)));
        }

        return problems.Count > 0 ? (null, problems) : (new FunctionPlacement(gpu, types), problems);
    }
}
