using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pilotlight.Metering;

/// <summary>
/// What one pod has been metered for so far. Allocation counts what was
/// reserved (GPUs, CPU and memory requests) for every second the pod lived;
/// use counts what its processes consumed, where the node lets us read it.
/// </summary>
public sealed record MeterTotals
{
    /// <summary>GPUs allocated x seconds.</summary>
    [JsonPropertyName("gpuAllocatedSeconds")]
    public double GpuAllocatedSeconds { get; init; }

    /// <summary>CPU cores requested x seconds.</summary>
    [JsonPropertyName("cpuAllocatedSeconds")]
    public double CpuAllocatedSeconds { get; init; }

    /// <summary>Memory bytes requested x seconds.</summary>
    [JsonPropertyName("memoryAllocatedByteSeconds")]
    public double MemoryAllocatedByteSeconds { get; init; }

    /// <summary>CPU seconds the pod's processes used (cgroup), when readable.</summary>
    [JsonPropertyName("cpuUsedSeconds")]
    public double CpuUsedSeconds { get; init; }

    /// <summary>Resident memory bytes x seconds (cgroup), when readable.</summary>
    [JsonPropertyName("memoryUsedByteSeconds")]
    public double MemoryUsedByteSeconds { get; init; }

    /// <summary>Seconds metered.</summary>
    [JsonPropertyName("seconds")]
    public double Seconds { get; init; }

    /// <summary>When the last sample was taken; the next one counts from here.</summary>
    [JsonPropertyName("lastSampleAt")]
    public DateTimeOffset? LastSampleAt { get; init; }
}

/// <summary>Allocation of one pod, per second.</summary>
/// <param name="Gpus">GPUs allocated.</param>
/// <param name="CpuCores">CPU cores requested.</param>
/// <param name="MemoryBytes">Memory bytes requested.</param>
public sealed record Allocation(int Gpus, double CpuCores, double MemoryBytes);

/// <summary>What the pod's processes used between two samples, when known.</summary>
/// <param name="CpuSeconds">CPU seconds used in the interval.</param>
/// <param name="MemoryBytes">Resident memory at the sample.</param>
public sealed record Usage(double CpuSeconds, double MemoryBytes);

/// <summary>The arithmetic of metering, pure: time passes, totals grow.</summary>
public static class Meter
{
    /// <summary>
    /// Totals after the interval from the last sample to <paramref name="now"/>.
    /// The first sample only sets the clock. A clock that went backwards adds nothing.
    /// </summary>
    public static MeterTotals Advance(MeterTotals totals, DateTimeOffset now, Allocation allocation, Usage? usage)
    {
        if (totals.LastSampleAt is not { } last)
        {
            return totals with { LastSampleAt = now };
        }

        var seconds = Math.Max(0, (now - last).TotalSeconds);
        return totals with
        {
            GpuAllocatedSeconds = totals.GpuAllocatedSeconds + (allocation.Gpus * seconds),
            CpuAllocatedSeconds = totals.CpuAllocatedSeconds + (allocation.CpuCores * seconds),
            MemoryAllocatedByteSeconds = totals.MemoryAllocatedByteSeconds + (allocation.MemoryBytes * seconds),
            CpuUsedSeconds = totals.CpuUsedSeconds + Math.Max(0, usage?.CpuSeconds ?? 0),
            MemoryUsedByteSeconds = totals.MemoryUsedByteSeconds + ((usage?.MemoryBytes ?? 0) * seconds),
            Seconds = totals.Seconds + seconds,
            LastSampleAt = now > last ? now : last,
        };
    }
}

/// <summary>
/// The sidecar's checkpoint: totals plus a SHA-256 of them, written
/// atomically (temporary file, then rename) so a restart continues from it and
/// a torn or tampered file is recognised rather than trusted.
/// </summary>
public static class Checkpoint
{
    private const int Version = 1;

    /// <summary>The checkpoint text for <paramref name="totals"/>.</summary>
    public static string Serialize(MeterTotals totals)
    {
        var payload = JsonSerializer.Serialize(totals, MeteringJson.Default.MeterTotals);
        return JsonSerializer.Serialize(new CheckpointFile { Version = Version, Totals = payload, Sha256 = Hash(payload) }, MeteringJson.Default.CheckpointFile);
    }

    /// <summary>Reads checkpoint text; null with the reason when it is not a valid checkpoint.</summary>
    public static MeterTotals? Parse(string text, out string? error)
    {
        try
        {
            var file = JsonSerializer.Deserialize(text, MeteringJson.Default.CheckpointFile);
            if (file is null || file.Version != Version || file.Totals is null)
            {
                error = "not a version 1 checkpoint";
                return null;
            }

            if (file.Sha256 != Hash(file.Totals))
            {
                error = "checksum mismatch";
                return null;
            }

            var totals = JsonSerializer.Deserialize(file.Totals, MeteringJson.Default.MeterTotals);
            error = totals is null ? "empty totals" : null;
            return totals;
        }
        catch (JsonException e)
        {
            error = $"unreadable: {e.Message}";
            return null;
        }
    }

    /// <summary>Writes <paramref name="totals"/> to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, MeterTotals totals)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, Serialize(totals));
        File.Move(temporary, path, overwrite: true);
    }

    private static string Hash(string payload) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(payload)));
}

/// <summary>The checkpoint file's envelope.</summary>
public sealed record CheckpointFile
{
    /// <summary>Format version.</summary>
    [JsonPropertyName("version")]
    public int Version { get; init; }

    /// <summary>The totals, as JSON text (hashed as written).</summary>
    [JsonPropertyName("totals")]
    public string? Totals { get; init; }

    /// <summary>SHA-256 of <see cref="Totals"/>, hex.</summary>
    [JsonPropertyName("sha256")]
    public string? Sha256 { get; init; }
}

/// <summary>Source-generated JSON (the sidecar is meant to be published with NativeAOT).</summary>
[JsonSerializable(typeof(MeterTotals))]
[JsonSerializable(typeof(CheckpointFile))]
internal sealed partial class MeteringJson : JsonSerializerContext;
