using System.Globalization;

namespace Pilotlight.Api.Schema;

/// <summary>Reads the duration strings the schemas allow (<see cref="Patterns.Duration"/>), e.g. <c>1h30m</c>.</summary>
/// <remarks>
/// A scanner, not a regular expression: the runtime shim parses these, and System.Text.RegularExpressions is a
/// quarter of a megabyte of its NativeAOT image (every function and sandbox pod carries it). It accepts exactly the
/// language of <see cref="Patterns.Duration"/>; the tests hold the two to the same answers.
/// </remarks>
public static class DurationString
{
    /// <summary>Parses a duration; false for text the schema would have rejected.</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var total = TimeSpan.Zero;
        var at = 0;
        try
        {
            while (at < text.Length)
            {
                // One part: digits, optionally '.' and digits, then a unit.
                var start = at;
                at = SkipDigits(text, at);
                if (at == start)
                {
                    return false;
                }

                if (at < text.Length && text[at] == '.')
                {
                    var fraction = ++at;
                    at = SkipDigits(text, at);
                    if (at == fraction)
                    {
                        return false;
                    }
                }

                var amount = double.Parse(text.AsSpan(start, at - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
                if (at >= text.Length)
                {
                    return false;
                }

                switch (text[at])
                {
                    case 'm' when at + 1 < text.Length && text[at + 1] == 's':
                        total += TimeSpan.FromMilliseconds(amount);
                        at += 2;
                        break;
                    case 's':
                        total += TimeSpan.FromSeconds(amount);
                        at++;
                        break;
                    case 'm':
                        total += TimeSpan.FromMinutes(amount);
                        at++;
                        break;
                    case 'h':
                        total += TimeSpan.FromHours(amount);
                        at++;
                        break;
                    default:
                        return false;
                }
            }
        }
        catch (OverflowException)
        {
            // Longer than TimeSpan holds: not a duration anything here can wait for.
            return false;
        }

        duration = total;
        return true;
    }

    /// <summary>Parses a duration, throwing <see cref="FormatException"/> naming the text when it is not one.</summary>
    public static TimeSpan Parse(string text) =>
        TryParse(text, out var duration) ? duration : throw new FormatException($"'{text}' is not a duration such as 60s, 5m or 1h30m");

    private static int SkipDigits(string text, int at)
    {
        while (at < text.Length && char.IsAsciiDigit(text[at]))
        {
            at++;
        }

        return at;
    }
}
