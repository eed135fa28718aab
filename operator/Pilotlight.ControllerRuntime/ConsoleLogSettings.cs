using System.Text.Json;
using Microsoft.Extensions.Logging;

// In the shim, a namespace of its own: its tests see the shim's internals and the controller runtime's public type.
#if PILOTLIGHT_LINKED
namespace Pilotlight.RuntimeShim.Linked;
#else
namespace Pilotlight.ControllerRuntime;
#endif

/// <summary>
/// How a component writes its log to stdout: <c>--log-format</c> and <c>--log-level</c> of the operator and the gateway,
/// <c>PILOTLIGHT_LOG_FORMAT</c> and <c>PILOTLIGHT_LOG_LEVEL</c> of the runtime shim and sandbox agent (the operator gives
/// its sidecars its own settings; this file is compiled into the shim too, internal there: PILOTLIGHT_LINKED).
/// </summary>
/// <param name="Json">One JSON object per line (the .NET JSON console formatter) instead of one plain line per entry.</param>
/// <param name="Level">The least severe level written.</param>
#if PILOTLIGHT_LINKED
internal
#else
public
#endif
    sealed record ConsoleLogSettings(bool Json = false, LogLevel Level = LogLevel.Information)
{
    /// <summary>
    /// The settings of <paramref name="format"/> (<c>text</c> or <c>json</c>; null: text) and <paramref name="level"/>
    /// (a <see cref="LogLevel"/> name other than None; null: Information), or an error naming the flag or variable
    /// (<paramref name="formatName"/>, <paramref name="levelName"/>).
    /// </summary>
    public static (ConsoleLogSettings? Settings, string? Error) Parse(string? format, string? level,
        string formatName = "--log-format", string levelName = "--log-level")
    {
        bool json;
        switch (format)
        {
            case null or "text":
                json = false;
                break;
            case "json":
                json = true;
                break;
            default:
                return (null, $"{formatName} must be text or json, not '{format}'");
        }

        var parsed = LogLevel.Information;
        if (level is not null && !(Enum.TryParse(level, ignoreCase: true, out parsed) && Enum.IsDefined(parsed) && parsed != LogLevel.None
            && !int.TryParse(level, out _)))
        {
            return (null, $"{levelName} must be one of Trace, Debug, Information, Warning, Error, Critical, not '{level}'");
        }

        return (new ConsoleLogSettings(json, parsed), null);
    }

    /// <summary>
    /// The environment that gives a sidecar (shim, agent, meter) these settings: nothing for the defaults, so that pod
    /// specs stay as they were unless someone asked.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> SidecarEnvironment() =>
    [
        .. Json ? [new KeyValuePair<string, string>(FormatVariable, "json")] : Array.Empty<KeyValuePair<string, string>>(),
        .. Level != LogLevel.Information ? [new KeyValuePair<string, string>(LevelVariable, Level.ToString())] : Array.Empty<KeyValuePair<string, string>>(),
    ];

    /// <summary>The sidecars' variable for the format (<c>text</c> or <c>json</c>).</summary>
    public const string FormatVariable = "PILOTLIGHT_LOG_FORMAT";

    /// <summary>The sidecars' variable for the least severe level written.</summary>
    public const string LevelVariable = "PILOTLIGHT_LOG_LEVEL";

    /// <summary>Puts the console logger these settings describe (and only it) on <paramref name="logging"/>.</summary>
    public void Apply(ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.ClearProviders();
        logging.SetMinimumLevel(Level);
        if (Json)
        {
            // Not indented: a log shipper reads one entry per line (an exception's stack trace is escaped inside it).
            logging.AddJsonConsole(o =>
            {
                o.JsonWriterOptions = new JsonWriterOptions { Indented = false };
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        }
        else
        {
            logging.AddSimpleConsole(o => o.SingleLine = true);
        }
    }
}
