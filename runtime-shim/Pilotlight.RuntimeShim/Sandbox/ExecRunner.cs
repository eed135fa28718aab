using System.Buffers;
using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http.Features;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// <c>POST /exec</c>: runs one command in the workspace and streams its output as NDJSON, one line per chunk
/// read from stdout or stderr (<c>{"stream":"stdout","data":"&lt;base64&gt;"}</c>), then
/// <c>{"exit":n,"timedOut":false,"durationMs":n}</c>. On timeout, client disconnect or shutdown while the command
/// runs, everything the exec started is killed, processes that left its tree included (see
/// <see cref="ChildProcesses.KillExec"/>); once the command has exited by itself, what it left running in the
/// background is left alone. Output is read as it arrives, with back-pressure: a slow client slows the command.
/// </summary>
internal sealed class ExecRunner(
    SandboxOptions options,
    WorkspacePaths paths,
    SandboxActivity activity,
    ChildProcesses children,
    TimeProvider time,
    ILogger<ExecRunner> log)
{
    /// <summary>The longest timeout a request may ask for.</summary>
    public static readonly TimeSpan MaxTimeout = SandboxOptions.MaxExecTimeout;

    /// <summary>
    /// After the command exits, how long its output may stay open (held by a child left running in the
    /// background) before the exec ends without waiting for it.
    /// </summary>
    internal static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(1);

    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private const int ReadBuffer = 32 * 1024;

    /// <summary>Request bodies larger than this (the JSON, stdin included) get 413.</summary>
    private long MaxRequestBytes => options.MaxFileBytes + (1 << 20);

    private readonly ConcurrentDictionary<int, RunningExec> _running = new();

    /// <summary>Kills everything every running exec started; for shutdown.</summary>
    public void KillAll()
    {
        foreach (var exec in _running.Values)
        {
            TryKill(exec);
        }
    }

    public async Task RunAsync(HttpContext context)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxRequestBytes;
        }

        ExecRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync(context.Request.Body, ShimJson.Plain.ExecRequest, context.RequestAborted);
        }
        catch (JsonException e)
        {
            await Refuse(context, null, StatusCodes.Status400BadRequest, $"invalid exec request: {e.Message}");
            return;
        }
        catch (BadHttpRequestException e)
        {
            await Refuse(context, null, e.StatusCode, e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"exec request larger than {MaxRequestBytes} bytes"
                : $"cannot read the exec request: {e.Message}");
            return;
        }

        if (request is null)
        {
            await Refuse(context, null, StatusCodes.Status400BadRequest, "invalid exec request: expected a JSON object");
            return;
        }

        if (!TryPrepare(request, out var start, out var timeout, out var error))
        {
            await Refuse(context, request.Argv is { Count: > 0 } argv ? argv[0] : null, StatusCodes.Status400BadRequest, error);
            return;
        }

        var program = request.Argv![0]!;
        // Unguessable, so code in the sandbox cannot aim another exec's kill at processes it wants gone.
        var execId = Guid.NewGuid().ToString("N");
        start.Environment[ChildProcesses.ExecMarker] = execId;
        Process process;
        ulong? startTime;
        try
        {
            process = children.Start(start, out startTime);
        }
        catch (Win32Exception e)
        {
            await Refuse(context, program, StatusCodes.Status400BadRequest, $"cannot start '{program}': {e.Message}");
            return;
        }

        using (process)
        {
            var exec = new RunningExec(process, startTime, execId);
            _running[process.Id] = exec;
            activity.ExecStarted();
            var started = time.GetTimestamp();
            ExecResult? result = null;
            try
            {
                result = await StreamAsync(context, exec, request.Stdin, timeout, started);
            }
            finally
            {
                TryKill(exec);
                _running.TryRemove(process.Id, out _);
                activity.ExecFinished();
                children.ReapOrphans();
                if (result is null)
                {
                    log.LogInformation("exec {Program}: client went away after {Duration} ms; killed", program, (long)time.GetElapsedTime(started).TotalMilliseconds);
                }
                else if (result.TimedOut)
                {
                    log.LogInformation("exec {Program}: timed out after {Timeout}; killed", program, timeout);
                }
                else
                {
                    log.LogInformation("exec {Program}: exit {Exit} after {Duration} ms", program, result.Exit, result.DurationMs);
                }
            }
        }
    }

    /// <summary>Streams the output and the final line; null when the client went away first.</summary>
    private async Task<ExecResult?> StreamAsync(HttpContext context, RunningExec exec, string? stdin, TimeSpan timeout, long started)
    {
        var process = exec.Process;
        var aborted = context.RequestAborted;
        var timedOut = 0;
        long? exitedAt = null;

        using var deadline = new CancellationTokenSource(timeout, time);
        await using var onDeadline = deadline.Token.Register(() =>
        {
            // Marked before the kill: the output may end, and the final line be written, before Kill returns.
            if (IsRunning(process))
            {
                Interlocked.Exchange(ref timedOut, 1);
                TryKill(exec);
            }
        });
        await using var onAbort = aborted.Register(() => TryKill(exec));
        using var stop = new CancellationTokenSource();

        var channel = Channel.CreateBounded<OutputChunk>(new BoundedChannelOptions(16) { SingleReader = true, SingleWriter = false });
        var stdout = new OutputPump(process.StandardOutput.BaseStream, OutputStream.Stdout, channel.Writer);
        var stderr = new OutputPump(process.StandardError.BaseStream, OutputStream.Stderr, channel.Writer);
        var pumps = Task.WhenAll(stdout.RunAsync(stop.Token), stderr.RunAsync(stop.Token));
        var completed = pumps.ContinueWith(_ => channel.Writer.TryComplete(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var feeding = FeedAsync(process, stdin, stop.Token);
        var watching = WatchExitAsync();

        async Task WatchExitAsync()
        {
            try
            {
                await process.WaitForExitAsync(stop.Token);
                exitedAt = time.GetTimestamp();
                if (await Task.WhenAny(pumps, Task.Delay(OutputGrace, time, stop.Token)) != pumps)
                {
                    // Something the command left running holds its output open: read what is there, then stop.
                    stdout.StopWhenIdle();
                    stderr.StopWhenIdle();
                }
            }
            catch (OperationCanceledException)
            {
                // The exec is over.
            }
        }

        try
        {
            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/x-ndjson";
            response.Headers.CacheControl = "no-store";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            await response.StartAsync(aborted);

            await using var json = new Utf8JsonWriter(response.BodyWriter);
            await foreach (var chunk in channel.Reader.ReadAllAsync(aborted))
            {
                json.Reset();
                json.WriteStartObject();
                json.WriteString("stream", chunk.Stream == OutputStream.Stdout ? "stdout" : "stderr");
                json.WriteBase64String("data", chunk.Data);
                json.WriteEndObject();
                await EndLineAsync(json, response, aborted);
            }

            await process.WaitForExitAsync(aborted);
            var exited = exitedAt ?? time.GetTimestamp();
            var killed = Volatile.Read(ref timedOut) == 1;
            var result = new ExecResult(killed ? null : process.ExitCode, killed, (long)time.GetElapsedTime(started, exited).TotalMilliseconds);
            json.Reset();
            JsonSerializer.Serialize(json, result, ShimJson.Plain.ExecResult);
            await EndLineAsync(json, response, aborted);
            await response.CompleteAsync();
            return result;
        }
        catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or IOException or ChannelClosedException)
        {
            return null;
        }
        finally
        {
            TryKill(exec);
            await stop.CancelAsync();
            await Task.WhenAll(completed, feeding, watching);
        }
    }

    private static async Task EndLineAsync(Utf8JsonWriter json, HttpResponse response, CancellationToken cancellationToken)
    {
        await json.FlushAsync(cancellationToken);
        response.BodyWriter.Write("\n"u8);
        await response.BodyWriter.FlushAsync(cancellationToken);
    }

    /// <summary>Writes <paramref name="stdin"/>, if any, then closes the command's standard input.</summary>
    private async Task FeedAsync(Process process, string? stdin, CancellationToken cancellationToken)
    {
        var input = process.StandardInput.BaseStream;
        try
        {
            if (!string.IsNullOrEmpty(stdin))
            {
                await input.WriteAsync(Encoding.UTF8.GetBytes(stdin), cancellationToken);
                await input.FlushAsync(cancellationToken);
                activity.Touch();
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The command closed its input (or ended) before reading it all.
        }
        finally
        {
            try
            {
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // As above.
            }
        }
    }

    /// <summary>Checks an exec request and turns it into what starts the command: the rules every exec follows (argv, env, workingDir, timeout).</summary>
    internal bool TryPrepare(ExecRequest request, out ProcessStartInfo start, out TimeSpan timeout, out string error)
    {
        start = null!;
        timeout = options.ExecTimeout;
        if (request.Argv is not { Count: > 0 } argv || string.IsNullOrEmpty(argv[0]))
        {
            error = "argv must name a program: [\"program\", \"arg\", ...]";
            return false;
        }

        if (argv.Any(a => a is null || a.Contains('\0', StringComparison.Ordinal)))
        {
            error = "argv must be strings without NUL bytes";
            return false;
        }

        if (request.TimeoutSeconds is { } seconds)
        {
            if (!double.IsFinite(seconds) || seconds <= 0)
            {
                error = "timeoutSeconds must be a positive number";
                return false;
            }

            timeout = seconds >= MaxTimeout.TotalSeconds ? MaxTimeout : TimeSpan.FromSeconds(seconds);
        }

        if (!paths.TryResolve(request.WorkingDir, allowRoot: true, out var workingDir, out var pathError))
        {
            error = $"workingDir: {pathError}";
            return false;
        }

        if (!Directory.Exists(workingDir.Full))
        {
            error = $"workingDir '{workingDir.Relative}' is not a directory in the workspace";
            return false;
        }

        start = new ProcessStartInfo
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDir.Full,
        };

        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("PILOTLIGHT_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in request.Env ?? new Dictionary<string, string?>())
        {
            if (name.Length == 0 || name.Contains('=', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal)
                || (value?.Contains('\0', StringComparison.Ordinal) ?? false))
            {
                error = $"env: '{name}' is not a valid variable (names must be non-empty, without '=' or NUL)";
                return false;
            }

            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        var program = argv[0]!;
        var searchPath = start.Environment.TryGetValue("PATH", out var p) && !string.IsNullOrEmpty(p) ? p : DefaultPath;
        if (FindExecutable(program, workingDir.Full, searchPath) is not { } executable)
        {
            error = program.Contains('/', StringComparison.Ordinal)
                ? $"'{program}' is not an executable file"
                : $"executable '{program}' not found on PATH";
            return false;
        }

        start.FileName = executable;
        foreach (var argument in argv.Skip(1))
        {
            start.ArgumentList.Add(argument!);
        }

        error = "";
        return true;
    }

    /// <summary>
    /// Like <c>execvp</c>: a name with a '/' is taken as a path (relative to the working directory), anything
    /// else is looked up in each PATH directory in turn. Null when there is no executable file there.
    /// </summary>
    internal static string? FindExecutable(string program, string workingDir, string searchPath)
    {
        if (program.Contains('/', StringComparison.Ordinal))
        {
            var path = Path.GetFullPath(program, workingDir);
            return IsExecutableFile(path) ? path : null;
        }

        foreach (var dir in searchPath.Split(':'))
        {
            var candidate = Path.Combine(dir.Length == 0 ? workingDir : Path.GetFullPath(dir, workingDir), program);
            if (IsExecutableFile(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsExecutableFile(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return false;
            }

            if (OperatingSystem.IsWindows())
            {
                return true;
            }

            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return (File.GetUnixFileMode(path) & anyExecute) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return false;
        }
    }

    private static bool IsRunning(Process process)
    {
        try
        {
            return !process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return false; // Disposed: long over.
        }
    }

    /// <summary>
    /// While the exec's command runs, kills it and everything it started (its tree and whatever carries its
    /// marker); false when the command had already exited, whose background processes are then left running.
    /// </summary>
    private bool TryKill(RunningExec exec)
    {
        if (!IsRunning(exec.Process))
        {
            return false;
        }

        if (OperatingSystem.IsLinux())
        {
            var killed = children.KillExec(exec.Process.Id, exec.StartTime, exec.Id);
            log.LogDebug("exec {Id}: killed {Count} processes", exec.Id, killed);
            return true;
        }

        try
        {
            exec.Process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or AggregateException or NotSupportedException)
        {
            // Part of the tree ended meanwhile, or could not be signalled; the rest was.
        }

        return true;
    }

    private Task Refuse(HttpContext context, string? program, int status, string error)
    {
        log.LogInformation("exec {Program}: refused ({Status}): {Reason}", program ?? "(none)", status, error);
        return SandboxAgent.Error(context, status, error);
    }

    /// <summary>One exec in flight: its command's process, that process's start time in /proc, and the exec's marker id.</summary>
    private sealed record RunningExec(Process Process, ulong? StartTime, string Id);

    private enum OutputStream
    {
        Stdout,
        Stderr,
    }

    private readonly record struct OutputChunk(OutputStream Stream, byte[] Data);

    /// <summary>Copies one output pipe into the channel, one chunk per read, until end of file or told to stop.</summary>
    private sealed class OutputPump(Stream source, OutputStream stream, ChannelWriter<OutputChunk> target)
    {
        /// <summary>Once stopping, a read that waits this long for data ends the pump.</summary>
        private static readonly TimeSpan IdleRead = TimeSpan.FromMilliseconds(100);

        private readonly Lock _lock = new();
        private CancellationTokenSource? _pendingRead;
        private bool _stopping;

        /// <summary>Ends the pump once no more data is waiting in the pipe.</summary>
        public void StopWhenIdle()
        {
            lock (_lock)
            {
                _stopping = true;
                _pendingRead?.Cancel();
            }
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[ReadBuffer];
            try
            {
                while (true)
                {
                    int read;
                    using (var pending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                    {
                        lock (_lock)
                        {
                            if (_stopping)
                            {
                                pending.CancelAfter(IdleRead);
                            }

                            _pendingRead = pending;
                        }

                        try
                        {
                            read = await source.ReadAsync(buffer, pending.Token);
                        }
                        finally
                        {
                            lock (_lock)
                            {
                                _pendingRead = null;
                            }
                        }
                    }

                    if (read == 0)
                    {
                        return;
                    }

                    await target.WriteAsync(new OutputChunk(stream, buffer.AsSpan(0, read).ToArray()), cancellationToken);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or ChannelClosedException)
            {
                // Stopped, or the pipe broke: the exec is ending either way.
            }
        }
    }
}
