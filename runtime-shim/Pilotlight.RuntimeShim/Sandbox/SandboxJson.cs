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

/// <summary>Source-generated JSON for everything the shim reads and writes (camelCase), so it can be published with NativeAOT.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ExecRequest))]
[JsonSerializable(typeof(ExecResult))]
[JsonSerializable(typeof(SandboxError))]
[JsonSerializable(typeof(FileWritten))]
[JsonSerializable(typeof(FileList))]
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
