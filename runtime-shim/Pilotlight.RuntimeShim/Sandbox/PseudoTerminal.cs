using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// A pseudo-terminal pair and the process started on it (Linux, glibc or musl). The master is opened with
/// <c>posix_openpt</c>, the slave named with <c>ptsname_r</c>; the command is started with <c>posix_spawn</c>:
/// <c>POSIX_SPAWN_SETSID</c> makes it a session leader, then a file action opens the slave onto fd 0 (a session leader
/// without a controlling terminal that opens a terminal without <c>O_NOCTTY</c> acquires it, so no
/// <c>TIOCSCTTY</c> helper is needed), and fds 1 and 2 are dup'd from it. The agent keeps its own slave fd open
/// until the exec ends, so output written just before the command exits is still read (the master reports EIO
/// once no slave is open). Signal dispositions the agent's runtime changed (SIGPIPE is ignored by .NET) are reset
/// to default in the child and its signal mask is cleared.
/// </summary>
internal sealed partial class PseudoTerminal : IDisposable
{
    private const string Libc = "libc";

    // Linux values (x86-64 and arm64 alike).
    private const int ORdWr = 0x2;
    private const int ONoCtty = 0x100;
    private const int OCloExec = 0x80000;
    private const int PosixSpawnSetSigDef = 0x04;
    private const int PosixSpawnSetSigMask = 0x08;
    private const int PosixSpawnSetSid = 0x80;
    private const nuint TiocSWinSz = 0x5414;
    private const short PollIn = 0x1;
    private const int Eintr = 4;

    // Opaque glibc/musl structures, allocated larger than either library needs (glibc: 80, 336, 128 bytes).
    private const int OpaqueSize = 1024;

    private static readonly int[] DefaultedSignals = [1, 2, 3, 10, 12, 13, 14, 15, 17, 20, 21, 22];

    private readonly SafeFileHandle _master;
    private readonly SafeFileHandle _slave;

    private PseudoTerminal(SafeFileHandle master, SafeFileHandle slave, string slavePath)
    {
        _master = master;
        _slave = slave;
        SlavePath = slavePath;
    }

    /// <summary>The terminal's device path, <c>/dev/pts/N</c>.</summary>
    public string SlavePath { get; }

    /// <summary>Reads what the command writes to the terminal; blocking (use <see cref="WaitReadable"/>).</summary>
    public Stream OpenReader() => new FileStream(Duplicate(_master), FileAccess.Read, 0, false);

    /// <summary>Writes to the command's terminal input.</summary>
    public Stream OpenWriter() => new FileStream(Duplicate(_master), FileAccess.Write, 0, false);

