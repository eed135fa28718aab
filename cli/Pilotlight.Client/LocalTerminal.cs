using System.Runtime.InteropServices;

namespace Pilotlight.Client;

/// <summary>
/// The local terminal (Linux and macOS): raw mode while a remote shell owns it (every key, Ctrl-C included, goes to
/// the remote side), restored when disposed; and its size.
/// </summary>
public sealed partial class LocalTerminal : IDisposable
{
    private const string Libc = "libc";
    // termios is 60 bytes on Linux and 72 on macOS; the buffer is opaque to this code.
    private const int TermiosSize = 256;
    private const int TcsaNow = 0;

    private readonly int _fd;
    private readonly byte[] _saved;
    private int _restored;

    private LocalTerminal(int fd, byte[] saved)
    {
        _fd = fd;
        _saved = saved;
    }

    /// <summary>Whether <paramref name="fd"/> (0 stdin, 1 stdout) is a terminal.</summary>
    public static bool IsTerminal(int fd) => !OperatingSystem.IsWindows() && isatty(fd) == 1;

    /// <summary>Puts the terminal on <paramref name="fd"/> in raw mode; null when it is not a terminal.</summary>
    public static LocalTerminal? EnterRawMode(int fd = 0)
    {
        if (!IsTerminal(fd))
        {
            return null;
        }

        var saved = new byte[TermiosSize];
        if (tcgetattr(fd, saved) != 0)
        {
            return null;
        }

        var raw = (byte[])saved.Clone();
        cfmakeraw(raw);
        return tcsetattr(fd, TcsaNow, raw) == 0 ? new LocalTerminal(fd, saved) : null;
    }

    /// <summary>The size of the terminal on <paramref name="fd"/>; null when it is not one.</summary>
    public static (int Rows, int Cols)? Size(int fd = 1)
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        // TIOCGWINSZ: Linux 0x5413, macOS 0x40087468.
        var request = OperatingSystem.IsMacOS() ? (nuint)0x40087468 : 0x5413;
        var size = new WinSize();
        return ioctl(fd, request, ref size) == 0 && size.Rows > 0 && size.Cols > 0 ? (size.Rows, size.Cols) : null;
    }

    /// <summary>Restores the mode the terminal had.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _restored, 1) == 0)
        {
            _ = tcsetattr(_fd, TcsaNow, _saved);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct WinSize
    {
        public ushort Rows;
        public ushort Cols;
        public ushort XPixel;
        public ushort YPixel;
    }

    [LibraryImport(Libc)]
    private static partial int isatty(int fd);

    [LibraryImport(Libc)]
    private static partial int tcgetattr(int fd, [Out] byte[] termios);

    [LibraryImport(Libc)]
    private static partial int tcsetattr(int fd, int action, byte[] termios);

    [LibraryImport(Libc)]
    private static partial void cfmakeraw([In, Out] byte[] termios);

    [LibraryImport(Libc)]
    private static partial int ioctl(int fd, nuint request, ref WinSize size);
}
