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

    /// <summary>Every acceptable product label value, in preference order.</summary>
    public IReadOnlyList<string> AllProducts => Types.SelectMany(t => t.Products).Distinct().ToList();

    /// <summary>
    /// Resolves a GPU requirement against the catalog. Problems (a type the
    /// catalog lacks, fallbacks that repeat a type) come back as messages that a
    /// condition can carry, never as exceptions.
    /// </summary>
    public static (FunctionPlacement? Placement, IReadOnlyList<string> Problems) Resolve(GpuRequirement? gpu, GpuCatalog catalog)
    {
        if (gpu is null)
        {
            return (new FunctionPlacement(null, []), []);
        }

        var problems = new List<string>();
        var ordered = new List<GpuType> { gpu.Type };
        foreach (var fallback in gpu.Fallbacks ?? [])
        {
            if (ordered.Contains(fallback))
            {
                problems.Add(fallback == gpu.Type
                    ? $"gpu.fallbacks lists {fallback.ToWireName()}, the requested type itself"
                    : $"gpu.fallbacks lists {fallback.ToWireName()} twice");
                continue;
            }

            ordered.Add(fallback);
        }

        var types = new List<(GpuType, IReadOnlyList<string>)>();
        foreach (var type in ordered)
        {
            var products = catalog.ProductsOf(type);
            if (products.Count == 0)
            {
                problems.Add($"GPU type {type.ToWireName()} is not in the operator's GPU catalog");
                continue;
            }

            types.Add((type, products));
        }

        return problems.Count > 0 ? (null, problems) : (new FunctionPlacement(gpu, types), problems);
    }
}
