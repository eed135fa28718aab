using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Pilotlight.Client;

/// <summary>What one frame from a sandbox's interactive exec (<c>exec/ws</c>) says.</summary>
/// <param name="Kind">Data, Exit or Error.</param>
/// <param name="Stream">For data: 1 stdout (everything, on a terminal), 2 stderr.</param>
/// <param name="Data">For data: the bytes.</param>
/// <param name="Code">For exit: the exit code (128 + signal when a signal ended the command).</param>
/// <param name="Message">For error: why the command could not run.</param>
public sealed record ExecSocketEvent(ExecSocketEventKind Kind, byte Stream = 0, byte[]? Data = null, int Code = 0, string? Message = null);

/// <summary>The kinds of <see cref="ExecSocketEvent"/>.</summary>
public enum ExecSocketEventKind
{
    /// <summary>Output.</summary>
    Data,

    /// <summary>The command ended; the last frame.</summary>
    Exit,

    /// <summary>The command could not run; the last frame.</summary>
    Error,
}

/// <summary>
/// The frames of a sandbox's interactive exec: text frames are JSON control messages (<c>start</c>, <c>resize</c>,
/// <c>signal</c>, <c>eof</c> from the client; <c>exit</c> or <c>error</c> from the agent, last), binary frames are
/// data whose first byte is the stream (0 stdin, 1 stdout, 2 stderr).
/// </summary>
public static class ExecSocketProtocol
{
    /// <summary>Stream byte of standard input.</summary>
    public const byte Stdin = 0;

    /// <summary>Stream byte of standard output (and of all output on a terminal).</summary>
    public const byte Stdout = 1;

    /// <summary>Stream byte of standard error.</summary>
    public const byte Stderr = 2;

    /// <summary>The first frame: what to run, and how.</summary>
    public static byte[] Start(IReadOnlyList<string> command, bool tty, int rows = 24, int cols = 80,
        IReadOnlyDictionary<string, string>? env = null, string? cwd = null, double? timeoutSeconds = null) =>
        Json(w =>
        {
            w.WriteString("type", "start");
            w.WriteStartArray("command");
            foreach (var argument in command)
            {
                w.WriteStringValue(argument);
            }

            w.WriteEndArray();
            w.WriteBoolean("tty", tty);
            w.WriteNumber("rows", rows);
            w.WriteNumber("cols", cols);
            if (env is not null)
            {
                w.WriteStartObject("env");
                foreach (var (name, value) in env)
                {
                    w.WriteString(name, value);
                }

                w.WriteEndObject();
            }

            if (cwd is not null)
            {
                w.WriteString("cwd", cwd);
            }

            if (timeoutSeconds is { } seconds)
            {
                w.WriteNumber("timeoutSeconds", seconds);
            }
        });

    /// <summary>The terminal's new size.</summary>
    public static byte[] Resize(int rows, int cols) => Json(w =>
    {
        w.WriteString("type", "resize");
        w.WriteNumber("rows", rows);
        w.WriteNumber("cols", cols);
    });

    /// <summary>A signal for the command (its process group on a terminal): SIGINT, SIGTERM, SIGKILL, ...</summary>
    public static byte[] Signal(string name) => Json(w =>
    {
        w.WriteString("type", "signal");
        w.WriteString("name", name);
    });

    /// <summary>End of input (on a terminal: ^D).</summary>
    public static byte[] Eof() => Json(w => w.WriteString("type", "eof"));

    /// <summary>A data frame for <paramref name="stream"/>.</summary>
    public static byte[] Data(byte stream, ReadOnlySpan<byte> data)
    {
        var frame = new byte[data.Length + 1];
        frame[0] = stream;
        data.CopyTo(frame.AsSpan(1));
        return frame;
    }

    /// <summary>Reads one whole frame; null when the peer closed without a last frame.</summary>
    /// <exception cref="InvalidDataException">The frame is not one this protocol has.</exception>
    public static async Task<ExecSocketEvent?> ReceiveAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.GetMemory(16 * 1024), cancellationToken).ConfigureAwait(false);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            buffer.Advance(result.Count);
            if (result.EndOfMessage)
            {
                return Decode(result.MessageType == WebSocketMessageType.Binary, buffer.WrittenSpan);
            }
        }
    }

    /// <summary>Decodes one whole frame from the agent.</summary>
    /// <exception cref="InvalidDataException">The frame is not one this protocol has.</exception>
    public static ExecSocketEvent Decode(bool binary, ReadOnlySpan<byte> frame)
    {
        if (binary)
        {
            return frame.Length == 0
                ? throw new InvalidDataException("empty data frame")
                : new ExecSocketEvent(ExecSocketEventKind.Data, frame[0], frame[1..].ToArray());
        }

        try
        {
            using var json = JsonDocument.Parse(frame.ToArray());
            var root = json.RootElement;
            return root.GetProperty("type").GetString() switch
            {
                "exit" => new ExecSocketEvent(ExecSocketEventKind.Exit, Code: root.GetProperty("code").GetInt32()),
                "error" => new ExecSocketEvent(ExecSocketEventKind.Error, Message: root.TryGetProperty("message", out var m) ? m.GetString() : "unknown error"),
                var other => throw new InvalidDataException($"unknown frame type '{other}'"),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"invalid control frame: {Encoding.UTF8.GetString(frame)}", e);
        }
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
