using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Tests.Operator.Gpu;

public sealed class GpuCatalogTests
{
    [Test]
    public void ShippedCatalogCoversEveryWellKnownType()
    {
        // The friendly names the API has always had, and the ones the catalog opened up (issue 20).
        GpuType[] wellKnown =
        [
            GpuType.T4, GpuType.L4, GpuType.A10, GpuType.L40S, GpuType.A100_40GB, GpuType.A100_80GB, GpuType.H100, GpuType.H200, GpuType.B200,
            GpuType.V100, GpuType.A40, GpuType.L40, GpuType.Rtx6000Ada, GpuType.GH200, GpuType.GB200,
        ];
        foreach (var type in wellKnown)
        {
            Assert.That(GpuCatalog.Default.ProductsOf(type), Is.Not.Empty, type.Name);
            Assert.That(GpuCatalog.Default.Find(type)!.Value.Name, Is.EqualTo(type.Name), "the catalog spells it as the API's member does");
        }

        Assert.That(GpuCatalog.Default.Products.Keys, Is.EquivalentTo(wellKnown), "every shipped type is a well-known one");
        Assert.That(GpuCatalog.Default.ProductsOf(GpuType.H100), Does.Contain("NVIDIA-H100-80GB-HBM3"));
        Assert.That(GpuCatalog.Default.ProductsOf(GpuType.V100), Does.Contain("Tesla-V100-SXM2-32GB"));
        Assert.That(GpuCatalog.Default.TypeOfProduct("Tesla-T4"), Is.EqualTo(GpuType.T4));
        Assert.That(GpuCatalog.Default.TypeOfProduct("NVIDIA-RTX-6000-Ada-Generation"), Is.EqualTo(GpuType.Rtx6000Ada));
    }

    [Test]
    public void ParsesAPartialCatalog()
    {
        var catalog = GpuCatalog.Parse("H100: [NVIDIA-H100-80GB-HBM3, ' NVIDIA-H100-PCIe ']\n");

        Assert.That(catalog.ProductsOf(GpuType.H100), Is.EqualTo(new[] { "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe" }));
        Assert.That(catalog.ProductsOf(GpuType.T4), Is.Empty);
    }

    [Test]
    public void ACatalogNamesAnyTypeAndMatchesItIgnoringCase()
    {
        var catalog = GpuCatalog.Parse("X1000: [NVIDIA-X1000]\nrtx-pro-6000: [NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition]\n");

        Assert.That(catalog.ProductsOf(new GpuType("x1000")), Is.EqualTo(new[] { "NVIDIA-X1000" }));
        Assert.That(catalog.Find(new GpuType("RTX-PRO-6000"))!.Value.Name, Is.EqualTo("rtx-pro-6000"), "the catalog's spelling");
        Assert.That(catalog.Find(GpuType.H100), Is.Null);
        Assert.That(catalog.Names, Is.EqualTo(new[] { "rtx-pro-6000", "X1000" }), "ordered ignoring case");
        Assert.That(catalog.TypeOfProduct("NVIDIA-X1000"), Is.EqualTo(new GpuType("X1000")));
    }

    [TestCase("L4: []", "'L4' lists no products")]
    [TestCase("- just\n- a list", "not a map")]
    [TestCase("H100 PCIe: [NVIDIA-H100-PCIe]", "'H100 PCIe' is not a GPU type name")]
    [TestCase("-x: [NVIDIA-X]", "'-x' is not a GPU type name")]
    [TestCase("H100: [a]\nh100: [b]", "'h100' twice")]
    public void RejectsBadCatalogsNamingTheEntry(string yaml, string message)
    {
        Assert.That(() => GpuCatalog.Parse(yaml), Throws.InstanceOf<FormatException>().With.Message.Contains(message));
    }
}
