using System.Text.RegularExpressions;
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

    /// <summary>The scanner accepts exactly what the schema's pattern accepts (the API server checks the pattern).</summary>
    [TestCase("1h"), TestCase("1.h"), TestCase(".5s"), TestCase("1.5.5s"), TestCase("5ms5m"), TestCase("5sm"), TestCase("5mss")]
    [TestCase("1s "), TestCase(" 1s"), TestCase("1S"), TestCase("0s"), TestCase("00.000ms"), TestCase("1h1h1h"), TestCase("m")]
    [TestCase("1.0"), TestCase("10msh"), TestCase("1e3s"), TestCase("+1s"), TestCase("1,5s"), TestCase("\u0661s"), TestCase("7hm")]
    public void AgreesWithTheSchemaPattern(string text)
    {
        text = Regex.Unescape(text);
        Assert.That(DurationString.TryParse(text, out _), Is.EqualTo(Regex.IsMatch(text, Patterns.Duration)), text);
    }

    [Test]
    public void AgreesWithTheSchemaPatternOnRandomText()
    {
        var random = new Random(19);
        const string alphabet = "0123456789.mshd ";
        for (var i = 0; i < 20_000; i++)
        {
            var text = new string([.. Enumerable.Range(0, random.Next(1, 9)).Select(_ => alphabet[random.Next(alphabet.Length)])]);
            Assert.That(DurationString.TryParse(text, out _), Is.EqualTo(Regex.IsMatch(text, Patterns.Duration)), text);
        }
    }
}