    /// <summary>Opens a new pseudo-terminal of the given size.</summary>
    /// <exception cref="Win32Exception">The system has none to give.</exception>
    public static PseudoTerminal Open(ushort rows, ushort cols)
    {
        var fd = posix_openpt(ORdWr | ONoCtty | OCloExec);
        if (fd < 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), "posix_openpt failed");
        }

        var master = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (grantpt(fd) != 0 || unlockpt(fd) != 0)
            {
                throw new Win32Exception(Marshal.GetLastPInvokeError(), "grantpt/unlockpt failed");
            }

            var name = new byte[128];
            var error = ptsname_r(fd, name, (nuint)name.Length);
            if (error != 0)
            {
                throw new Win32Exception(error, "ptsname_r failed");
            }

            var path = System.Text.Encoding.UTF8.GetString(name, 0, Array.IndexOf(name, (byte)0));
            var slaveFd = open(path, ORdWr | ONoCtty | OCloExec);
            if (slaveFd < 0)
            {
                throw new Win32Exception(Marshal.GetLastPInvokeError(), $"cannot open {path}");
            }

            var terminal = new PseudoTerminal(master, new SafeFileHandle(slaveFd, ownsHandle: true), path);
            terminal.Resize(rows, cols);
            return terminal;
        }
        catch
        {
            master.Dispose();
            throw;
        }
    }

    /// <summary>Sets the window size (the kernel sends SIGWINCH to the terminal's foreground process group).</summary>
    public void Resize(ushort rows, ushort cols)
    {
        var size = new WinSize { Rows = rows, Cols = cols };
        _ = ioctl(_master.DangerousGetHandle().ToInt32(), TiocSWinSz, ref size);
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for output to read: true when some is there (or the terminal hung up).</summary>
    public bool WaitReadable(int timeoutMs)
    {
        var poll = new PollFd { Fd = _master.DangerousGetHandle().ToInt32(), Events = PollIn };
        var ready = PollOne(ref poll, 1, timeoutMs);
        return ready > 0;
    }

    /// <summary>
    /// Starts <paramref name="file"/> on this terminal as the leader of a new session (so its process group is its pid).
    /// </summary>
    /// <returns>The new process's pid.</returns>
    /// <exception cref="Win32Exception">It could not start.</exception>
    public unsafe int Spawn(string file, IReadOnlyList<string> argv, IEnumerable<KeyValuePair<string, string?>> environment, string workingDir)
    {
        var strings = new List<nint>();
        var actions = NativeMemory.AllocZeroed(OpaqueSize);
        var attributes = NativeMemory.AllocZeroed(OpaqueSize);
        var signals = NativeMemory.AllocZeroed(OpaqueSize);
        var actionsReady = false;
        var attributesReady = false;
        try
        {
            nint Utf8(string s)
            {
                var p = Marshal.StringToCoTaskMemUTF8(s);
                strings.Add(p);
                return p;
            }

            var argvArray = new nint[argv.Count + 1];
            for (var i = 0; i < argv.Count; i++)
            {
                argvArray[i] = Utf8(argv[i]);
            }

            var envList = environment.Where(e => e.Value is not null).Select(e => Utf8($"{e.Key}={e.Value}")).ToList();
            envList.Add(0);
            var envArray = envList.ToArray();

            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
            actionsReady = true;
            Check(posix_spawn_file_actions_addchdir_np(actions, Utf8(workingDir)), "addchdir");
            Check(posix_spawn_file_actions_addopen(actions, 0, Utf8(SlavePath), ORdWr, 0), "addopen");
            Check(posix_spawn_file_actions_adddup2(actions, 0, 1), "adddup2");
            Check(posix_spawn_file_actions_adddup2(actions, 0, 2), "adddup2");

            Check(posix_spawnattr_init(attributes), "posix_spawnattr_init");
            attributesReady = true;
            Check(posix_spawnattr_setflags(attributes, PosixSpawnSetSid | PosixSpawnSetSigDef | PosixSpawnSetSigMask), "setflags");
            sigemptyset(signals);
            Check(posix_spawnattr_setsigmask(attributes, signals), "setsigmask");
            foreach (var signal in DefaultedSignals)
            {
                sigaddset(signals, signal);
            }

            Check(posix_spawnattr_setsigdefault(attributes, signals), "setsigdefault");

            int pid;
            fixed (nint* argvPointer = argvArray)
            fixed (nint* envPointer = envArray)
            {
                var error = posix_spawn(&pid, Utf8(file), actions, attributes, argvPointer, envPointer);
                if (error != 0)
                {
                    throw new Win32Exception(error);
                }
            }

            return pid;
        }
        finally
        {
            if (actionsReady)
            {
                posix_spawn_file_actions_destroy(actions);
            }

            if (attributesReady)
            {
                posix_spawnattr_destroy(attributes);
            }

            NativeMemory.Free(actions);
            NativeMemory.Free(attributes);
            NativeMemory.Free(signals);
            foreach (var p in strings)
            {
                Marshal.FreeCoTaskMem(p);
            }
        }

        static void Check(int error, string what)
        {
            if (error != 0)
            {
                throw new Win32Exception(error, $"{what} failed");
            }
        }
    }

    /// <summary>
    /// Waits for <paramref name="pid"/> to end and reaps it: its exit code, or 128 + the signal that ended it (as shells report it).
    /// Blocks the calling thread.
    /// </summary>
    public static int WaitForExit(int pid)
    {
        while (true)
        {
            int status;
            int reaped;
            unsafe
            {
                reaped = waitpid(pid, &status, 0);
            }

            if (reaped == pid)
            {
                var signal = status & 0x7f;
                return signal == 0 ? (status >> 8) & 0xff : 128 + signal;
            }

            if (Marshal.GetLastPInvokeError() != Eintr)
            {
                return -1;
            }
        }
    }

    /// <summary>Sends <paramref name="signal"/> to process group <paramref name="pgid"/>; false when none is left.</summary>
    public static bool SignalGroup(int pgid, int signal) => kill(-pgid, signal) == 0;

    public void Dispose()
    {
        _slave.Dispose();
        _master.Dispose();
    }

    private static SafeFileHandle Duplicate(SafeFileHandle handle)
    {
        var fd = fcntl(handle.DangerousGetHandle().ToInt32(), 1030 /* F_DUPFD_CLOEXEC */, 0);
        return fd < 0 ? throw new Win32Exception(Marshal.GetLastPInvokeError(), "dup failed") : new SafeFileHandle(fd, ownsHandle: true);
    }

    private static int PollOne(ref PollFd fd, nuint count, int timeoutMs)
    {
        int ready;
        do
        {
            ready = poll(ref fd, count, timeoutMs);
        }
        while (ready < 0 && Marshal.GetLastPInvokeError() == Eintr);
        return ready;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct WinSize
    {
        public ushort Rows;
        public ushort Cols;
        public ushort XPixel;
        public ushort YPixel;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int posix_openpt(int flags);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int grantpt(int fd);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int unlockpt(int fd);

    [LibraryImport(Libc)]
    private static partial int ptsname_r(int fd, [Out] byte[] buffer, nuint length);

    [LibraryImport(Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int ioctl(int fd, nuint request, ref WinSize size);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int poll(ref PollFd fds, nuint count, int timeout);

    [LibraryImport(Libc, SetLastError = true)]
    private static unsafe partial int waitpid(int pid, int* status, int options);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawn(int* pid, nint path, void* actions, void* attributes, nint* argv, nint* envp);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawn_file_actions_init(void* actions);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawn_file_actions_destroy(void* actions);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawn_file_actions_addopen(void* actions, int fd, nint path, int flags, uint mode);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawn_file_actions_addchdir_np(void* actions, nint path);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawnattr_init(void* attributes);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawnattr_destroy(void* attributes);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawnattr_setflags(void* attributes, short flags);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawnattr_setsigmask(void* attributes, void* mask);

    [LibraryImport(Libc)]
    private static unsafe partial int posix_spawnattr_setsigdefault(void* attributes, void* signals);

    [LibraryImport(Libc)]
    private static unsafe partial int sigemptyset(void* set);

    [LibraryImport(Libc)]
    private static unsafe partial int sigaddset(void* set, int signal);
}
