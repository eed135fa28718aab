using System.Text.Json.Serialization;

namespace Pilotlight.Operator.Usage;

/// <summary>One second of usage.</summary>
/// <param name="At">Start of the second.</param>
/// <param name="GpuSeconds">GPU-seconds within it (GPUs held, fractional at pod edges).</param>
public sealed record UsagePoint(DateTime At, double GpuSeconds);

/// <summary>Usage of a function (or a sandbox) over a window at 1 s resolution.</summary>
/// <param name="Namespace">Namespace.</param>
/// <param name="Function">Function (null for a sandbox's report).</param>
/// <param name="From">Window start (inclusive).</param>
/// <param name="To">Window end (exclusive).</param>
/// <param name="GpuSeconds">Total over the window.</param>
/// <param name="Seconds">Per-second series.</param>
public sealed record UsageReport(string Namespace, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Function,
    DateTime From, DateTime To, double GpuSeconds, IReadOnlyList<UsagePoint> Seconds)
{
    /// <summary>Sandbox (null for a function's report).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Sandbox { get; init; }
}

/// <summary>Turns billing intervals into per-second usage, purely.</summary>
public static class UsageQuery
{
    /// <summary>Longest window one query may ask for (a day at 1 s resolution).</summary>
    public static readonly TimeSpan MaxWindow = TimeSpan.FromDays(1);

    /// <summary>Per-second GPU-seconds of <paramref name="intervals"/> (start, end, gpus) over [from, to).</summary>
    public static UsageReport Build(string ns, string? function, DateTime from, DateTime to,
        IEnumerable<(DateTime Start, DateTime End, int Gpus)> intervals)
    {
        if (to <= from || to - from > MaxWindow)
        {
            throw new ArgumentOutOfRangeException(nameof(to), $"the window must be positive and at most {MaxWindow.TotalHours:F0} h");
        }

        var seconds = (int)Math.Ceiling((to - from).TotalSeconds);
        var series = new double[seconds];
        foreach (var (start, end, gpus) in intervals)
        {
            var s = start < from ? from : start;
            var e = end > to ? to : end;
            for (var t = s; t < e;)
            {
                var index = (int)Math.Floor((t - from).TotalSeconds);
                var next = from.AddSeconds(index + 1);
                var until = next < e ? next : e;
                series[index] += gpus * (until - t).TotalSeconds;
                t = until;
            }
        }

        var points = series.Select((v, i) => new UsagePoint(from.AddSeconds(i), Math.Round(v, 6))).ToList();
        return new UsageReport(ns, function, from, to, Math.Round(series.Sum(), 6), points);
    }
}
