using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The chart's <c>gpuTypes</c> as the operator reads them: the ConfigMap file the chart renders for --gpu-catalog
/// parses into the catalog the values describe, the defaults equal the operator's built-in catalog, and a type the
/// shipped catalog does not know is added by a value alone.
/// </summary>
[TestFixture]
public class ChartGpuTypesTests
{
    private static async Task<GpuCatalog> RenderedCatalogAsync(params string[] set)
    {
        var yaml = await Helm.TemplateAsync(showOnly: ["templates/configmap.yaml"], set: set);
        var map = KubernetesYaml.Deserialize<V1ConfigMap>(yaml);
        return GpuCatalog.Parse(map.Data["gpu-catalog.yaml"]);
    }

    [Test]
    public async Task The_default_gpuTypes_are_the_operators_built_in_catalog()
    {
        var catalog = await RenderedCatalogAsync();

        Assert.That(catalog.Names, Is.EqualTo(GpuCatalog.Default.Names));
        foreach (var type in GpuCatalog.Default.Products.Keys)
        {
            Assert.That(catalog.ProductsOf(type), Is.EqualTo(GpuCatalog.Default.ProductsOf(type)), type.Name);
        }
    }

    [Test]
    public async Task A_value_adds_a_type_the_shipped_catalog_lacks_and_null_removes_one()
    {
        var catalog = await RenderedCatalogAsync("gpuTypes.X1000={NVIDIA-X1000,NVIDIA-X1000-PCIe}", "gpuTypes.T4=null");

        Assert.That(catalog.ProductsOf(new GpuType("X1000")), Is.EqualTo(new[] { "NVIDIA-X1000", "NVIDIA-X1000-PCIe" }));
        Assert.That(catalog.Find(GpuType.T4), Is.Null);
        Assert.That(catalog.ProductsOf(GpuType.GH200), Is.EqualTo(GpuCatalog.Default.ProductsOf(GpuType.GH200)), "the other defaults stay");
    }

    [Test]
    public void A_type_name_that_is_no_label_value_is_refused_by_the_values_schema()
    {
        Assert.That(async () => await Helm.TemplateAsync(showOnly: ["templates/configmap.yaml"], set: ["gpuTypes.RTX 4090={NVIDIA-GeForce-RTX-4090}"]),
            Throws.InstanceOf<InvalidOperationException>().With.Message.Contains("invalid propertyName 'RTX 4090'"));
    }
}
