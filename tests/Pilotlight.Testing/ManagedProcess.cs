using System.Collections.Concurrent;
using System.Diagnostics;

namespace Pilotlight.Testing;

/// <summary>
/// A long-running child process whose output goes to a log file. Every one
/// still running is killed when the test process exits.
/// </summary>
public sealed class ManagedProcess
{
    private static readonly ConcurrentDictionary<ManagedProcess, bool> Live = new();
    private readonly Process _process;
    private readonly string _log;
    private int _stopped;

    /// <summary>
    /// Set in every child's environment to "pid:start-time" of the process that started it. A test host killed
    /// outright (a CI timeout, a crash) never runs its exit handler, and its children run on: a model server left
    /// listening once made a later run's restarted server fail to bind. The next test process reaps them.
    /// </summary>
    public const string ParentVariable = "PILOTLIGHT_TEST_PARENT";

    private static readonly string Self = $"{Environment.ProcessId}:{StartTime(Environment.ProcessId)}";

    static ManagedProcess()
    {
        Reaped = ReapOrphans();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var p in Live.Keys)
            {
                p.Kill();
            }
        };
    }

    private ManagedProcess(string name, Process process, string log)
    {
        Name = name;
        _process = process;
        _log = log;
    }

    /// <summary>Orphans of dead test processes killed when this process first started a child.</summary>
    public static IReadOnlyList<int> Reaped { get; }

    /// <summary>
    /// Kills every process whose <see cref="ParentVariable"/> names a process that no longer runs (or whose pid now
    /// belongs to a process started at another time); the pids killed. Children of live test processes (another run,
    /// another worktree) are left alone.
    /// </summary>
    public static IReadOnlyList<int> ReapOrphans()
    {
        var killed = new List<int>();
        if (!Directory.Exists("/proc"))
        {
            return killed;
        }

        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            string environ;
            try
            {
                environ = File.ReadAllText(Path.Combine(dir, "environ"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // gone, or not ours to read
            }

            var marker = environ.Split('\0').FirstOrDefault(v => v.StartsWith(ParentVariable + "=", StringComparison.Ordinal));
            if (marker is null || !IsOrphanOf(marker[(ParentVariable.Length + 1)..]))
            {
                continue;
            }

            try
            {
                using var orphan = Process.GetProcessById(pid);
                orphan.Kill();
                killed.Add(pid);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
            }
        }

        return killed;
    }

    private static bool IsOrphanOf(string parent)
    {
        var parts = parent.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], out var pid))
        {
            return false;
        }

        return StartTime(pid) is not { } started || started != parts[1];
    }

    /// <summary>Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot; null when it is gone.</summary>
    private static string? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields[19] : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The binary's file name.</summary>
    public string Name { get; }

    /// <summary>Whether it has exited (or was stopped).</summary>
    public bool HasExited => Volatile.Read(ref _stopped) != 0 || _process.HasExited;

    /// <summary>Its exit code, once exited.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Its process id.</summary>
    public int Id => _process.Id;

    /// <summary>Starts <paramref name="path"/> with <paramref name="args"/>, appending stdout and stderr to <paramref name="log"/>.</summary>
    public static ManagedProcess Start(string path, IEnumerable<string> args, string log, IDictionary<string, string>? environment = null) =>
        Start(path, args, log, environment, containerLog: null);

    /// <summary>
    /// As <see cref="Start(string, IEnumerable{string}, string, IDictionary{string, string}?)"/>; with
    /// <paramref name="containerLog"/>, each line is also appended there as a container runtime writes it (CRI format:
    /// <c>2006-01-02T15:04:05.0000000Z stdout F text</c>), for the simulated kubelet's log endpoint.
    /// </summary>
    public static ManagedProcess Start(string path, IEnumerable<string> args, string log, IDictionary<string, string>? environment, string? containerLog)
    {
        ProcessStartInfo info;
        if (containerLog is null)
        {
            // exec through the shell only to redirect both streams to the file;
            // the pid is the binary's own.
            info = new ProcessStartInfo("/bin/bash") { UseShellExecute = false };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add("exec \"$0\" \"$@\" >>\"$PILOTLIGHT_LOG\" 2>&1");
            info.ArgumentList.Add(path);
            info.Environment["PILOTLIGHT_LOG"] = log;
        }
        else
        {
            // Each line is read here, to stamp it with the time it was written.
            info = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        }

        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        info.Environment[ParentVariable] = Self;

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {path}");
        var managed = new ManagedProcess(Path.GetFileName(path), process, log) { ContainerLogPath = containerLog };
        if (containerLog is not null)
        {
            managed.PumpOutput(containerLog);
        }

        Live[managed] = true;
        return managed;
    }

    /// <summary>Where its output goes in CRI format, when started with a container log.</summary>
    public string? ContainerLogPath { get; private init; }

    /// <summary>Completed once both output streams have ended and every line is in the logs.</summary>
    private readonly TaskCompletionSource _outputClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// The lines of the container log by stream, once both of the process's output streams have ended (it exited, and
    /// the pump wrote its last lines). Only for a process started with a container log.
    /// </summary>
    public async Task<(List<string> Stdout, List<string> Stderr)> ReadContainerLogAsync(TimeSpan timeout)
    {
        var path = ContainerLogPath ?? throw new InvalidOperationException($"{Name} was started without a container log");
        await _outputClosed.Task.WaitAsync(timeout).ConfigureAwait(false);
        List<string> stdout = [], stderr = [];
        foreach (var line in await File.ReadAllLinesAsync(path).ConfigureAwait(false))
        {
            // CRI format: "<timestamp> <stream> F <text>".
            var parts = line.Split(' ', 4);
            (parts[1] == "stdout" ? stdout : stderr).Add(parts.Length > 3 ? parts[3] : "");
        }

        return (stdout, stderr);
    }

    /// <summary>Appends each line of stdout and stderr to the plain log and, stamped, to the container log.</summary>
    private void PumpOutput(string containerLog)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(containerLog))!);
        var gate = new Lock();
        var plain = new StreamWriter(new FileStream(_log, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var stamped = new StreamWriter(new FileStream(containerLog, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var open = 2;
        void Write(string stream, string? line)
        {
            lock (gate)
            {
                if (line is not null)
                {
                    plain.WriteLine(line);
                    stamped.Write($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffffffZ} {stream} F {line}\n");
                }
                else if (--open == 0)
                {
                    plain.Dispose();
                    stamped.Dispose();
                    _outputClosed.TrySetResult();
                }
            }
        }

        _process.OutputDataReceived += (_, e) => Write("stdout", e.Data);
        _process.ErrorDataReceived += (_, e) => Write("stderr", e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Sends SIGKILL to the process and its children and waits for it.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        Kill();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        Live.TryRemove(this, out _);
        _process.Dispose();
    }

    /// <summary>Sends SIGTERM, giving the process a chance to shut down cleanly.</summary>
    public void Terminate()
    {
        try
        {
            // Already stopped (and disposed) by StopAsync, e.g. a restart racing a dispose: nothing to signal.
            if (Volatile.Read(ref _stopped) == 0 && !_process.HasExited)
            {
                _ = ProcessRunner.RunAsync("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], null);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>The last lines of its log.</summary>
    public string LogTail(int lines = 40) =>
        File.Exists(_log) ? string.Join('\n', File.ReadLines(_log).TakeLast(lines)) : "";

    /// <summary>Waits up to <paramref name="timeout"/> for the process to have exited; whether it has.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        try
        {
            return _process.WaitForExit(timeout);
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    /// <summary>Sends SIGKILL to the process and its children without waiting, as a crash would.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }
}
