using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>Durations as people write them on a command line: 90s, 5m, 1h, 2d (or 00:01:30).</summary>
internal static class Durations
{
    /// <summary>A duration option with that syntax.</summary>
    public static Option<TimeSpan?> Option(string name, string description, TimeSpan? defaultValue = null) => new(name)
    {
        Description = description,
        CustomParser = Parse,
        DefaultValueFactory = defaultValue is { } d ? _ => d : null!,
    };

    private static TimeSpan? Parse(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (TryParse(text, out var value))
        {
            return value;
        }

        result.AddError($"'{text}' is not a duration (write 90s, 5m, 1h or 2d).");
        return null;
    }

    /// <summary>Parses 90s / 5m / 1.5h / 2d / 500ms, or a TimeSpan (hh:mm:ss).</summary>
    public static bool TryParse(string text, out TimeSpan value)
    {
        text = text.Trim();
        // Days, which Go's syntax lacks, then Go's (90s, 5m, 1h30m), then hh:mm:ss.
        if (text.EndsWith('d')
            && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var days) && days >= 0)
        {
            value = TimeSpan.FromDays(days);
            return true;
        }

        if (GoDuration.TryParse(text, out value))
        {
            return true;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero;
    }
}
