using System.Runtime.InteropServices;

namespace Pilotlight.RuntimeShim;

/// <summary>What NVML said: whether it could be used, how many devices it sees, and why not when it could not.</summary>
/// <param name="Available">NVML loaded and initialised.</param>
/// <param name="DeviceCount">Devices NVML reports (0 when unavailable).</param>
/// <param name="Error">Why NVML could not be used or counted, when it could not.</param>
public sealed record NvmlProbe(bool Available, int DeviceCount, string? Error);

/// <summary>
/// A minimal P/Invoke binding to the NVIDIA Management Library, enough to count GPUs. The library ships
/// with the driver (and is mounted into containers by the NVIDIA container toolkit); where it is absent
/// the probe reports so instead of throwing.
/// </summary>
public static class Nvml
{
    private const string Library = "libnvidia-ml.so.1";
    private const int Success = 0;
    private static readonly Lock Gate = new();

    /// <summary>Initialises NVML, counts devices and shuts NVML down again. Never throws for a missing driver.</summary>
    public static NvmlProbe Probe()
    {
        // nvmlInit/nvmlShutdown are reference counted and thread safe, but there is no need to race them.
        lock (Gate)
        {
            try
            {
                var init = NativeMethods.nvmlInit_v2();
                if (init != Success)
                {
                    return new NvmlProbe(false, 0, $"nvmlInit failed: {Describe(init)}");
                }

                try
                {
                    var count = NativeMethods.nvmlDeviceGetCount_v2(out var devices);
                    return count == Success
                        ? new NvmlProbe(true, checked((int)devices), null)
                        : new NvmlProbe(true, 0, $"nvmlDeviceGetCount failed: {Describe(count)}");
                }
                finally
                {
                    _ = NativeMethods.nvmlShutdown();
                }
            }
            catch (DllNotFoundException)
            {
                return new NvmlProbe(false, 0, $"{Library} not found");
            }
            catch (EntryPointNotFoundException e)
            {
                return new NvmlProbe(false, 0, $"{Library} lacks an entry point: {e.Message}");
            }
            catch (BadImageFormatException e)
            {
                return new NvmlProbe(false, 0, $"{Library} could not be loaded: {e.Message}");
            }
        }
    }

    private static string Describe(int code)
    {
        try
        {
            var text = Marshal.PtrToStringAnsi(NativeMethods.nvmlErrorString(code));
            return string.IsNullOrEmpty(text) ? $"error {code}" : $"{text} ({code})";
        }
        catch (EntryPointNotFoundException)
        {
            return $"error {code}";
        }
    }

    private static class NativeMethods
    {
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int nvmlInit_v2();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int nvmlDeviceGetCount_v2(out uint deviceCount);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int nvmlShutdown();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern IntPtr nvmlErrorString(int result);
    }
}
