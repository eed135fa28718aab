using System.Globalization;

namespace Pilotlight.Client;

/// <summary>Durations as kubectl takes them (Go's syntax): <c>90s</c>, <c>5m</c>, <c>1h30m</c>, <c>250ms</c>.</summary>
public static class GoDuration
{
    /// <summary>Parses <paramref name="text"/>; false when it is not a non-negative Go duration.</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        if (text == "0")
        {
            return true;
        }

        var total = 0.0;
        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }

            if (i == start || !double.TryParse(text.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            var unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }

            double? unitMs = text[unitStart..i] switch
            {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => null,
            };
            if (unitMs is null)
            {
                return false;
            }

            total += value * unitMs.Value;
        }

        duration = TimeSpan.FromMilliseconds(total);
        return true;
    }
}
