using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>The body of <c>POST /exec</c>.</summary>
public sealed record ExecRequest
{
    /// <summary>The program and its arguments; the program is found on PATH unless it contains '/'. No shell is involved.</summary>
    public IReadOnlyList<string?>? Argv { get; init; }

    /// <summary>Variables added to the shim's environment (less its <c>PILOTLIGHT_*</c> ones); a null value unsets one.</summary>
    public IReadOnlyDictionary<string, string?>? Env { get; init; }

    /// <summary>Directory to run in, relative to the workspace; the workspace when absent.</summary>
    public string? WorkingDir { get; init; }

    /// <summary>Text fed to standard input (UTF-8), which is then closed; closed at once when absent.</summary>
    public string? Stdin { get; init; }

    /// <summary>Seconds the command may run before its process tree is killed; at most 3600.</summary>
    public double? TimeoutSeconds { get; init; }
}

/// <summary>The last line of an exec's output: how it ended.</summary>
/// <param name="Exit">The exit code; null when the command was killed for running too long.</param>
/// <param name="TimedOut">True when the timeout killed the command.</param>
/// <param name="DurationMs">Milliseconds from start to exit.</param>
public sealed record ExecResult(int? Exit, bool TimedOut, long DurationMs);

/// <summary>Every error answer of the sandbox API.</summary>
/// <param name="Error">What was wrong, in one line.</param>
public sealed record SandboxError(string Error);

/// <summary>The answer to <c>PUT /files</c>.</summary>
/// <param name="Path">The written file, relative to the workspace.</param>
/// <param name="Bytes">Its size.</param>
public sealed record FileWritten(string Path, long Bytes);

/// <summary>The answer to <c>PUT /archive</c>.</summary>
/// <param name="Path">The directory extracted into, relative to the workspace.</param>
/// <param name="Entries">Entries extracted (files, directories, links).</param>
/// <param name="Bytes">Bytes of file contents written.</param>
public sealed record ArchiveExtracted(string Path, int Entries, long Bytes);

/// <summary>One entry of <c>GET /files/list</c>.</summary>
/// <param name="Name">The entry's name.</param>
/// <param name="Type"><c>file</c>, <c>dir</c> or <c>link</c> (a symbolic link, not followed).</param>
/// <param name="Size">Bytes for a file, the length of the target for a link, 0 for a directory.</param>
public sealed record FileEntry(string Name, string Type, long Size);

/// <summary>The answer to <c>GET /files/list</c>.</summary>
/// <param name="Entries">The directory's entries sorted by name (ordinal).</param>
public sealed record FileList(IReadOnlyList<FileEntry> Entries);

/// <summary>The answer to <c>GET /activity</c>.</summary>
/// <param name="LastActivity">When an exec started or finished, stdin was fed or a file was touched; RFC 3339, UTC.</param>
/// <param name="Running">Execs in flight.</param>
public sealed record ActivityReport(string LastActivity, int Running);

/// <summary>
/// A text frame a client sends on <c>GET /exec/ws</c>: <c>start</c> first (command, tty, rows, cols, env, cwd,
/// timeoutSeconds), then any of <c>resize</c> (rows, cols), <c>signal</c> (name: SIGINT, SIGTERM, SIGKILL, ...) and <c>eof</c>.
/// </summary>
public sealed record ExecSocketMessage
{
    /// <summary>start, resize, signal or eof.</summary>
    public string? Type { get; init; }

    /// <summary>start: the program and its arguments, as <see cref="ExecRequest.Argv"/>.</summary>
    public IReadOnlyList<string?>? Command { get; init; }

    /// <summary>start: run on a pseudo-terminal (stdout and stderr then arrive as one stream, 1).</summary>
    public bool Tty { get; init; }

    /// <summary>start and resize: the terminal's rows.</summary>
    public int? Rows { get; init; }

    /// <summary>start and resize: the terminal's columns.</summary>
    public int? Cols { get; init; }

    /// <summary>start: as <see cref="ExecRequest.Env"/>.</summary>
    public IReadOnlyDictionary<string, string?>? Env { get; init; }

    /// <summary>start: as <see cref="ExecRequest.WorkingDir"/>.</summary>
    public string? Cwd { get; init; }

    /// <summary>start: as <see cref="ExecRequest.TimeoutSeconds"/>.</summary>
    public double? TimeoutSeconds { get; init; }

    /// <summary>signal: the signal's name.</summary>
    public string? Name { get; init; }
}

/// <summary>The last text frame of <c>GET /exec/ws</c> when the command ran: <c>{"type":"exit","code":n,"timedOut":false}</c>.</summary>
/// <param name="Type">Always exit.</param>
/// <param name="Code">The exit code; 128 + the signal when a signal ended it.</param>
/// <param name="TimedOut">True when the exec's timeout killed it.</param>
public sealed record ExecSocketExit(string Type, int Code, bool TimedOut);

/// <summary>The last text frame of <c>GET /exec/ws</c> when the exec could not run: <c>{"type":"error","message":"..."}</c>.</summary>
/// <param name="Type">Always error.</param>
/// <param name="Message">What was wrong, in one line.</param>
public sealed record ExecSocketError(string Type, string Message);

/// <summary>Source-generated JSON for everything the shim reads and writes (camelCase), so it can be published with NativeAOT.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ExecRequest))]
[JsonSerializable(typeof(ExecResult))]
[JsonSerializable(typeof(ExecSocketMessage))]
[JsonSerializable(typeof(ExecSocketExit))]
[JsonSerializable(typeof(ExecSocketError))]
[JsonSerializable(typeof(SandboxError))]
[JsonSerializable(typeof(FileWritten))]
[JsonSerializable(typeof(FileList))]
[JsonSerializable(typeof(ArchiveExtracted))]
[JsonSerializable(typeof(ActivityReport))]
[JsonSerializable(typeof(ShimStats))]
[JsonSerializable(typeof(string[]))]
internal sealed partial class ShimJson : JsonSerializerContext
{
    /// <summary>
    /// The same, writing quotes, apostrophes and non-ASCII text as they are rather than as <c>\uXXXX</c>: the
    /// answers are JSON, never embedded in HTML, and error messages quote paths.
    /// </summary>
    public static ShimJson Plain { get; } = new(new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
