using System.Runtime.InteropServices;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Win32.SafeHandles;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// <c>GET|PUT|DELETE /files?path=</c> and <c>GET /files/list?path=</c>: reading, writing, deleting and listing
/// inside the workspace, every path checked by <see cref="WorkspacePaths"/>. Writes go to a temporary file in
/// the workspace and are renamed into place, so a rejected or broken upload leaves nothing behind and readers
/// never see half a file.
/// </summary>
internal sealed class SandboxFiles(SandboxOptions options, WorkspacePaths paths, SandboxActivity activity, ILogger<SandboxFiles> log)
{
    /// <summary>Names of uploads in progress (in the workspace root) start with this.</summary>
    internal const string UploadPrefix = ".pilotlight-upload-";

    private const int CopyBuffer = 64 * 1024;

    public async Task ReadAsync(HttpContext context)
    {
        if (!TryPath(context, allowRoot: false, out var path, out var error))
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, error);
            return;
        }

        activity.Touch();
        if (Directory.Exists(path.Full))
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"'{path.Relative}' is a directory; list it with /files/list");
            return;
        }

        FileStream file;
        try
        {
            file = OpenForReading(path.Full);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status404NotFound, $"'{path.Relative}' does not exist");
            return;
        }
        catch (UnauthorizedAccessException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status403Forbidden, $"'{path.Relative}' cannot be read: permission denied");
            return;
        }
        catch (NotRegularFileException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"'{path.Relative}' is not a regular file");
            return;
        }
        catch (IOException e)
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"'{path.Relative}' cannot be read: {e.Message}");
            return;
        }

        await using (file)
        {
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers.CacheControl = "no-store";
            context.Response.ContentLength = file.Length;
            try
            {
                await file.CopyToAsync(context.Response.Body, CopyBuffer, context.RequestAborted);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
            {
                // The client went away.
            }
        }
    }

    public async Task WriteAsync(HttpContext context)
    {
        if (!TryPath(context, allowRoot: false, out var path, out var error))
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, error);
            return;
        }

        activity.Touch();
        if (Directory.Exists(path.Full))
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"'{path.Relative}' is a directory");
            return;
        }

        if (context.Request.ContentLength > options.MaxFileBytes)
        {
            await TooLarge(context);
            return;
        }

        var temporary = Path.Combine(paths.Root, UploadPrefix + Guid.NewGuid().ToString("N"));
        try
        {
            var written = await ReceiveAsync(context, temporary);
            if (written < 0)
            {
                await TooLarge(context);
                return;
            }

            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path.Full)!);
                File.Move(temporary, path.Full, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"cannot write '{path.Relative}': {e.Message}");
                return;
            }

            activity.Touch();
            await SandboxAgent.Json(context, StatusCodes.Status201Created, new FileWritten(path.Relative, written), ShimJson.Plain.FileWritten);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            // The client went away mid-upload; the temporary file goes below.
        }
        catch (BadHttpRequestException e)
        {
            await SandboxAgent.Error(context, e.StatusCode, $"cannot read the request body: {e.Message}");
        }
        catch (IOException e)
        {
            log.LogWarning("Writing {Path} failed: {Reason}", path.Relative, e.Message);
            await SandboxAgent.Error(context, StatusCodes.Status507InsufficientStorage, $"cannot write '{path.Relative}': {e.Message}");
        }
        finally
        {
            TryDelete(temporary);
        }
    }

    public async Task DeleteAsync(HttpContext context)
    {
        if (!TryPath(context, allowRoot: false, out var path, out var error))
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, error);
            return;
        }

        activity.Touch();
        var recursive = context.Request.Query["recursive"].ToString().Equals("true", StringComparison.OrdinalIgnoreCase);
        try
        {
            var entry = new FileInfo(path.Entry);
            if (entry.LinkTarget is not null || (entry.Exists && !Directory.Exists(path.Entry)))
            {
                entry.Delete(); // A link goes, not what it points at.
            }
            else if (Directory.Exists(path.Entry))
            {
                if (!recursive && Directory.EnumerateFileSystemEntries(path.Entry).Any())
                {
                    await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"directory '{path.Relative}' is not empty; add recursive=true to delete it with its contents");
                    return;
                }

                Directory.Delete(path.Entry, recursive);
            }
            else
            {
                await SandboxAgent.Error(context, StatusCodes.Status404NotFound, $"'{path.Relative}' does not exist");
                return;
            }
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status404NotFound, $"'{path.Relative}' does not exist");
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"cannot delete '{path.Relative}': {e.Message}");
            return;
        }

        context.Response.StatusCode = StatusCodes.Status204NoContent;
        context.Response.Headers.CacheControl = "no-store";
    }

    public async Task ListAsync(HttpContext context)
    {
        if (!TryPath(context, allowRoot: true, out var path, out var error))
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, error);
            return;
        }

        activity.Touch();
        if (!Directory.Exists(path.Full))
        {
            var exists = File.Exists(path.Full);
            await SandboxAgent.Error(
                context,
                exists ? StatusCodes.Status409Conflict : StatusCodes.Status404NotFound,
                exists ? $"'{path.Relative}' is not a directory" : $"'{path.Relative}' does not exist");
            return;
        }

        List<FileEntry> entries;
        try
        {
            var enumeration = new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = true, RecurseSubdirectories = false };
            entries = [.. new DirectoryInfo(path.Full).EnumerateFileSystemInfos("*", enumeration)
                .Select(Describe)
                .OrderBy(e => e.Name, StringComparer.Ordinal)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await SandboxAgent.Error(context, StatusCodes.Status409Conflict, $"cannot list '{path.Relative}': {e.Message}");
            return;
        }

        await SandboxAgent.Json(context, StatusCodes.Status200OK, new FileList(entries), ShimJson.Plain.FileList);
    }

    private static FileEntry Describe(FileSystemInfo info)
    {
        if (info.LinkTarget is { } target)
        {
            return new FileEntry(info.Name, "link", Encoding.UTF8.GetByteCount(target));
        }

        return info is FileInfo file ? new FileEntry(info.Name, "file", SafeLength(file)) : new FileEntry(info.Name, "dir", 0);
    }

    private static long SafeLength(FileInfo file)
    {
        try
        {
            return file.Length;
        }
        catch (IOException)
        {
            return 0; // Gone since it was listed.
        }
    }

    private bool TryPath(HttpContext context, bool allowRoot, out WorkspacePath path, out string error)
    {
        var values = context.Request.Query["path"];
        if (values.Count > 1)
        {
            path = default;
            error = "give one path";
            return false;
        }

        return paths.TryResolve(values.ToString(), allowRoot, out path, out error);
    }

    /// <summary>Copies the request body to <paramref name="temporary"/>; the bytes written, or -1 when over the limit.</summary>
    private async Task<long> ReceiveAsync(HttpContext context, string temporary)
    {
        // The limit is enforced here, by counting, so the answer can be a JSON 413.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }

        var token = context.RequestAborted;
        var buffer = new byte[CopyBuffer];
        long written = 0;
        await using var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        while (true)
        {
            var read = await context.Request.Body.ReadAsync(buffer, token);
            if (read == 0)
            {
                return written;
            }

            written += read;
            if (written > options.MaxFileBytes)
            {
                return -1;
            }

            await file.WriteAsync(buffer.AsMemory(0, read), token);
        }
    }

    private Task TooLarge(HttpContext context) => SandboxAgent.Error(
        context,
        StatusCodes.Status413PayloadTooLarge,
        $"file larger than {options.MaxFileBytes} bytes ({SandboxOptions.MaxFileBytesVariable})");

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: it lives in the workspace, which goes with the sandbox.
        }
    }

    /// <summary>
    /// Opens a regular file for reading. On Linux the file is opened non-blocking first and must be seekable, so
    /// a FIFO that code in the sandbox made cannot hang the request (opening one for reading blocks until a
    /// writer comes).
    /// </summary>
    internal static FileStream OpenForReading(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.Asynchronous);
        }

        var fd = Native.Open(path, Native.ReadOnly | Native.NonBlocking | Native.CloseOnExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                Native.NoEntry => new FileNotFoundException($"'{path}' does not exist", path),
                Native.NotDirectory => new DirectoryNotFoundException($"a parent of '{path}' is not a directory"),
                Native.Access or Native.NotPermitted => new UnauthorizedAccessException($"'{path}': permission denied"),
                Native.NoDeviceOrAddress => new NotRegularFileException(),
                _ => new IOException($"open failed: {Marshal.GetPInvokeErrorMessage(errno)}"),
            };
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        FileStream stream;
        try
        {
            stream = new FileStream(handle, FileAccess.Read, 1);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        if (!stream.CanSeek)
        {
            stream.Dispose();
            throw new NotRegularFileException();
        }

        return stream;
    }

    /// <summary>The path names a FIFO, socket or device.</summary>
    internal sealed class NotRegularFileException() : IOException("not a regular file");

    private static class Native
    {
        // Linux values, the same on x86-64 and arm64.
        public const int ReadOnly = 0;
        public const int NonBlocking = 0x800;
        public const int CloseOnExec = 0x80000;
        public const int NotPermitted = 1;
        public const int NoEntry = 2;
        public const int NoDeviceOrAddress = 6;
        public const int Access = 13;
        public const int NotDirectory = 20;

        [DllImport("libc", EntryPoint = "open", SetLastError = true)]
        public static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
    }
}
