using Pilotlight.Nvml;

namespace Pilotlight.Metering;

/// <summary>
/// <c>pilotlight-meter gpu-probe</c>: what NVML sees from inside the container
/// that runs it. On a real node only the function container is given the pod's
/// GPUs by the device plugin, so the operator runs this binary there as an exec
/// readiness probe: it fails while fewer GPUs than the pod asked for are
/// visible, and writes one sample to the shared volume, which the shim reads
/// for readiness and the metering sidecar as the pod's GPU use.
/// </summary>
public static class GpuProbe
{
    /// <summary>
    /// Exit codes: 0 ready, 1 fewer GPUs than expected, 2 bad arguments. <paramref name="simulated"/>: the devices
    /// come from a simulated device plugin (PILOTLIGHT_SIMULATED_GPUS=true), so without NVML they count as present.
    /// </summary>
    public static int Run(string[] args, string? visibleDevices, TextWriter stdout, TextWriter stderr, TimeProvider time, bool simulated = false)
    {
        var expect = 0;
        string? write = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--expect" when i + 1 < args.Length && int.TryParse(args[i + 1], out expect) && expect is >= 0 and <= 64:
                    i++;
                    break;
                case "--write" when i + 1 < args.Length && args[i + 1].Length > 0:
                    write = args[++i];
                    break;
                default:
                    stderr.WriteLine($"gpu-probe: unexpected argument '{args[i]}'; usage: gpu-probe [--expect N] [--write PATH]");
                    return 2;
            }
        }

        var visible = GpuReports.VisibleDevices(visibleDevices);
        var report = GpuReports.Sample(visible, time);
        if (!report.Available && simulated && visible is { Count: > 0 })
        {
            // A test node's simulated device plugin (PILOTLIGHT_SIMULATED_GPUS, which only a device plugin or the
            // operator can set: tenants may not name PILOTLIGHT_ variables) gave devices that NVML cannot see:
            // report them as present and idle. Where NVML loads, this never applies.
            report = GpuReports.Simulated(visible, time);
        }

        stdout.WriteLine(GpuReports.Serialize(report));
        if (write is not null)
        {
            try
            {
                GpuReports.Write(write, report);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"gpu-probe: could not write {write}: {e.Message}");
                return 1;
            }
        }

        if (report.Gpus.Count < expect)
        {
            stderr.WriteLine($"gpu-probe: {report.Gpus.Count} of {expect} GPUs visible{(report.Error is null ? "" : $" ({report.Error})")}");
            return 1;
        }

        return 0;
    }

    /// <summary>
    /// <c>pilotlight-meter install DEST</c>: copies this executable to
    /// <paramref name="args"/>[0] (an init container puts it on the shared
    /// volume, where the function container's exec probe runs it).
    /// </summary>
    public static int Install(string[] args, string? self, TextWriter stderr)
    {
        if (args.Length != 1 || self is null)
        {
            stderr.WriteLine("install: usage: install DESTINATION");
            return 2;
        }

        try
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(args[0]));
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            File.Copy(self, args[0], overwrite: true);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(args[0], UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
                    | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            }

            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"install: {e.Message}");
            return 1;
        }
    }
}
