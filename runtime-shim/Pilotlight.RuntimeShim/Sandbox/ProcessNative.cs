using System.Runtime.InteropServices;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// The few libc calls the sandbox agent needs for process hygiene (Linux only). Source-generated P/Invoke, so
/// the NativeAOT build carries no reflection for them.
/// </summary>
internal static partial class ProcessNative
{
    private const string Libc = "libc";

    // Linux values; the same on x86-64 and arm64 (asm-generic).
    private const int PrSetDumpable = 4;
    private const int PrGetDumpable = 3;
    private const int PrSetChildSubreaper = 36;
    private const int WaitNoHang = 1;

    /// <summary>SIGKILL.</summary>
    public const int SignalKill = 9;

    /// <summary>SIGSTOP: a stopped process cannot fork while the rest of its exec is being collected.</summary>
    public const int SignalStop = 19;

    /// <summary>
    /// Makes orphaned descendants of this process its children instead of PID 1's, so it sees (and must reap)
    /// them. Returns the errno on failure, 0 on success.
    /// </summary>
    public static int BecomeChildSubreaper() => prctl(PrSetChildSubreaper, 1, 0, 0, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>
    /// Marks this process not dumpable: processes of the same UID without CAP_SYS_PTRACE can no longer ptrace
    /// it or read its <c>/proc/&lt;pid&gt;/mem</c> and <c>environ</c>. Returns the errno on failure, 0 on success.
    /// </summary>
    public static int MakeUndumpable() => prctl(PrSetDumpable, 0, 0, 0, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Whether this process is dumpable (PR_GET_DUMPABLE), for the startup log.</summary>
    public static bool IsDumpable() => prctl(PrGetDumpable, 0, 0, 0, 0) > 0;

    /// <summary>Reaps <paramref name="pid"/> if it has ended, without waiting: true when it was reaped.</summary>
    public static bool TryReap(int pid) => waitpid(pid, 0, WaitNoHang) == pid;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when it is gone (or not ours to signal).</summary>
    public static bool TrySignal(int pid, int signal) => kill(pid, signal) == 0;

    // prctl is variadic in C; on Linux x86-64 and arm64 integer arguments are passed alike either way.
    [LibraryImport(Libc, SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int waitpid(int pid, nint status, int options);

    [LibraryImport(Libc, SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
