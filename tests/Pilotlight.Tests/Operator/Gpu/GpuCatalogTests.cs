using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Tests.Operator.Gpu;

public sealed class GpuCatalogTests
{
    [Test]
    public void ShippedCatalogCoversEveryType()
    {
        foreach (var type in Enum.GetValues<GpuType>())
        {
            Assert.That(GpuCatalog.Default.ProductsOf(type), Is.Not.Empty, type.ToWireName());
        }

        Assert.That(GpuCatalog.Default.ProductsOf(GpuType.H100), Does.Contain("NVIDIA-H100-80GB-HBM3"));
        Assert.That(GpuCatalog.Default.TypeOfProduct("Tesla-T4"), Is.EqualTo(GpuType.T4));
    }

    [Test]
    public void ParsesAPartialCatalog()
    {
        var catalog = GpuCatalog.Parse("H100: [NVIDIA-H100-80GB-HBM3, ' NVIDIA-H100-PCIe ']\n");

        Assert.That(catalog.ProductsOf(GpuType.H100), Is.EqualTo(new[] { "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe" }));
        Assert.That(catalog.ProductsOf(GpuType.T4), Is.Empty);
    }

    [TestCase("V100: [Tesla-V100]", "unknown GPU type 'V100'")]
    [TestCase("L4: []", "'L4' lists no products")]
    [TestCase("- just\n- a list", "not a map")]
    public void RejectsBadCatalogsNamingTheEntry(string yaml, string message)
    {
        Assert.That(() => GpuCatalog.Parse(yaml), Throws.InstanceOf<FormatException>().With.Message.Contains(message));
    }
}
