using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public class RequestBodyLimitTests
{
    [TestCase("100Mi", 100L * 1024 * 1024)]
    [TestCase("64Ki", 64L * 1024)]
    [TestCase("1G", 1_000_000_000L)]
    [TestCase("1048576", 1_048_576L)]
    public void Sizes_are_kubernetes_quantities(string text, long bytes)
    {
        Assert.That(RequestBodyLimit.TryParse(text, out var parsed), Is.True);
        Assert.That(parsed, Is.EqualTo(bytes));
    }

    [TestCase("")]
    [TestCase("0")]
    [TestCase("-1Mi")]
    [TestCase("lots")]
    [TestCase("0.5")]
    public void Nonsense_and_sizes_under_a_byte_are_refused(string text) =>
        Assert.That(RequestBodyLimit.TryParse(text, out _), Is.False);

    [Test]
    public void The_default_is_100_MiB() =>
        Assert.That(RequestBodyLimit.Describe(new GatewayOptions().MaxRequestBodySize), Is.EqualTo("100 MiB"));
}
