using Pilotlight.Api.Schema;

namespace Pilotlight.Tests.Api;

public sealed class DurationStringTests
{
    [TestCase("60s", 60_000)]
    [TestCase("5m", 300_000)]
    [TestCase("1h30m", 5_400_000)]
    [TestCase("250ms", 250)]
    [TestCase("1.5s", 1_500)]
    [TestCase("1m30s500ms", 90_500)]
    public void ParsesWhatTheSchemaAllows(string text, int milliseconds)
    {
        Assert.That(DurationString.Parse(text), Is.EqualTo(TimeSpan.FromMilliseconds(milliseconds)));
    }

    [TestCase("")]
    [TestCase("5")]
    [TestCase("5 minutes")]
    [TestCase("-1s")]
    [TestCase("1d")]
    [TestCase("99999999999999999h")]
    public void RefusesWhatTheSchemaRejects(string text)
    {
        Assert.That(DurationString.TryParse(text, out _), Is.False);
        Assert.That(() => DurationString.Parse(text), Throws.InstanceOf<FormatException>().With.Message.Contains(text));
    }
}
