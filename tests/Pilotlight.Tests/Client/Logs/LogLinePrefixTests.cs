using Pilotlight.Client.Logs;

namespace Pilotlight.Tests.Client.Logs;

public class LogLinePrefixTests
{
    private static readonly PodLogLine Line = new("echo-7f9c", "function", "loaded in 3.1s");

    [Test]
    public void Plain_lines_carry_the_pod_in_brackets()
    {
        Assert.That(LogLinePrefix.Format(Line, colour: false), Is.EqualTo("[echo-7f9c] loaded in 3.1s"));
        Assert.That(LogLinePrefix.Format(Line, colour: false, showContainer: true), Is.EqualTo("[echo-7f9c/function] loaded in 3.1s"));
    }

    [Test]
    public void On_a_terminal_the_prefix_is_coloured_and_the_text_is_not()
    {
        var colour = LogLinePrefix.ColourOf("echo-7f9c");

        Assert.That(LogLinePrefix.Format(Line, colour: true), Is.EqualTo($"\u001b[{colour}m[echo-7f9c]\u001b[0m loaded in 3.1s"));
    }

    [Test]
    public void A_pod_keeps_its_colour_and_pods_get_different_ones()
    {
        var pods = Enumerable.Range(0, 20).Select(i => $"echo-{i}").ToList();

        Assert.That(pods.Select(LogLinePrefix.ColourOf), Is.EqualTo(pods.Select(LogLinePrefix.ColourOf)));
        Assert.That(pods.Select(LogLinePrefix.ColourOf).Distinct().Count(), Is.GreaterThan(3));
    }
}
