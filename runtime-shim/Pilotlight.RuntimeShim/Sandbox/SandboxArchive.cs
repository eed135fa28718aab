using System.Formats.Tar;
using Microsoft.AspNetCore.Http.Features;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// <c>GET|PUT /archive?path=DIR</c>: a workspace directory as a tar stream, both ways, so a copy keeps permission
/// bits, symbolic links and empty directories (the files API moves one file's bytes at a time).
/// <para>
/// GET streams the directory's contents (entry names relative to it; directories end in '/') as it walks them,
/// without following symbolic links: a link is archived as a link, a hard-linked file as a file, and FIFOs, sockets
/// and devices are left out. PUT extracts a tar from the request body into the directory (created when missing).
/// Every entry goes through <see cref="WorkspacePaths"/> as a files API path would, and more: a name that is
/// absolute or has a '..' component is refused, and so is an entry whose path leads outside the workspace through
/// a link already there (an earlier entry of the same archive included). A file is written to a temporary file and
/// renamed onto the entry, replacing a link there rather than writing through it; a hard link is extracted as a
/// copy of its target, which must be a file inside the workspace; a link may point anywhere (code in the sandbox
/// can make such links itself), but nothing is ever written or read through one that leads out. Permission bits
/// (setuid, setgid and sticky dropped) and modification times are kept; owners are not (everything belongs to the
/// agent's user). Devices and FIFOs are refused. The first refused entry ends the request with 400; entries
/// extracted before it stay.
/// </para>
/// </summary>
internal sealed class SandboxArchive(SandboxOptions options, WorkspacePaths paths, SandboxActivity activity, ILogger<SandboxArchive> log)
{
    private const UnixFileMode PermissionBits = (UnixFileMode)0x1FF;
    private const int CopyBuffer = 64 * 1024;

