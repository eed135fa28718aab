using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Pilotlight.Cli;

/// <summary>Where commands write: text through the invocation's writers (tests capture them), bytes to standard output.</summary>
internal static class CliOutput
{
    /// <summary><c>-o/--output</c> of the read commands: a table when absent.</summary>
    public static Option<string?> FormatOption()
    {
        var option = new Option<string?>("--output", "-o") { Description = "Output format: json or yaml (default: a table)." };
        option.AcceptOnlyFromAmong("json", "yaml");
        return option;
    }

    /// <summary>Standard output as bytes: the writer's stream when it has one (tests), else the process's.</summary>
    public static Stream Stdout(ParseResult result) => Bytes(result.InvocationConfiguration.Output, Console.OpenStandardOutput);

    /// <summary>Standard error as bytes.</summary>
    public static Stream Stderr(ParseResult result) => Bytes(result.InvocationConfiguration.Error, Console.OpenStandardError);

    private static Stream Bytes(TextWriter writer, Func<Stream> process)
    {
        if (writer is StreamWriter { BaseStream: var stream } streamWriter)
        {
            streamWriter.Flush();
            return stream;
        }

        return writer == Console.Out || writer == Console.Error ? process() : new TextWriterStream(writer);
    }

    /// <summary>A Spectre console over the invocation's output, wide enough that tables do not wrap in captured output.</summary>
    public static IAnsiConsole Terminal(ParseResult result)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(result.InvocationConfiguration.Output),
            Ansi = result.InvocationConfiguration.Output == Console.Out ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = result.InvocationConfiguration.Output == Console.Out ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (result.InvocationConfiguration.Output != Console.Out)
        {
            console.Profile.Width = 240;
        }

        return console;
    }

    /// <summary>Prints a JSON tree as JSON or YAML.</summary>
    public static void Print(ParseResult result, JsonNode node, string format)
    {
        var output = result.InvocationConfiguration.Output;
        if (format == "json")
        {
            output.WriteLine(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        output.Write(ToYaml(node));
    }

    /// <summary>A JSON tree as YAML text (strings that YAML would read as something else are quoted).</summary>
    public static string ToYaml(JsonNode node)
    {
        var writer = new StringWriter(CultureInfo.InvariantCulture);
        new YamlStream(new YamlDocument(ToYamlNode(node))).Save(writer, assignAnchors: false);
        var text = writer.ToString();
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    private static YamlNode ToYamlNode(JsonNode? node) => node switch
    {
        JsonObject o => new YamlMappingNode(o.Select(p => new KeyValuePair<YamlNode, YamlNode>(new YamlScalarNode(p.Key), ToYamlNode(p.Value)))),
        JsonArray a => new YamlSequenceNode(a.Select(ToYamlNode)),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => Quoted(v.GetValue<string>()),
        JsonValue v => new YamlScalarNode(v.ToJsonString()),
        _ => new YamlScalarNode("null"),
    };

    private static YamlScalarNode Quoted(string s)
    {
        var ambiguous = s.Length == 0 || s is "true" or "false" or "null" or "~" or "yes" or "no" or "on" or "off"
            || double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _)
            || s.IndexOfAny([':', '#', '\n', '"', '\'', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '%', '@', '`']) >= 0
            || char.IsWhiteSpace(s[0]) || char.IsWhiteSpace(s[^1]) || s[0] == '-' || s[0] == '?';
        return new YamlScalarNode(s) { Style = ambiguous ? ScalarStyle.DoubleQuoted : ScalarStyle.Plain };
    }

    /// <summary>An age like kubectl's: 5s, 3m, 2h, 4d.</summary>
    public static string Age(DateTimeOffset? at, DateTimeOffset now)
    {
        if (at is not { } t)
        {
            return "-";
        }

        var d = now - t;
        var future = d < TimeSpan.Zero;
        d = d.Duration();
        var text = d.TotalSeconds < 120 ? $"{(int)d.TotalSeconds}s" : d.TotalMinutes < 120 ? $"{(int)d.TotalMinutes}m" : d.TotalHours < 48 ? $"{(int)d.TotalHours}h" : $"{(int)d.TotalDays}d";
        return future ? "in " + text : text;
    }

    /// <summary>A string field of a JSON tree by path, or null.</summary>
    public static string? Text(JsonNode? node, params string[] path)
    {
        foreach (var p in path)
        {
            node = node is JsonObject o ? o[p] : null;
        }

        return node is JsonValue v ? v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString() : null;
    }

    /// <summary>A time field of a JSON tree by path, or null.</summary>
    public static DateTimeOffset? Time(JsonNode? node, params string[] path) =>
        Text(node, path) is { } s && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null;

    /// <summary>Text through a TextWriter, as a write-only stream (UTF-8).</summary>
    private sealed class TextWriterStream(TextWriter writer) : Stream
    {
        private readonly System.Text.Decoder _decoder = System.Text.Encoding.UTF8.GetDecoder();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => writer.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            var chars = new char[_decoder.GetCharCount(buffer, offset, count)];
            _decoder.GetChars(buffer, offset, count, chars, 0);
            writer.Write(chars);
        }
    }
}
