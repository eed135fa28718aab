using Pilotlight.Api.V1Alpha1;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Pilotlight.Operator.Gpu;

/// <summary>
/// The GPU types the platform offers and which GPU Feature Discovery product labels (<c>nvidia.com/gpu.product</c>)
/// each matches. Operator configuration, not code: a cluster names whatever types its hardware has (any product GFD
/// reports), may name its products differently, or lack some types altogether. Types are matched ignoring case, and
/// <see cref="Find"/> answers with the catalog's own spelling.
/// </summary>
public sealed record GpuCatalog(IReadOnlyDictionary<GpuType, IReadOnlyList<string>> Products)
{
    /// <summary>The node label that carries a node's GPU product.</summary>
    public const string ProductLabel = "nvidia.com/gpu.product";

    /// <summary>The catalog shipped with the operator.</summary>
    public static GpuCatalog Default { get; } = LoadDefault();

    /// <summary>The catalog's types by name, ordered, as the messages that list them print them.</summary>
    public IReadOnlyList<string> Names => [.. Products.Keys.Select(t => t.Name).Order(StringComparer.OrdinalIgnoreCase)];

    /// <summary>Product label values of a type; empty when the catalog lacks the type.</summary>
    public IReadOnlyList<string> ProductsOf(GpuType type) => Products.GetValueOrDefault(type) ?? [];

    /// <summary>The catalog's entry for <paramref name="type"/> (its spelling), or null when the catalog lacks the type.</summary>
    public GpuType? Find(GpuType type) => Products.Keys.Where(k => k == type).Select(k => (GpuType?)k).FirstOrDefault();

    /// <summary>The friendly type a product label value belongs to, if any.</summary>
    public GpuType? TypeOfProduct(string product) =>
        Products.Where(p => p.Value.Contains(product, StringComparer.Ordinal)).Select(p => (GpuType?)p.Key).FirstOrDefault();

    /// <summary>
    /// Reads a catalog from YAML: a map of GPU type name to a list of product values. A name that is not a valid
    /// GPU type (<see cref="GpuType.IsValidName"/>), a name given twice (ignoring case) and an empty list are errors
    /// that name the entry.
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
            if (!GpuType.IsValidName(name))
            {
                throw new FormatException(
                    $"GPU catalog entry '{name}' is not a GPU type name: letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most {GpuType.MaxLength} characters");
            }

            var type = new GpuType(name);
            if (products.ContainsKey(type))
            {
                throw new FormatException($"GPU catalog names GPU type '{name}' twice (names are matched ignoring case)");
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
