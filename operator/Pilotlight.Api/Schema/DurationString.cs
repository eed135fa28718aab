using System.Globalization;
using System.Text.RegularExpressions;

namespace Pilotlight.Api.Schema;

/// <summary>Reads the duration strings the schemas allow (<see cref="Patterns.Duration"/>), e.g. <c>1h30m</c>.</summary>
public static partial class DurationString
{
    /// <summary>Parses a duration; false for text the schema would have rejected.</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text) || !Whole().IsMatch(text))
        {
            return false;
        }

        try
        {
            foreach (Match part in Part().Matches(text))
            {
                var amount = double.Parse(part.Groups["amount"].Value, CultureInfo.InvariantCulture);
                duration += part.Groups["unit"].Value switch
                {
                    "ms" => TimeSpan.FromMilliseconds(amount),
                    "s" => TimeSpan.FromSeconds(amount),
                    "m" => TimeSpan.FromMinutes(amount),
                    _ => TimeSpan.FromHours(amount),
                };
            }
        }
        catch (OverflowException)
        {
            // Longer than TimeSpan holds: not a duration anything here can wait for.
            duration = TimeSpan.Zero;
            return false;
        }

        return true;
    }

    /// <summary>Parses a duration, throwing <see cref="FormatException"/> naming the text when it is not one.</summary>
    public static TimeSpan Parse(string text) =>
        TryParse(text, out var duration) ? duration : throw new FormatException($"'{text}' is not a duration such as 60s, 5m or 1h30m");

    [GeneratedRegex(Patterns.Duration)]
    private static partial Regex Whole();

    [GeneratedRegex(@"(?<amount>[0-9]+(\.[0-9]+)?)(?<unit>ms|s|m|h)")]
    private static partial Regex Part();
}
