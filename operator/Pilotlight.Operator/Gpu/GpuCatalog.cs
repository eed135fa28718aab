using Pilotlight.Api.V1Alpha1;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Pilotlight.Operator.Gpu;

/// <summary>
/// Which GPU Feature Discovery product labels (<c>nvidia.com/gpu.product</c>)
/// each friendly GPU type matches. Operator configuration, not code: a cluster
/// may name its products differently, or lack some types altogether.
/// </summary>
public sealed record GpuCatalog(IReadOnlyDictionary<GpuType, IReadOnlyList<string>> Products)
{
    /// <summary>The node label that carries a node's GPU product.</summary>
    public const string ProductLabel = "nvidia.com/gpu.product";

    /// <summary>The catalog shipped with the operator.</summary>
    public static GpuCatalog Default { get; } = LoadDefault();

    /// <summary>Product label values of a type; empty when the catalog lacks the type.</summary>
    public IReadOnlyList<string> ProductsOf(GpuType type) => Products.GetValueOrDefault(type) ?? [];

    /// <summary>The friendly type a product label value belongs to, if any.</summary>
    public GpuType? TypeOfProduct(string product) =>
        Products.Where(p => p.Value.Contains(product, StringComparer.Ordinal)).Select(p => (GpuType?)p.Key).FirstOrDefault();

    /// <summary>
    /// Reads a catalog from YAML: a map of friendly type to a list of product
    /// values. Unknown type names and empty lists are errors that name the entry.
    /// </summary>
    public static GpuCatalog Parse(string yaml)
    {
        Dictionary<string, List<string>>? raw;
        try
        {
            raw = new DeserializerBuilder().Build().Deserialize<Dictionary<string, List<string>>?>(yaml);
        }
        catch (YamlException e)
        {
            throw new FormatException($"GPU catalog is not a map of GPU type to product list: {e.Message}", e);
        }

        var products = new Dictionary<GpuType, IReadOnlyList<string>>();
        foreach (var (name, values) in raw ?? [])
        {
            if (!GpuTypeNames.TryParse(name, out var type))
            {
                throw new FormatException($"GPU catalog names unknown GPU type '{name}'; known: {string.Join(", ", Enum.GetValues<GpuType>().Select(t => t.ToWireName()))}");
            }

            var cleaned = (values ?? []).Where(v => !string.IsNullOrWhiteSpace(v)).Select(v => v.Trim()).Distinct().ToList();
            if (cleaned.Count == 0)
            {
                throw new FormatException($"GPU catalog entry '{name}' lists no products");
            }

            products[type] = cleaned;
        }

        return new GpuCatalog(products);
    }

    private static GpuCatalog LoadDefault()
    {
        using var stream = typeof(GpuCatalog).Assembly.GetManifestResourceStream("gpu-catalog.yaml")
            ?? throw new InvalidOperationException("the default GPU catalog is not embedded in the operator");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd());
    }
}
