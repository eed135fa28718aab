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

    [TestCase("A100-80GB", GpuType.A100_80GB)]
    [TestCase("h100", GpuType.H100)]
    public void ParsesWireNames(string name, GpuType expected)
    {
        Assert.That(GpuTypeNames.TryParse(name, out var type), Is.True);
        Assert.That(type, Is.EqualTo(expected));
        Assert.That(GpuTypeNames.TryParse("V100", out _), Is.False);
    }
}