    public async Task ReadAsync(HttpContext context)
    {
        if (!TryDirectory(context, out var dir, out var error))
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, error);
            return;
        }

        activity.Touch();
        if (!Directory.Exists(dir.Full))
        {
            var exists = File.Exists(dir.Full);
            await SandboxAgent.Error(context, exists ? StatusCodes.Status409Conflict : StatusCodes.Status404NotFound,
                exists ? $"'{dir.Relative}' is not a directory; read a file with /files" : $"'{dir.Relative}' does not exist");
            return;
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/x-tar";
        context.Response.Headers.CacheControl = "no-store";
        try
        {
            await using var tar = new TarWriter(context.Response.Body, TarEntryFormat.Pax, leaveOpen: true);
            await WriteDirectoryAsync(tar, new DirectoryInfo(dir.Full), "", context.RequestAborted);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            // The client went away.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The status line is gone: cutting the stream short tells the client the archive is incomplete.
            log.LogWarning("Archiving {Path} failed: {Reason}", dir.Relative, e.Message);
            context.Abort();
        }

        activity.Touch();
    }

    public async Task WriteAsync(HttpContext context)
    {
        if (!TryDirectory(context, out var dir, out var error))
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, error);
            return;
        }

        activity.Touch();
        if (File.Exists(dir.Full))
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"'{dir.Relative}' is a file, not a directory");
            return;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            // Each file is bounded below, as PUT /files bounds one; the archive as a whole by the workspace's size.
            limit.MaxRequestBodySize = null;
        }

        var extraction = new Extraction(dir);
        try
        {
            Directory.CreateDirectory(dir.Full);
            await using var tar = new TarReader(context.Request.Body, leaveOpen: true);
            while (await tar.GetNextEntryAsync(copyData: false, context.RequestAborted) is { } entry)
            {
                if (await ExtractAsync(entry, extraction, context.RequestAborted) is { } refused)
                {
                    await SandboxAgent.Error(context, refused.Status, refused.Message);
                    return;
                }
            }

            extraction.ApplyDirectoryModes();
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return; // The client went away mid-upload.
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, $"not a readable tar archive: {e.Message}");
            return;
        }
        catch (BadHttpRequestException e)
        {
            await SandboxAgent.Error(context, e.StatusCode, $"cannot read the request body: {e.Message}");
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("Extracting into {Path} failed: {Reason}", dir.Relative, e.Message);
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"cannot extract into '{dir.Relative}': {e.Message}");
            return;
        }

        activity.Touch();
        await SandboxAgent.Json(context, StatusCodes.Status200OK, new ArchiveExtracted(dir.Relative, extraction.Entries, extraction.Bytes),
            ShimJson.Plain.ArchiveExtracted);
    }

    private static async Task WriteDirectoryAsync(TarWriter tar, DirectoryInfo directory, string prefix, CancellationToken ct)
    {
        var enumeration = new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = true, RecurseSubdirectories = false };
        foreach (var info in directory.EnumerateFileSystemInfos("*", enumeration).OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            var name = prefix + info.Name;
            if (info.LinkTarget is { } target)
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = target, ModificationTime = info.LastWriteTimeUtc }, ct);
            }
            else if (info is DirectoryInfo sub)
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, name + "/") { Mode = Mode(sub), ModificationTime = sub.LastWriteTimeUtc }, ct);
                await WriteDirectoryAsync(tar, sub, name + "/", ct);
            }
            else
            {
                FileStream file;
                try
                {
                    file = SandboxFiles.OpenForReading(info.FullName);
                }
                catch (Exception e) when (e is SandboxFiles.NotRegularFileException or FileNotFoundException or DirectoryNotFoundException)
                {
                    continue; // A FIFO, socket or device, or gone since it was listed.
                }

                await using (file)
                {
                    var entry = new PaxTarEntry(TarEntryType.RegularFile, name) { Mode = Mode(info), ModificationTime = info.LastWriteTimeUtc, DataStream = file };
                    await tar.WriteEntryAsync(entry, ct);
                }
            }
        }
    }

    private static UnixFileMode Mode(FileSystemInfo info) => OperatingSystem.IsWindows() ? PermissionBits : info.UnixFileMode & PermissionBits;

    /// <summary>Extracts one entry; null when done, else why it was refused.</summary>
    private async Task<(int Status, string Message)?> ExtractAsync(TarEntry entry, Extraction extraction, CancellationToken ct)
    {
        if (CheckName(entry.Name) is { } bad)
        {
            return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': {bad}");
        }

        var name = entry.Name.TrimEnd('/');
        while (name.StartsWith("./", StringComparison.Ordinal))
        {
            name = name[2..];
        }

        if (name is "" or ".")
        {
            return null; // The directory itself.
        }

        // The entry's parent is resolved (links followed, and it must stay in the workspace); its last component is
        // not: a link there is replaced, never followed. Re-extracting a link that points out of the workspace works.
        var slash = name.LastIndexOf('/');
        var parentName = slash < 0 ? "" : name[..slash];
        var parentRelative = (extraction.Dir.IsRoot, parentName) switch
        {
            (true, _) => parentName,
            (false, "") => extraction.Dir.Relative,
            _ => extraction.Dir.Relative + "/" + parentName,
        };
        if (!paths.TryResolve(parentRelative, allowRoot: true, out var parent, out var error))
        {
            return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': {error}");
        }

        if (File.Exists(parent.Full))
        {
            return (StatusCodes.Status409Conflict, $"entry '{entry.Name}': '{parent.Relative}' is a file, not a directory");
        }

        Directory.CreateDirectory(parent.Full);
        var last = name[(slash + 1)..];
        if (last is "." or "")
        {
            return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': a name that ends in '.'");
        }

        (string Entry, string Relative) path = (Path.Join(parent.Full, last), parent.IsRoot ? last : parent.Relative + "/" + last);
        switch (entry.EntryType)
        {
            case TarEntryType.Directory:
                if (IsLink(path.Entry) || File.Exists(path.Entry))
                {
                    File.Delete(path.Entry);
                }

                Directory.CreateDirectory(path.Entry);
                extraction.Directory(path.Entry, entry.Mode & PermissionBits, entry.ModificationTime);
                break;

            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                if (entry.Length > options.MaxFileBytes)
                {
                    return (StatusCodes.Status413PayloadTooLarge, $"entry '{entry.Name}' is larger than {options.MaxFileBytes} bytes ({SandboxOptions.MaxFileBytesVariable})");
                }

                if (Directory.Exists(path.Entry) && !IsLink(path.Entry))
                {
                    return (StatusCodes.Status409Conflict, $"entry '{entry.Name}': '{path.Relative}' is a directory");
                }

                extraction.Bytes += await PlaceFileAsync(path.Entry, entry.Mode & PermissionBits, entry.ModificationTime,
                    target => entry.DataStream is { } data ? CopyAsync(data, target, ct) : Task.CompletedTask);
                break;

            case TarEntryType.SymbolicLink:
                if (string.IsNullOrEmpty(entry.LinkName) || entry.LinkName.Contains('\0', StringComparison.Ordinal))
                {
                    return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': a link needs a target");
                }

                if (Directory.Exists(path.Entry) && !IsLink(path.Entry))
                {
                    return (StatusCodes.Status409Conflict, $"entry '{entry.Name}': '{path.Relative}' is a directory");
                }

                Replace(path.Entry);
                File.CreateSymbolicLink(path.Entry, entry.LinkName);
                break;

            case TarEntryType.HardLink:
                if (CheckName(entry.LinkName) is { } badTarget)
                {
                    return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': link target '{entry.LinkName}': {badTarget}");
                }

                var targetRelative = extraction.Dir.IsRoot ? entry.LinkName : extraction.Dir.Relative + "/" + entry.LinkName;
                if (!paths.TryResolve(targetRelative, allowRoot: false, out var target, out error))
                {
                    return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': link target: {error}");
                }

                if (!File.Exists(target.Full) || Directory.Exists(target.Full))
                {
                    return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': link target '{entry.LinkName}' is not a file extracted before it");
                }

                var mode = OperatingSystem.IsWindows() ? PermissionBits : File.GetUnixFileMode(target.Full) & PermissionBits;
                extraction.Bytes += await PlaceFileAsync(path.Entry, mode, File.GetLastWriteTimeUtc(target.Full), async copy =>
                {
                    await using var source = SandboxFiles.OpenForReading(target.Full);
                    await CopyAsync(source, copy, ct);
                });
                break;

            case TarEntryType.GlobalExtendedAttributes:
                return null;

            default:
                return (StatusCodes.Status400BadRequest, $"entry '{entry.Name}': {entry.EntryType} entries are not extracted (files, directories and links only)");
        }

        extraction.Entries++;
        return null;
    }

    /// <summary>Why an entry name (or a hard link's target) is refused, or null.</summary>
    private static string? CheckName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('\0', StringComparison.Ordinal))
        {
            return "an empty name or one with NUL bytes";
        }

        if (name.StartsWith('/') || name.StartsWith('\\') || Path.IsPathRooted(name))
        {
            return "an absolute name";
        }

        return name.Split('/').Contains("..") ? "a name with a '..' component" : null;
    }

    /// <summary>Writes a file to a temporary one and renames it onto <paramref name="entry"/>; the bytes written.</summary>
    private async Task<long> PlaceFileAsync(string entry, UnixFileMode mode, DateTimeOffset modified, Func<FileStream, Task> fill)
    {
        var temporary = Path.Combine(paths.Root, SandboxFiles.UploadPrefix + Guid.NewGuid().ToString("N"));
        try
        {
            long length;
            await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
                await fill(file);
                length = file.Length;
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temporary, mode);
            }

            File.SetLastWriteTimeUtc(temporary, modified.UtcDateTime);
            // rename(2) replaces a link at the entry itself, so nothing is written through it.
            File.Move(temporary, entry, overwrite: true);
            return length;
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    private static async Task CopyAsync(Stream source, Stream target, CancellationToken ct)
    {
        var buffer = new byte[CopyBuffer];
        int read;
        while ((read = await source.ReadAsync(buffer, ct)) > 0)
        {
            await target.WriteAsync(buffer.AsMemory(0, read), ct);
        }
    }

    private static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    /// <summary>Removes a file or link at <paramref name="path"/>, if any (never what a link points at).</summary>
    private static void Replace(string path)
    {
        if (IsLink(path) || File.Exists(path))
        {
            File.Delete(path);
        }
    }

    private bool TryDirectory(HttpContext context, out WorkspacePath path, out string error)
    {
        var values = context.Request.Query["path"];
        if (values.Count > 1)
        {
            path = default;
            error = "give one path";
            return false;
        }

        return paths.TryResolve(values.ToString(), allowRoot: true, out path, out error);
    }

    /// <summary>What one extraction did, and the directories whose modes are set last (a read-only one would stop what follows).</summary>
    private sealed class Extraction(WorkspacePath dir)
    {
        private readonly List<(string Path, UnixFileMode Mode, DateTimeOffset Modified)> _directories = [];

        public WorkspacePath Dir { get; } = dir;

        public int Entries { get; set; }

        public long Bytes { get; set; }

        public void Directory(string path, UnixFileMode mode, DateTimeOffset modified) => _directories.Add((path, mode, modified));

        public void ApplyDirectoryModes()
        {
            // Deepest first: a directory's time changes when something is created in it.
            foreach (var (path, mode, modified) in _directories.OrderByDescending(d => d.Path.Length))
            {
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, mode);
                }

                System.IO.Directory.SetLastWriteTimeUtc(path, modified.UtcDateTime);
            }
        }
    }
}
