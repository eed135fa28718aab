using System.Collections;
using System.Globalization;

namespace Pilotlight.Metering;

/// <summary>The sidecar's settings, from the environment the operator gives it.</summary>
/// <param name="Namespace">The function's namespace (metric label).</param>
/// <param name="Function">The function's name (metric label).</param>
/// <param name="GpuType">The GPU type (metric label).</param>
/// <param name="Allocation">What the pod reserves.</param>
/// <param name="CheckpointPath">Where totals are checkpointed (an emptyDir survives sidecar restarts).</param>
/// <param name="MetricsPort">Port of /metrics.</param>
/// <param name="CgroupRoot">A cgroup directory to read use from; null to read the pod's processes from /proc (shared process namespace).</param>
/// <param name="VisibleGpus">UUIDs of the pod's GPUs (NVIDIA_VISIBLE_DEVICES), or null for every GPU NVML sees.</param>
/// <param name="GpuReportPath">Where the function container's GPU probe writes its samples (read when NVML is not usable here); null for none.</param>
public sealed record MeterOptions(
    string Namespace,
    string Function,
    string GpuType,
    Allocation Allocation,
    string CheckpointPath,
    int MetricsPort,
    string? CgroupRoot,
    IReadOnlySet<string>? VisibleGpus,
    string? GpuReportPath = null)
{
    /// <summary>Options from <paramref name="env"/>; null with a one-line error naming the variable when one is invalid.</summary>
    public static MeterOptions? FromEnvironment(IDictionary env, out string? error)
    {
        string? Get(string name) => env[name] as string is { Length: > 0 } v ? v : null;
        error = null;
        var missing = new[] { "PILOTLIGHT_NAMESPACE", "PILOTLIGHT_FUNCTION" }.FirstOrDefault(n => Get(n) is null);
        if (missing is not null)
        {
            error = $"{missing} is required";
            return null;
        }

        if (!int.TryParse(Get("PILOTLIGHT_GPU_COUNT") ?? "0", NumberStyles.None, CultureInfo.InvariantCulture, out var gpus) || gpus > 64)
        {
            error = $"PILOTLIGHT_GPU_COUNT={Get("PILOTLIGHT_GPU_COUNT")}: expected 0..64";
            return null;
        }

        if (!TryCpu(Get("PILOTLIGHT_CPU_REQUEST") ?? "0", out var cpu))
        {
            error = $"PILOTLIGHT_CPU_REQUEST={Get("PILOTLIGHT_CPU_REQUEST")}: expected cores such as 2 or 500m";
            return null;
        }

        if (!TryBytes(Get("PILOTLIGHT_MEMORY_REQUEST") ?? "0", out var memory))
        {
            error = $"PILOTLIGHT_MEMORY_REQUEST={Get("PILOTLIGHT_MEMORY_REQUEST")}: expected bytes such as 512Mi or 2Gi";
            return null;
        }

        if (!int.TryParse(Get("PILOTLIGHT_METRICS_PORT") ?? "9102", NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            error = $"PILOTLIGHT_METRICS_PORT={Get("PILOTLIGHT_METRICS_PORT")}: expected 0..65535";
            return null;
        }

        var visible = Pilotlight.Nvml.GpuReports.VisibleDevices(Get("NVIDIA_VISIBLE_DEVICES"));
        return new MeterOptions(Get("PILOTLIGHT_NAMESPACE")!, Get("PILOTLIGHT_FUNCTION")!, Get("PILOTLIGHT_GPU_TYPE") ?? "none",
            new Allocation(gpus, cpu, memory), Get("PILOTLIGHT_CHECKPOINT") ?? "/var/run/pilotlight/meter.json", port,
            Get("PILOTLIGHT_CGROUP"), visible, Get("PILOTLIGHT_GPU_REPORT"));
    }

    /// <summary>Kubernetes CPU quantities: 2, 0.5, 500m.</summary>
    internal static bool TryCpu(string text, out double cores)
    {
        var milli = text.EndsWith('m');
        var ok = double.TryParse(milli ? text[..^1] : text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out cores) && cores >= 0;
        cores = milli ? cores / 1000 : cores;
        return ok;
    }

    /// <summary>Kubernetes memory quantities: 1024, 512Mi, 2Gi, 1G.</summary>
    internal static bool TryBytes(string text, out double bytes)
    {
        (string Suffix, double Factor)[] units = [("Ki", 1024), ("Mi", 1024 * 1024), ("Gi", 1024d * 1024 * 1024), ("Ti", Math.Pow(1024, 4)),
            ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)];
        var unit = units.FirstOrDefault(u => text.EndsWith(u.Suffix, StringComparison.Ordinal));
        var number = unit.Suffix is null ? text : text[..^unit.Suffix.Length];
        var ok = double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out bytes) && bytes >= 0;
        bytes *= unit.Suffix is null ? 1 : unit.Factor;
        return ok;
    }
}
