using k8s;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Tests.Api;

public sealed class GpuFunctionJsonTests
{
    [Test]
    public void GpuTypesUseTheirWireNamesInJson()
    {
        var function = new GpuFunction
        {
            Metadata = new() { Name = "llm" },
            Spec = new GpuFunctionSpec { Image = "vllm", Gpu = new GpuRequirement { Type = GpuType.H100, Fallbacks = [GpuType.A100_80GB] } },
        };

        var json = KubernetesJson.Serialize(function);

        Assert.That(json, Does.Contain("\"fallbacks\":[\"A100-80GB\"]"));
        var back = KubernetesJson.Deserialize<GpuFunction>(json);
        Assert.That(back.Spec.Gpu!.Fallbacks, Is.EqualTo(new[] { GpuType.A100_80GB }));
        Assert.That(back.ApiVersion, Is.EqualTo("pilotlight.dev/v1alpha1"));
    }

    [Test]
    public void DefaultsMatchTheSchema()
    {
        var spec = KubernetesJson.Deserialize<GpuFunctionSpec>("""{"image":"x"}""");

        Assert.That(spec.Port, Is.EqualTo(8080));
        Assert.That(spec.Scaling.ScaledownWindow, Is.EqualTo("60s"));
        Assert.That(spec.Scaling.MaxConcurrency, Is.EqualTo(1));
        Assert.That(spec.Timeout, Is.EqualTo("300s"));
    }

    [Test]
    public void AnyGpuTypeNameReadsAndWritesAsTheStringItWas()
    {
        // Names outside the well-known ones are the catalog's business, not the API's: they read and write unchanged.
        var spec = KubernetesJson.Deserialize<GpuFunctionSpec>("""{"image":"x","gpu":{"type":"X1000","fallbacks":["a100-80gb","RTX-6000-Ada"]}}""");

        Assert.That(spec.Gpu!.Type.Name, Is.EqualTo("X1000"));
        Assert.That(spec.Gpu.Fallbacks, Is.EqualTo(new[] { GpuType.A100_80GB, GpuType.Rtx6000Ada }), "compared ignoring case");
        Assert.That(spec.Gpu.Fallbacks![0].Name, Is.EqualTo("a100-80gb"), "kept as written");
        Assert.That(KubernetesJson.Serialize(spec), Does.Contain("\"gpu\":{\"type\":\"X1000\"").And.Contain("\"fallbacks\":[\"a100-80gb\",\"RTX-6000-Ada\"]"));
    }

    [TestCase("""{"image":"x","gpu":{"type":""}}""")]
    [TestCase("""{"image":"x","gpu":{"type":7}}""")]
    [TestCase("""{"image":"x","gpu":{"type":null}}""")]
    public void AGpuTypeThatIsNoNameIsAReadError(string json)
    {
        Assert.That(() => KubernetesJson.Deserialize<GpuFunctionSpec>(json), Throws.InstanceOf<System.Text.Json.JsonException>());
    }

    [Test]
    public void GpuTypesCompareIgnoringCase()
    {
        Assert.That(new GpuType("h100"), Is.EqualTo(GpuType.H100));
        Assert.That(new GpuType("h100") == GpuType.H100, Is.True);
        Assert.That(new GpuType("h100").GetHashCode(), Is.EqualTo(GpuType.H100.GetHashCode()));
        Assert.That(GpuType.H100 != GpuType.H200, Is.True);
        Assert.That(default(GpuType).Name, Is.Empty);
    }

    [TestCase("H100", true)]
    [TestCase("A100-80GB", true)]
    [TestCase("RTX-6000-Ada", true)]
    [TestCase("gb200_nvl72.v2", true)]
    [TestCase("X", true)]
    [TestCase("", false)]
    [TestCase("-H100", false)]
    [TestCase("H100-", false)]
    [TestCase("H100 PCIe", false)]
    [TestCase("a100/80", false)]
    [TestCase("Ä100", false)]
    public void NameSyntaxIsTheSchemasPattern(string name, bool valid)
    {
        Assert.That(GpuType.IsValidName(name), Is.EqualTo(valid));
        Assert.That(System.Text.RegularExpressions.Regex.IsMatch(name, Pilotlight.Api.Schema.Patterns.GpuType), Is.EqualTo(valid), "the CRD pattern agrees");
    }

    [Test]
    public void NamesAreAtMostALabelValueLong()
    {
        Assert.That(GpuType.IsValidName(new string('a', GpuType.MaxLength)), Is.True);
        Assert.That(GpuType.IsValidName(new string('a', GpuType.MaxLength + 1)), Is.False);
    }
}
