using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text.Json;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// <c>GET /exec/ws</c>: an interactive exec over a WebSocket. The client's first frame is a text
/// <see cref="ExecSocketMessage"/> of type <c>start</c>; the command is checked and started by the same rules as
/// <c>POST /exec</c> (<see cref="ExecRunner.TryPrepare"/>: argv, env less <c>PILOTLIGHT_*</c>, workingDir inside the
/// workspace, timeout; the exec marker; everything it started killed when the socket closes or the timeout passes).
/// Binary frames carry data, their first byte naming the stream (0 stdin, 1 stdout, 2 stderr); text frames
/// <c>resize</c>, <c>signal</c> and <c>eof</c> control the command. The server's last frame is
/// <see cref="ExecSocketExit"/> or <see cref="ExecSocketError"/>, then a normal close.
/// With <c>tty</c> the command runs on a pseudo-terminal (<see cref="PseudoTerminal"/>) as a session leader, and
/// signals go to its process group; without, it gets pipes, like <c>POST /exec</c>, and signals go to its process.
/// </summary>
internal sealed class ExecSocket(
    ExecRunner runner,
    SandboxActivity activity,
    ChildProcesses children,
    TimeProvider time,
    ILogger<ExecSocket> log)
{
    /// <summary>How long a client has to send its start frame.</summary>
    internal static readonly TimeSpan StartWithin = TimeSpan.FromSeconds(30);

    private const int MaxControlFrame = 1 << 20;
    private const int ReadBuffer = 32 * 1024;
    private const byte Stdin = 0;
    private const byte Stdout = 1;
    private const byte Stderr = 2;

    private static readonly Dictionary<string, int> Signals = new(StringComparer.OrdinalIgnoreCase)
    {
        ["SIGHUP"] = 1, ["SIGINT"] = 2, ["SIGQUIT"] = 3, ["SIGKILL"] = 9, ["SIGUSR1"] = 10, ["SIGUSR2"] = 12,
        ["SIGTERM"] = 15, ["SIGCONT"] = 18, ["SIGSTOP"] = 19, ["SIGTSTP"] = 20, ["SIGWINCH"] = 28,
    };

    private readonly ConcurrentDictionary<string, Action> _running = new();

    /// <summary>Kills everything every interactive exec started; for shutdown.</summary>
    public void KillAll()
    {
        foreach (var kill in _running.Values)
        {
            kill();
        }
    }

    public async Task RunAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await SandboxAgent.Error(context, StatusCodes.Status400BadRequest, "exec/ws needs a WebSocket upgrade");
            return;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        var session = new Session(socket, context.RequestAborted);
        ExecSocketMessage? start;
        using (var startWithin = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
        {
            startWithin.CancelAfter(StartWithin);
            try
            {
                start = await session.ReceiveControlAsync(startWithin.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or JsonException or InvalidDataException)
            {
                await session.FailAsync(e is JsonException or InvalidDataException ? $"invalid start frame: {e.Message}" : "no start frame");
                return;
            }
        }

        if (start is not { Type: "start" })
        {
            await session.FailAsync("the first frame must be a text frame {\"type\":\"start\",\"command\":[...]}");
            return;
        }

        var request = new ExecRequest { Argv = start.Command, Env = start.Env, WorkingDir = start.Cwd, TimeoutSeconds = start.TimeoutSeconds };
        if (!runner.TryPrepare(request, out var info, out var timeout, out var error))
        {
            log.LogInformation("exec/ws: refused: {Reason}", error);
            await session.FailAsync(error);
            return;
        }

        if (start.Rows is < 1 or > ushort.MaxValue || start.Cols is < 1 or > ushort.MaxValue)
        {
            await session.FailAsync("rows and cols must be between 1 and 65535");
            return;
        }

        var execId = Guid.NewGuid().ToString("N");
        info.Environment[ChildProcesses.ExecMarker] = execId;
        Command command;
        try
        {
            command = start.Tty
                ? TtyCommand.Start(children, info, (ushort)(start.Rows ?? 24), (ushort)(start.Cols ?? 80))
                : PipeCommand.Start(children, info);
        }
        catch (Win32Exception e)
        {
            await session.FailAsync($"cannot start '{start.Command![0]}': {e.Message}");
            return;
        }

        using (command)
        {
            void Kill()
            {
                if (!command.HasExited)
                {
                    children.KillExec(command.Pid, command.StartTime, execId);
                }
            }

            _running[execId] = Kill;
            activity.ExecStarted();
            var started = time.GetTimestamp();
            var timedOut = 0;
            try
            {
                using var deadline = new CancellationTokenSource(timeout, time);
                await using var onDeadline = deadline.Token.Register(() =>
                {
                    if (!command.HasExited)
                    {
                        Interlocked.Exchange(ref timedOut, 1);
                        Kill();
                    }
                });
                await using var onAbort = context.RequestAborted.Register(Kill);
                var (code, input) = await RunCommandAsync(session, command, Kill, context.RequestAborted);
                if (code is { } exit)
                {
                    await session.FinishAsync(new ExecSocketExit("exit", exit, Volatile.Read(ref timedOut) == 1));
                    // The client answers the close; past this wait the socket is dropped.
                    await Task.WhenAny(input, Task.Delay(TimeSpan.FromSeconds(2), time));
                    log.LogInformation("exec/ws {Program}: exit {Exit} after {Duration} ms", info.FileName, exit, (long)time.GetElapsedTime(started).TotalMilliseconds);
                }
                else
                {
                    log.LogInformation("exec/ws {Program}: client went away; killed", info.FileName);
                }
            }
            finally
            {
                Kill();
                _running.TryRemove(execId, out _);
                activity.ExecFinished();
                children.ReapOrphans();
            }
        }
    }

    /// <summary>
    /// Pumps both ways until the command exits and its output is read: its exit code, or null when the client left
    /// first; and the input pump, which runs on until the client closes its side (a cancelled receive would abort the socket).
    /// </summary>
    private async Task<(int? Code, Task Input)> RunCommandAsync(Session session, Command command, Action kill, CancellationToken aborted)
    {
        using var stop = new CancellationTokenSource();
        var outputs = command.StartOutput(session, stop.Token);
        var input = PumpInputAsync(session, command, kill, aborted);
        var exited = command.WaitForExitAsync();
        var first = await Task.WhenAny(exited, input);
        if (first == input && !exited.IsCompleted)
        {
            // The client closed or went away: hang up.
            kill();
            await exited;
            await stop.CancelAsync();
            await Task.WhenAll(outputs);
            return (null, input);
        }

        var code = await exited;
        var drained = Task.WhenAll(outputs);
        if (await Task.WhenAny(drained, Task.Delay(ExecRunner.OutputGrace, time)) != drained)
        {
            command.StopOutputWhenIdle();
        }

        await drained;
        return (session.Broken ? null : code, input);
    }

    private async Task PumpInputAsync(Session session, Command command, Action kill, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var frame = await session.ReceiveAsync(cancellationToken);
                if (frame is null)
                {
                    return;
                }

                if (frame.Value.Binary is { } data)
                {
                    if (data.Length > 1 && data[0] == Stdin)
                    {
                        await command.WriteInputAsync(data.AsMemory(1), cancellationToken);
                        activity.Touch();
                    }

                    continue;
                }

                var message = frame.Value.Control!;
                switch (message.Type)
                {
                    case "resize" when message.Rows is >= 1 and <= ushort.MaxValue && message.Cols is >= 1 and <= ushort.MaxValue:
                        command.Resize((ushort)message.Rows.Value, (ushort)message.Cols.Value);
                        break;
                    case "signal" when message.Name is { } name && Signals.TryGetValue(name.StartsWith("SIG", StringComparison.OrdinalIgnoreCase) ? name : "SIG" + name, out var signal):
                        if (signal == ProcessNative.SignalKill)
                        {
                            kill();
                        }
                        else
                        {
                            command.Signal(signal);
                        }

                        break;
                    case "eof":
                        await command.CloseInputAsync(cancellationToken);
                        break;
                    default:
                        log.LogDebug("exec/ws: ignored control frame {Type}", message.Type);
                        break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or JsonException or InvalidDataException or ObjectDisposedException)
        {
            // The client went away, sent garbage, or the command's input closed: input is over either way.
            if (e is JsonException or InvalidDataException)
            {
                kill();
            }
        }
    }

    /// <summary>One accepted socket: receives frames, and sends with one writer at a time.</summary>
    private sealed class Session(WebSocket socket, CancellationToken aborted)
    {
        private readonly SemaphoreSlim _send = new(1, 1);
        private readonly byte[] _receive = new byte[ReadBuffer + 1];
        private volatile bool _broken;

        /// <summary>Whether sending failed (the client is gone).</summary>
        public bool Broken => _broken;

        public async Task<ExecSocketMessage?> ReceiveControlAsync(CancellationToken cancellationToken)
        {
            var frame = await ReceiveAsync(cancellationToken);
            return frame is { Control: { } control } ? control : null;
        }

        /// <summary>The next whole frame: its bytes when binary, its message when text; null when the client closed.</summary>
        public async Task<(byte[]? Binary, ExecSocketMessage? Control)?> ReceiveAsync(CancellationToken cancellationToken)
        {
            using var message = new MemoryStream();
            while (true)
            {
                var result = await socket.ReceiveAsync(_receive, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return null;
                }

                message.Write(_receive, 0, result.Count);
                if (message.Length > MaxControlFrame)
                {
                    throw new InvalidDataException($"frame larger than {MaxControlFrame} bytes");
                }

                if (result.EndOfMessage)
                {
                    return result.MessageType == WebSocketMessageType.Binary
                        ? (message.ToArray(), null)
                        : (null, JsonSerializer.Deserialize(message.GetBuffer().AsSpan(0, (int)message.Length), ShimJson.Plain.ExecSocketMessage)
                            ?? throw new InvalidDataException("expected a JSON object"));
                }
            }
        }

        /// <summary>Sends <paramref name="count"/> bytes of <paramref name="buffer"/>, whose first byte is the stream.</summary>
        public async Task SendDataAsync(byte[] buffer, int count, CancellationToken cancellationToken)
        {
            await _send.WaitAsync(cancellationToken);
            try
            {
                await socket.SendAsync(buffer.AsMemory(0, count), WebSocketMessageType.Binary, true, cancellationToken);
            }
            catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException)
            {
                _broken = true;
                throw;
            }
            finally
            {
                _send.Release();
            }
        }

        public Task FailAsync(string message) =>
            FinishAsync(JsonSerializer.SerializeToUtf8Bytes(new ExecSocketError("error", message), ShimJson.Plain.ExecSocketError));

        public Task FinishAsync(ExecSocketExit exit) =>
            FinishAsync(JsonSerializer.SerializeToUtf8Bytes(exit, ShimJson.Plain.ExecSocketExit));

        private async Task FinishAsync(byte[] last)
        {
            await _send.WaitAsync(aborted);
            try
            {
                await socket.SendAsync(last, WebSocketMessageType.Text, true, aborted);
                using var closing = CancellationTokenSource.CreateLinkedTokenSource(aborted);
                closing.CancelAfter(TimeSpan.FromSeconds(5));
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, closing.Token);
            }
            catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                // The client went away first.
            }
            finally
            {
                _send.Release();
            }
        }
    }

    /// <summary>A started command, on a terminal or on pipes.</summary>
    private abstract class Command : IDisposable
    {
        private volatile bool _exited;

        public required int Pid { get; init; }

        public required ulong? StartTime { get; init; }

        public bool HasExited => _exited;

        public abstract Task<int> WaitForExitAsync();

        public abstract Task[] StartOutput(Session session, CancellationToken cancellationToken);

        public abstract void StopOutputWhenIdle();

        public abstract ValueTask WriteInputAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

        public abstract ValueTask CloseInputAsync(CancellationToken cancellationToken);

        public abstract void Resize(ushort rows, ushort cols);

        public abstract void Signal(int signal);

        public abstract void Dispose();

        protected async Task<int> Exited(Task<int> wait)
        {
            var code = await wait;
            _exited = true;
            return code;
        }
    }

    private sealed class TtyCommand : Command
    {
        private PseudoTerminal _terminal = null!;
        private Stream _input = null!;
        private Task<int>? _exit;
        private volatile bool _stopWhenIdle;

        public static TtyCommand Start(ChildProcesses children, ProcessStartInfo info, ushort rows, ushort cols)
        {
            var terminal = PseudoTerminal.Open(rows, cols);
            try
            {
                string[] argv = [info.FileName, .. info.ArgumentList];
                var pid = children.Spawn(() => terminal.Spawn(info.FileName, argv, info.Environment, info.WorkingDirectory), out var startTime);
                return new TtyCommand { Pid = pid, StartTime = startTime, _terminal = terminal, _input = terminal.OpenWriter() };
            }
            catch
            {
                terminal.Dispose();
                throw;
            }
        }

        public override Task<int> WaitForExitAsync() =>
            _exit ??= Exited(Task.Factory.StartNew(() => PseudoTerminal.WaitForExit(Pid), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));

        public override Task[] StartOutput(Session session, CancellationToken cancellationToken) =>
            [Task.Factory.StartNew(() => Pump(session, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)];

        private void Pump(Session session, CancellationToken cancellationToken)
        {
            using var output = _terminal.OpenReader();
            var buffer = new byte[ReadBuffer + 1];
            buffer[0] = Stdout;
            try
            {
                // After the exit, a background process still writing to the terminal ends the pump at the grace.
                while (!cancellationToken.IsCancellationRequested && !_stopWhenIdle)
                {
                    if (!_terminal.WaitReadable(100))
                    {
                        if (HasExited)
                        {
                            // Exited, and nothing more within 100 ms: what it wrote has been read.
                            return;
                        }

                        continue;
                    }

                    var read = output.Read(buffer, 1, ReadBuffer);
                    if (read <= 0)
                    {
                        return;
                    }

                    session.SendDataAsync(buffer, read + 1, cancellationToken).GetAwaiter().GetResult();
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or WebSocketException or ObjectDisposedException)
            {
                // The terminal hung up, or the client went away.
            }
        }

        public override void StopOutputWhenIdle() => _stopWhenIdle = true;

        public override async ValueTask WriteInputAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            await _input.WriteAsync(data, cancellationToken);
            await _input.FlushAsync(cancellationToken);
        }

        // End of input on a terminal is its EOF character (^D) at the start of a line.
        public override ValueTask CloseInputAsync(CancellationToken cancellationToken) => WriteInputAsync(new byte[] { 0x04 }, cancellationToken);

        public override void Resize(ushort rows, ushort cols) => _terminal.Resize(rows, cols);

        public override void Signal(int signal)
        {
            if (!HasExited)
            {
                PseudoTerminal.SignalGroup(Pid, signal);
            }
        }

        public override void Dispose()
        {
            _input.Dispose();
            _terminal.Dispose();
        }
    }

    private sealed class PipeCommand : Command
    {
        private Process _process = null!;
        private readonly List<Stopper> _stoppers = [];

        public static PipeCommand Start(ChildProcesses children, ProcessStartInfo info)
        {
            var process = children.Start(info, out var startTime);
            return new PipeCommand { Pid = process.Id, StartTime = startTime, _process = process };
        }

        public override Task<int> WaitForExitAsync() => Exited(WaitAsync());

        private async Task<int> WaitAsync()
        {
            await _process.WaitForExitAsync();
            return _process.ExitCode;
        }

        public override Task[] StartOutput(Session session, CancellationToken cancellationToken) =>
            [Pump(_process.StandardOutput.BaseStream, Stdout, session, cancellationToken), Pump(_process.StandardError.BaseStream, Stderr, session, cancellationToken)];

        private async Task Pump(Stream source, byte stream, Session session, CancellationToken cancellationToken)
        {
            var stopper = new Stopper(cancellationToken);
            lock (_stoppers)
            {
                _stoppers.Add(stopper);
            }

            var buffer = new byte[ReadBuffer + 1];
            buffer[0] = stream;
            try
            {
                while (true)
                {
                    var read = await source.ReadAsync(buffer.AsMemory(1, ReadBuffer), stopper.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    await session.SendDataAsync(buffer, read + 1, cancellationToken);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or WebSocketException or ObjectDisposedException)
            {
                // Stopped, the pipe broke, or the client went away.
            }
        }

        public override void StopOutputWhenIdle()
        {
            lock (_stoppers)
            {
                foreach (var stopper in _stoppers)
                {
                    stopper.Source.CancelAfter(TimeSpan.FromMilliseconds(100));
                }
            }
        }

        public override async ValueTask WriteInputAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            await _process.StandardInput.BaseStream.WriteAsync(data, cancellationToken);
            await _process.StandardInput.BaseStream.FlushAsync(cancellationToken);
        }

        public override ValueTask CloseInputAsync(CancellationToken cancellationToken)
        {
            _process.StandardInput.Close();
            return ValueTask.CompletedTask;
        }

        public override void Resize(ushort rows, ushort cols)
        {
            // No terminal: nothing to size.
        }

        public override void Signal(int signal)
        {
            if (!HasExited)
            {
                ProcessNative.TrySignal(Pid, signal);
            }
        }

        public override void Dispose() => _process.Dispose();

        private sealed class Stopper(CancellationToken cancellationToken)
        {
            public CancellationTokenSource Source { get; } = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

            public CancellationToken Token => Source.Token;
        }
    }
}
