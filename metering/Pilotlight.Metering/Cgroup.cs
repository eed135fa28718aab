using System.Globalization;

namespace Pilotlight.Metering;

/// <summary>
/// Reads the pod's CPU time and memory from its cgroup (v2: cpu.stat and
/// memory.current; v1: cpuacct.usage and memory.usage_in_bytes). A sidecar
/// sees the pod-level cgroup through a shared mount; where nothing is
/// readable, use is reported absent.
/// </summary>
public sealed class Cgroup(string root) : IUsageSource
{
    private double? _lastCpuSeconds;

    /// <inheritdoc />
    public Usage? Read()
    {
        var cpu = CpuSeconds();
        var memory = MemoryBytes();
        if (cpu is null && memory is null)
        {
            return null;
        }

        var delta = cpu is { } now && _lastCpuSeconds is { } before ? Math.Max(0, now - before) : 0;
        _lastCpuSeconds = cpu ?? _lastCpuSeconds;
        return new Usage(delta, memory ?? 0);
    }

    private double? CpuSeconds()
    {
        if (ReadLines("cpu.stat")?.FirstOrDefault(l => l.StartsWith("usage_usec ", StringComparison.Ordinal)) is { } line
            && long.TryParse(line.AsSpan(11), NumberStyles.None, CultureInfo.InvariantCulture, out var usec))
        {
            return usec / 1e6;
        }

        return ReadNumber("cpuacct/cpuacct.usage") is { } ns ? ns / 1e9 : null;
    }

    private double? MemoryBytes() => ReadNumber("memory.current") ?? ReadNumber("memory/memory.usage_in_bytes");

    private double? ReadNumber(string file) =>
        ReadLines(file)?.FirstOrDefault() is { } text && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : null;

    private string[]? ReadLines(string file)
    {
        try
        {
            return File.ReadAllLines(Path.Combine(root, file));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
