using System.Runtime.InteropServices;

namespace Pilotlight.Nvml;

/// <summary>What NVML said: whether it could be used, how many devices it sees, and why not when it could not.</summary>
/// <param name="Available">NVML loaded and initialised.</param>
/// <param name="DeviceCount">Devices NVML reports (0 when unavailable).</param>
/// <param name="Error">Why NVML could not be used or counted, when it could not.</param>
public sealed record NvmlProbe(bool Available, int DeviceCount, string? Error);

/// <summary>
/// A minimal P/Invoke binding to the NVIDIA Management Library: enough to count GPUs (the shim's readiness)
/// and to sample their utilisation and memory (the metering sidecar). The library ships
/// with the driver (and is mounted into containers by the NVIDIA container toolkit); where it is absent
/// the probe reports so instead of throwing.
/// </summary>
public static class NvmlLibrary
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

    /// <summary>
    /// Opens NVML for repeated sampling; null (with the reason) where NVML is
    /// absent or fails to initialise, which is a normal state on CPU nodes.
    /// </summary>
    public static NvmlSession? Open(out string? error)
    {
        try
        {
            var init = NativeMethods.nvmlInit_v2();
            if (init != Success)
            {
                error = $"nvmlInit failed: {Describe(init)}";
                return null;
            }

            error = null;
            return new NvmlSession();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            error = $"{Library} not usable: {FirstSentence(e.Message)}";
            return null;
        }
    }

    /// <summary>The loader's messages run on with advice; the first sentence is the fact.</summary>
    internal static string FirstSentence(string message)
    {
        var line = message.Split('\n')[0];
        var end = line.IndexOf(". ", StringComparison.Ordinal);
        return (end > 0 ? line[..end] : line).TrimEnd(' ', ':', '.');
    }

    internal static string Describe(int code)
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

    internal static class NativeMethods
    {
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int nvmlDeviceGetUtilizationRates(IntPtr device, out Utilization utilization);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int nvmlDeviceGetMemoryInfo(IntPtr device, out Memory memory);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern unsafe int nvmlDeviceGetUUID(IntPtr device, byte* uuid, uint length);

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

/// <summary>One GPU's sample: utilisation (0..1) over NVML's last sample period and memory in bytes.</summary>
public sealed record GpuSample(string Uuid, double Utilization, ulong MemoryUsedBytes, ulong MemoryTotalBytes);

/// <summary>An initialised NVML, sampled once a second by the metering sidecar; disposing shuts NVML down.</summary>
public sealed class NvmlSession : IDisposable
{
    private int _disposed;

    internal NvmlSession()
    {
    }

    /// <summary>
    /// Samples every GPU NVML sees, or only those whose UUID is in
    /// <paramref name="only"/> (a pod's own GPUs, as NVIDIA_VISIBLE_DEVICES names them).
    /// </summary>
    public unsafe IReadOnlyList<GpuSample> Sample(IReadOnlySet<string>? only = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (NvmlLibrary.NativeMethods.nvmlDeviceGetCount_v2(out var count) != 0)
        {
            return [];
        }

        var samples = new List<GpuSample>();
        var buffer = stackalloc byte[96];
        for (uint i = 0; i < count; i++)
        {
            if (NvmlLibrary.NativeMethods.nvmlDeviceGetHandleByIndex_v2(i, out var device) != 0
                || NvmlLibrary.NativeMethods.nvmlDeviceGetUUID(device, buffer, 96) != 0)
            {
                continue;
            }

            var uuid = Marshal.PtrToStringAnsi((IntPtr)buffer) ?? "";
            if (only is not null && !only.Contains(uuid))
            {
                continue;
            }

            var util = NvmlLibrary.NativeMethods.nvmlDeviceGetUtilizationRates(device, out var u) == 0 ? u.Gpu / 100.0 : double.NaN;
            var mem = NvmlLibrary.NativeMethods.nvmlDeviceGetMemoryInfo(device, out var m) == 0 ? m : default;
            samples.Add(new GpuSample(uuid, util, mem.Used, mem.Total));
        }

        return samples;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _ = NvmlLibrary.NativeMethods.nvmlShutdown();
        }
    }
}

/// <summary>nvmlUtilization_t.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Utilization
{
    public uint Gpu;
    public uint Memory;
}

/// <summary>nvmlMemory_t.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Memory
{
    public ulong Total;
    public ulong Free;
    public ulong Used;
}
