using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pilotlight.Nvml;

/// <summary>
/// The GPU report file: on a real node only the function container is given the
/// pod's GPUs, so a probe run there samples them through NVML and writes this
/// file to a volume the sidecars share; the shim reads it for readiness and the
/// metering sidecar for GPU use.
/// </summary>
public static class GpuReports
{
    /// <summary>One sample of the GPUs NVML sees (only <paramref name="visible"/> ones when given).</summary>
    public static GpuReport Sample(IReadOnlySet<string>? visible, TimeProvider time)
    {
        using var session = NvmlLibrary.Open(out var error);
        if (session is null)
        {
            return new GpuReport { At = time.GetUtcNow(), Available = false, Error = error };
        }

        return new GpuReport
        {
            At = time.GetUtcNow(),
            Available = true,
            Gpus = [.. session.Sample(visible).Select(g => new GpuReading
            {
                Uuid = g.Uuid,
                Utilization = double.IsNaN(g.Utilization) ? null : g.Utilization,
                MemoryUsedBytes = g.MemoryUsedBytes,
                MemoryTotalBytes = g.MemoryTotalBytes,
            })],
        };
    }

    /// <summary>Simulated GPUs (a test node's device plugin): each of <paramref name="visible"/> present, idle, no memory.</summary>
    public static GpuReport Simulated(IReadOnlySet<string> visible, TimeProvider time) => new()
    {
        At = time.GetUtcNow(),
        Available = true,
        Gpus = [.. visible.Order(StringComparer.Ordinal).Select(uuid => new GpuReading { Uuid = uuid, Utilization = 0 })],
    };

    /// <summary>The pod's own GPUs: the UUIDs in NVIDIA_VISIBLE_DEVICES, or null (every GPU NVML sees) when it names none.</summary>
    public static IReadOnlySet<string>? VisibleDevices(string? value) => value is { } v && v.StartsWith("GPU-", StringComparison.Ordinal)
        ? v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet()
        : null;

    /// <summary>The report as JSON text.</summary>
    public static string Serialize(GpuReport report) => JsonSerializer.Serialize(report, GpuReportJson.Default.GpuReport);

    /// <summary>Writes <paramref name="report"/> to <paramref name="path"/> atomically (readers never see half a file).</summary>
    public static void Write(string path, GpuReport report)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, Serialize(report));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The report at <paramref name="path"/>; null when absent, unreadable, corrupt or older than <paramref name="maxAge"/>.</summary>
    public static GpuReport? ReadFresh(string path, TimeProvider time, TimeSpan maxAge)
    {
        try
        {
            var report = JsonSerializer.Deserialize(File.ReadAllText(path), GpuReportJson.Default.GpuReport);
            return report is not null && time.GetUtcNow() - report.At <= maxAge ? report : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }
}

/// <summary>One sample of a container's GPUs, as <c>pilotlight-meter gpu-probe</c> writes it for the other containers of its pod.</summary>
public sealed record GpuReport
{
    /// <summary>When the sample was taken.</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>NVML loaded and initialised.</summary>
    [JsonPropertyName("available")]
    public bool Available { get; init; }

    /// <summary>Why NVML could not be used.</summary>
    [JsonPropertyName("error")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Error { get; init; }

    /// <summary>The GPUs seen.</summary>
    [JsonPropertyName("gpus")]
    public IReadOnlyList<GpuReading> Gpus { get; init; } = [];
}

/// <summary>One GPU in a <see cref="GpuReport"/>.</summary>
public sealed record GpuReading
{
    /// <summary>NVML's UUID (GPU-...).</summary>
    [JsonPropertyName("uuid")]
    public string Uuid { get; init; } = "";

    /// <summary>Utilisation 0..1 over NVML's last sample period; null when NVML could not say.</summary>
    [JsonPropertyName("utilization")]
    public double? Utilization { get; init; }

    /// <summary>Device memory in use.</summary>
    [JsonPropertyName("memoryUsedBytes")]
    public ulong MemoryUsedBytes { get; init; }

    /// <summary>Device memory in all.</summary>
    [JsonPropertyName("memoryTotalBytes")]
    public ulong MemoryTotalBytes { get; init; }
}

/// <summary>Source-generated JSON (the sidecar is published with NativeAOT).</summary>
[JsonSerializable(typeof(GpuReport))]
internal sealed partial class GpuReportJson : JsonSerializerContext;
