using System.Globalization;

namespace Pilotlight.Metering;

/// <summary>Where the pod's CPU and memory use is read from.</summary>
public interface IUsageSource
{
    /// <summary>Use since the previous call (the first reports 0 CPU); null when nothing is readable.</summary>
    Usage? Read();
}

/// <summary>
/// The pod's use from <c>/proc</c>: with <c>shareProcessNamespace</c> the
/// sidecar sees every process of the pod, so the sum of their CPU time and
/// resident memory is the pod's. CPU of processes that exited between two
/// samples is lost (at most a second's worth).
/// </summary>
public sealed class ProcessTable(string proc = "/proc") : IUsageSource
{
    private readonly Dictionary<int, double> _lastCpu = [];
    private readonly long _pageSize = Environment.SystemPageSize;
    private const double TicksPerSecond = 100;

    /// <inheritdoc />
    public Usage? Read()
    {
        double cpuDelta = 0, rss = 0;
        var seen = new Dictionary<int, double>();
        IEnumerable<string> dirs;
        try
        {
            dirs = Directory.EnumerateDirectories(proc);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        foreach (var dir in dirs)
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            // After the command name in parentheses: state is field 3, utime 14, stime 15, rss 24.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields.Length < 22
                || !long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out var utime)
                || !long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out var stime)
                || !long.TryParse(fields[21], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var pages))
            {
                continue;
            }

            var cpu = (utime + stime) / TicksPerSecond;
            seen[pid] = cpu;
            cpuDelta += _lastCpu.TryGetValue(pid, out var before) ? Math.Max(0, cpu - before) : (_lastCpu.Count == 0 ? 0 : cpu);
            rss += Math.Max(0, pages) * _pageSize;
        }

        _lastCpu.Clear();
        foreach (var (pid, cpu) in seen)
        {
            _lastCpu[pid] = cpu;
        }

        return seen.Count == 0 ? null : new Usage(cpuDelta, rss);
    }
}
