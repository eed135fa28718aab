using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s.Models;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Prometheus;

namespace Pilotlight.Bench;

/// <summary>
/// What the condition gauges cost the leader at a scrape, at N functions with four conditions each: all healthy (the
/// common case; since 2026-12-04 they have no series of their own, only the counts by condition) against all unhealthy
/// (every condition a series of its own: what every function cost before, healthy or not). Each population gets a fresh
/// registry in this process, the cache is in memory (no API server); rounds alternate the two. Figures per population:
/// the series and bytes of the exposition, the median time of a scrape, and the managed heap the registry holds after the
/// scrapes (a full collection before and after).
/// </summary>
internal static class ConditionMetricsBench
{
    private const int Scrapes = 10;

    private sealed record Sample(int Series, long Bytes, double ScrapeMs, double HeldMiB);

    private static V1Condition Condition(string type, string status, string reason) => new() { Type = type, Status = status, Reason = reason };

    private static IReadOnlyList<V1Condition> Healthy() =>
    [
        Condition("Ready", "True", "ScaledToZero"), Condition("Reconciling", "False", "PodsReady"),
        Condition("Stalled", "False", "PodsReady"), Condition("ScaledUp", "True", "ScaledToZero"),
    ];

    private static IReadOnlyList<V1Condition> Unhealthy() =>
    [
        Condition("Ready", "False", "Unschedulable"), Condition("Reconciling", "True", "PodsStarting"),
        Condition("Stalled", "True", "Unschedulable"), Condition("ScaledUp", "False", "Unschedulable"),
    ];

    public static async Task<int> RunAsync(string resultsDir, int size, int rounds)
    {
        var populations = new (string Name, Func<IReadOnlyList<V1Condition>> Conditions)[] { ("healthy", Healthy), ("unhealthy", Unhealthy) };
        var samples = populations.ToDictionary(p => p.Name, _ => new List<Sample>());
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (name, conditions) in populations)
            {
                var sample = await MeasureAsync(size, conditions);
                samples[name].Add(sample);
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"bench: condition-metrics round {round + 1}: {name}: {sample.Series} series, {sample.Bytes / 1024.0:F0} KiB, scrape {sample.ScrapeMs:F1} ms, held {sample.HeldMiB:F1} MiB"));
            }
        }

        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# The operator's condition gauges at a scrape");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores: {size:N0} GpuFunctions with four conditions each (Ready,");
        sb.AppendLine("Reconciling, Stalled, ScaledUp) in the leader's metrics, in this process (no API server). healthy: Ready True, nothing");
        sb.AppendLine("Stalled (no series of their own since 2026-12-04, only the counts by condition); unhealthy: every condition a series");
        sb.AppendLine("of its own, which is what every function cost before, healthy or not. A fresh registry per population and round,");
        sb.AppendLine(inv, $"rounds alternating; {Scrapes} scrapes each. held: managed heap after the scrapes less before the registry (full collections).");
        sb.AppendLine();
        sb.AppendLine("| population | series | exposition KiB | scrape ms (median; per round) | held MiB (per round) |");
        sb.AppendLine("|---|---:|---:|---|---|");
        foreach (var (name, _) in populations)
        {
            var list = samples[name];
            sb.AppendLine(inv, $"| {name} | {list[0].Series:N0} | {list[0].Bytes / 1024.0:F0} | {string.Join(", ", list.Select(s => s.ScrapeMs.ToString("F1", inv)))} | {string.Join(", ", list.Select(s => s.HeldMiB.ToString("F1", inv)))} |");
        }

        var (h, u) = (samples["healthy"], samples["unhealthy"]);
        sb.AppendLine();
        sb.AppendLine(inv, $"Ratios, unhealthy against healthy (means over the rounds): scrape time {u.Average(s => s.ScrapeMs) / h.Average(s => s.ScrapeMs):F0}x, exposition {(double)u[0].Bytes / h[0].Bytes:F0}x, held memory {u.Average(s => s.HeldMiB) / Math.Max(0.01, h.Average(s => s.HeldMiB)):F0}x.");
        sb.AppendLine();
        sb.AppendLine(inv, $"Run: `dotnet run --project bench/Pilotlight.Bench -c Release -- bench/results condition-metrics {size} {rounds}`.");
        Directory.CreateDirectory(resultsDir);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "condition-metrics.md"), sb.ToString());
        Console.Error.WriteLine(sb.ToString());
        return 0;
    }

    private static async Task<Sample> MeasureAsync(int size, Func<IReadOnlyList<V1Condition>> conditions)
    {
        List<(ObjectKey, IReadOnlyList<V1Condition>?)> functions = [.. Enumerable.Range(0, size)
            .Select(i => (new ObjectKey($"team-{i % 50:D2}", $"fn-{i:D5}"), (IReadOnlyList<V1Condition>?)conditions()))];
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var registry = Metrics.NewCustomRegistry();
        var metrics = new OperatorMetrics(registry);
        metrics.UseConditions(() => functions, () => []);
        using var stop = new CancellationTokenSource();
        var scope = metrics.LeaderScope().RunAsync(new ControllerMetrics(Metrics.NewCustomRegistry()), stop.Token);
        var times = new List<double>();
        byte[] last = [];
        for (var i = 0; i < Scrapes; i++)
        {
            using var stream = new MemoryStream();
            var clock = Stopwatch.StartNew();
            await registry.CollectAndExportAsTextAsync(stream);
            times.Add(clock.Elapsed.TotalMilliseconds);
            last = stream.ToArray();
        }

        var held = (GC.GetTotalMemory(forceFullCollection: true) - before) / (1024.0 * 1024.0);
        var text = Encoding.UTF8.GetString(last);
        var series = text.Split('\n').Count(l => l.StartsWith("pilotlight_function_condition{", StringComparison.Ordinal)
            || l.StartsWith("pilotlight_functions_by_condition{", StringComparison.Ordinal));
        await stop.CancelAsync();
        await scope;
        GC.KeepAlive(registry);
        GC.KeepAlive(functions);
        times.Sort();
        return new Sample(series, last.Length, times[times.Count / 2], held);
    }
}
