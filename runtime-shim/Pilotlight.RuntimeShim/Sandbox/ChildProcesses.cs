using System.ComponentModel;
using System.Diagnostics;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// The sandbox agent's processes: every command it starts (execs and the sandbox command) goes through
/// <see cref="Start"/>, which records it, so the orphans the agent adopts as a child subreaper can be told apart
/// from its own children and reaped (<see cref="ReapOrphans"/>) without taking an exit status that .NET's
/// <see cref="Process"/> is waiting for (.NET ends the process with FailFast when a child it owns was reaped by
/// someone else). Also kills everything an exec started (<see cref="KillExec"/>), escaped descendants included.
/// </summary>
internal sealed class ChildProcesses(TimeProvider time, ILogger<ChildProcesses> log) : IDisposable
{
    /// <summary>How often adopted orphans that have exited are reaped (each exec's end also reaps).</summary>
    internal static readonly TimeSpan ReapInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The environment variable that marks every process of one exec (inherited by its descendants): its value
    /// is the exec's id. The agent sets it last, over anything the request asked for.
    /// </summary>
    internal const string ExecMarker = "SANDBOX_EXEC_ID";

    /// <summary>Stop rounds before the kill; each round stops what the previous one found, until nothing new appears.</summary>
    private const int MaxStopRounds = 64;

    private readonly Lock _lock = new();

    /// <summary>The processes <see cref="Start"/> started that may not have been reaped yet: pid to start time.</summary>
    private readonly Dictionary<int, ulong> _started = [];

    private ITimer? _reaper;

    /// <summary>Whether orphaned descendants are this process's children (PR_SET_CHILD_SUBREAPER), so it reaps them.</summary>
    public bool IsSubreaper { get; private set; }

    /// <summary>
    /// Starts <paramref name="info"/> and records it as the agent's own child; <paramref name="startTime"/>
    /// names it in <c>/proc</c> (null when it has already ended and been reaped).
    /// </summary>
    /// <exception cref="Win32Exception">It could not start.</exception>
    public Process Start(ProcessStartInfo info, out ulong? startTime)
    {
        // Held across the start and the record, so a reaping pass never sees this child unrecorded.
        lock (_lock)
        {
            var process = Process.Start(info) ?? throw new Win32Exception("no process was started");
            startTime = ProcessTable.ReadEntry(process.Id)?.StartTime;
            if (startTime is { } start)
            {
                _started[process.Id] = start;
            }

            return process;
        }
    }

    /// <summary>
    /// Starts a process by <paramref name="spawn"/> (which returns its pid; the caller reaps it with waitpid) and
    /// records it as the agent's own child, so <see cref="ReapOrphans"/> never takes its exit status.
    /// </summary>
    public int Spawn(Func<int> spawn, out ulong? startTime)
    {
        lock (_lock)
        {
            var pid = spawn();
            startTime = ProcessTable.ReadEntry(pid)?.StartTime;
            if (startTime is { } start)
            {
                _started[pid] = start;
            }

            return pid;
        }
    }

    /// <summary>
    /// Process hygiene for the sandbox agent, once at start (Linux only): becomes a child subreaper, so processes
    /// orphaned by the commands it runs are reparented to it wherever it runs (PID 1 of a container or not), and
    /// reaps them every <see cref="ReapInterval"/>; and makes itself not dumpable, so the code it runs (same UID,
    /// no CAP_SYS_PTRACE) cannot ptrace it or read its memory or environment through <c>/proc</c>.
    /// </summary>
    public void TakeChargeOfOrphans()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var subreaper = ProcessNative.BecomeChildSubreaper();
        if (subreaper == 0)
        {
            IsSubreaper = true;
            _reaper = time.CreateTimer(_ => ReapOrphans(), null, ReapInterval, ReapInterval);
        }
        else
        {
            log.LogWarning("Cannot become a child subreaper (errno {Errno}): orphans of exec commands go to PID 1", subreaper);
        }

        var undumpable = ProcessNative.MakeUndumpable();
        if (undumpable != 0)
        {
            log.LogWarning("Cannot make the agent not dumpable (errno {Errno}): code it runs may read its memory", undumpable);
        }

        log.LogInformation("Process hygiene: child subreaper {Subreaper}, dumpable {Dumpable}", IsSubreaper, ProcessNative.IsDumpable());
    }

    /// <summary>
    /// Reaps the adopted orphans (children this process did not start) that have exited; the agent's own children
    /// are left to <see cref="Process"/>. Returns how many were reaped; 0 when not a subreaper.
    /// </summary>
    public int ReapOrphans()
    {
        if (!IsSubreaper)
        {
            return 0;
        }

        try
        {
            lock (_lock)
            {
                var table = ProcessTable.Read();
                foreach (var (pid, start) in _started.ToList())
                {
                    if (!table.Is(pid, start))
                    {
                        _started.Remove(pid); // Reaped by Process; a later process with this pid is not ours.
                    }
                }

                var reaped = 0;
                foreach (var pid in table.ChildrenOf(Environment.ProcessId))
                {
                    if (table.Entries[pid].State == 'Z' && !_started.ContainsKey(pid) && ProcessNative.TryReap(pid))
                    {
                        reaped++;
                    }
                }

                return reaped;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("Reaping orphans failed: {Error}", e.Message);
            return 0;
        }
    }

    /// <summary>
    /// Kills everything one exec started: its root process (<paramref name="rootPid"/>, if it is still the
    /// process that started at <paramref name="rootStartTime"/>) and its descendants, plus every process below
    /// the agent whose environment carries the exec's marker (<see cref="ExecMarker"/>=<paramref name="execId"/>)
    /// and their descendants, which catches what left the tree with <c>setsid</c> or a double fork. Everything
    /// found is stopped first, round after round until a round finds nothing new (a stopped process cannot fork),
    /// then killed. The sandbox command's processes and other execs' carry no such marker and are not below this
    /// exec's, so they are never touched. Returns how many processes were killed.
    /// </summary>
    public int KillExec(int rootPid, ulong? rootStartTime, string execId)
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        var self = Environment.ProcessId;
        var marker = $"{ExecMarker}={execId}";
        var stopped = new HashSet<int>();
        try
        {
            for (var round = 0; round < MaxStopRounds; round++)
            {
                var table = ProcessTable.Read();
                var found = new HashSet<int>();
                if (rootStartTime is { } start && table.Is(rootPid, start))
                {
                    found.Add(rootPid);
                    found.UnionWith(table.DescendantsOf(rootPid));
                }

                foreach (var pid in table.DescendantsOf(self))
                {
                    if (!found.Contains(pid) && (stopped.Contains(pid) || ProcessTable.EnvironmentHolds(pid, marker)))
                    {
                        found.Add(pid);
                        found.UnionWith(table.DescendantsOf(pid));
                    }
                }

                found.Remove(self);
                found.ExceptWith(stopped);
                if (found.Count == 0)
                {
                    break;
                }

                foreach (var pid in found)
                {
                    ProcessNative.TrySignal(pid, ProcessNative.SignalStop);
                    stopped.Add(pid);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("Listing an exec's processes failed: {Error}; killing those found", e.Message);
        }
        finally
        {
            foreach (var pid in stopped)
            {
                ProcessNative.TrySignal(pid, ProcessNative.SignalKill);
            }
        }

        return stopped.Count;
    }

    public void Dispose() => _reaper?.Dispose();
}
