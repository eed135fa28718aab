using System.Collections;
using System.Text;
using System.Text.Json;

namespace Pilotlight.Metering;

/// <summary>
/// The meter's log on stderr, as the operator's own log settings ask (it passes <c>PILOTLIGHT_LOG_FORMAT</c> and
/// <c>PILOTLIGHT_LOG_LEVEL</c> to its sidecars): one plain line per entry, or one JSON object per line in the shape of
/// the .NET JSON console formatter the operator, gateway and shim write (<c>Timestamp</c>, <c>LogLevel</c>,
/// <c>Category</c>, <c>Message</c>), so one log pipeline parses them all. The meter writes a handful of lines in its
/// life; a line holding <see cref="WarningMark"/> is a warning, every other one information. A writer, so that the
/// parts that log need not know which form it takes.
/// </summary>
public sealed class MeterLog : TextWriter
{
    /// <summary>What marks a line as a warning (e.g. <c>metering: warning: checkpoint not written</c>).</summary>
    public const string WarningMark = "warning: ";

    private const string Category = "Pilotlight.Metering";
    private readonly TextWriter _inner;
    private readonly TimeProvider _time;
    private readonly StringBuilder _line = new();
    private readonly Lock _gate = new();

    private MeterLog(TextWriter inner, bool json, Level least, TimeProvider time)
    {
        _inner = inner;
        Json = json;
        Least = least;
        _time = time;
    }

    /// <summary>The levels of the meter's lines, least severe first.</summary>
    public enum Level
    {
        /// <summary>What it does (resumed from a checkpoint, where it reads GPU use from).</summary>
        Information,

        /// <summary>What it could not do and went on without (a checkpoint not written, GPU use not metered).</summary>
        Warning,

        /// <summary>Why it stopped at start (invalid configuration): written at every level.</summary>
        Critical,
    }

    /// <summary>Whether entries are JSON objects.</summary>
    public bool Json { get; }

    /// <summary>The least severe level written.</summary>
    public Level Least { get; }

    /// <inheritdoc />
    public override Encoding Encoding => _inner.Encoding;

    /// <summary>
    /// The log <paramref name="env"/> asks for, onto <paramref name="inner"/>; or, for a bad value, a plain-text log
    /// and a one-line error naming the variable.
    /// </summary>
    public static (MeterLog Log, string? Error) FromEnvironment(IDictionary env, TextWriter inner, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(env);
        string? Get(string name) => env[name] is string { Length: > 0 } v ? v.Trim() : null;
        var format = Get("PILOTLIGHT_LOG_FORMAT");
        var level = Get("PILOTLIGHT_LOG_LEVEL");
        bool? json = format switch
        {
            null or "text" => false,
            "json" => true,
            _ => null,
        };
        if (json is null)
        {
            return (new MeterLog(inner, false, Level.Information, time), $"PILOTLIGHT_LOG_FORMAT must be text or json, not '{format}'");
        }

        // The names of Microsoft.Extensions.Logging's levels, as the operator's --log-level takes them.
        Level? least = level?.ToLowerInvariant() switch
        {
            null or "trace" or "debug" or "information" => Level.Information,
            "warning" => Level.Warning,
            // The meter's only lines above warnings are why it could not start.
            "error" or "critical" => Level.Critical,
            _ => null,
        };
        return least is null
            ? (new MeterLog(inner, json.Value, Level.Information, time),
                $"PILOTLIGHT_LOG_LEVEL must be one of Trace, Debug, Information, Warning, Error, Critical, not '{level}'")
            : (new MeterLog(inner, json.Value, least.Value, time), null);
    }

    /// <summary>A plain-text log of every level onto <paramref name="inner"/>.</summary>
    public static MeterLog Text(TextWriter inner) => new(inner, false, Level.Information, TimeProvider.System);

    /// <summary>Writes <paramref name="message"/> as an entry of <paramref name="level"/>, if that level is written.</summary>
    public void Write(Level level, string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (level < Least)
        {
            return;
        }

        lock (_gate)
        {
            if (!Json)
            {
                _inner.WriteLine(message);
                _inner.Flush();
                return;
            }

            using var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("Timestamp", _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture));
                json.WriteNumber("EventId", 0);
                json.WriteString("LogLevel", level.ToString());
                json.WriteString("Category", Category);
                json.WriteString("Message", message);
                json.WriteEndObject();
            }

            _inner.WriteLine(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
            _inner.Flush();
        }
    }

    /// <inheritdoc />
    public override void Write(char value)
    {
        lock (_gate)
        {
            if (value != '\n')
            {
                _line.Append(value);
                return;
            }
        }

        WriteLine();
    }

    /// <inheritdoc />
    public override void Write(string? value)
    {
        foreach (var c in value ?? "")
        {
            Write(c);
        }
    }

    /// <inheritdoc />
    public override void WriteLine(string? value)
    {
        lock (_gate)
        {
            _line.Append(value);
        }

        WriteLine();
    }

    /// <inheritdoc />
    public override void WriteLine()
    {
        string text;
        lock (_gate)
        {
            text = _line.ToString().TrimEnd('\r');
            _line.Clear();
        }

        Write(text.Contains(WarningMark, StringComparison.Ordinal) ? Level.Warning : Level.Information, text);
    }
}
