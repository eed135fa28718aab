using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// A no-op controller over 5,000 GpuFunctions on a real API server: time
/// from process start to all reconciled, and peak RSS, against a baseline
/// measured in the same run (a process that only lists them into a cache).
/// </summary>
internal static class ControllerBench
{
    private const int Functions = 5000;
    private const int Runs = 3;

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        Console.Error.WriteLine("bench: starting a local control plane");
        await using var plane = await ControlPlane.StartAsync();
        await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        var ns = await plane.CreateNamespaceAsync("bench");

        var create = Stopwatch.StartNew();
        await CreateFunctionsAsync(plane, ns);
        Console.Error.WriteLine($"bench: created {Functions} GpuFunctions in {create.Elapsed.TotalSeconds:F1}s");

        var baseline = new List<(double Wall, ChildReport Report)>();
        var controller = new List<(double Wall, ChildReport Report)>();
        for (var i = 0; i < Runs; i++)
        {
            baseline.Add(await RunChildAsync(plane, ns, "list-only"));
            controller.Add(await RunChildAsync(plane, ns, "reconcile"));
            Console.Error.WriteLine($"bench: run {i + 1}: list-only {baseline[^1].Wall:F2}s, controller {controller[^1].Wall:F2}s " +
                $"({controller[^1].Report.PeakRssBytes / 1048576.0:F0} MiB)");
        }

        var report = Render(baseline, controller);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "controller-noop.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private static async Task CreateFunctionsAsync(ControlPlane plane, string ns)
    {
        using var client = plane.CreateClient();
        await Parallel.ForEachAsync(Enumerable.Range(0, Functions), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            var fn = new GpuFunction
            {
                Metadata = new V1ObjectMeta { Name = $"fn-{i:D5}", NamespaceProperty = ns },
                Spec = new GpuFunctionSpec
                {
                    Image = $"registry.example/models/fn-{i % 50}:1",
                    Gpu = new GpuRequirement { Type = (i % 3) switch { 0 => GpuType.H100, 1 => GpuType.L4, _ => GpuType.T4 }, Count = 1 + (i % 2) },
                },
            };
            await client.CustomObjects.CreateNamespacedCustomObjectAsync(fn, Group.Name, Group.Version, ns, "gpufunctions", cancellationToken: ct);
        });
    }

    private static async Task<(double Wall, ChildReport Report)> RunChildAsync(ControlPlane plane, string ns, string mode)
    {
        var wall = Stopwatch.StartNew();
        var result = await ProcessRunner.RunAsync(Environment.ProcessPath!,
            ["noop-controller", plane.KubeconfigPath, ns, Functions.ToString(CultureInfo.InvariantCulture), mode], null);
        var elapsed = wall.Elapsed.TotalSeconds;
        result.EnsureSuccess();
        var last = result.StandardOutput.TrimEnd().Split('\n')[^1];
        return (elapsed, JsonSerializer.Deserialize<ChildReport>(last)!);
    }

    private static string Render(List<(double Wall, ChildReport Report)> baseline, List<(double Wall, ChildReport Report)> controller)
    {
        static double Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }

        double bWall = Median(baseline.Select(b => b.Wall)), cWall = Median(controller.Select(c => c.Wall));
        double bIn = Median(baseline.Select(b => b.Report.Seconds)), cIn = Median(controller.Select(c => c.Report.Seconds));
        double bRss = Median(baseline.Select(b => b.Report.PeakRssBytes / 1048576.0)), cRss = Median(controller.Select(c => c.Report.PeakRssBytes / 1048576.0));
        var sb = new StringBuilder();
        sb.AppendLine("# No-op controller over 5,000 GpuFunctions");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores, real kube-apiserver v1.20.2 on loopback; median of {Runs} runs.");
        sb.AppendLine("Each run is a fresh process: wall time counts .NET start-up; in-process time starts at Main.");
        sb.AppendLine("Baseline: a process that only lists the same objects into an informer cache (no work queue, no reconciles).");
        sb.AppendLine("Goal: <= 30 s and <= 250 MB peak RSS.");
        sb.AppendLine();
        sb.AppendLine("| | wall s | in-process s | peak RSS MiB |");
        sb.AppendLine("|---|---:|---:|---:|");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| baseline: list into cache | {bWall:F2} | {bIn:F2} | {bRss:F0} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| no-op controller, all reconciled | {cWall:F2} | {cIn:F2} | {cRss:F0} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| ratio controller / baseline | {cWall / bWall:F2} | {cIn / bIn:F2} | {cRss / bRss:F2} |");
        sb.AppendLine();
        sb.AppendLine("Every run:");
        sb.AppendLine();
        for (var i = 0; i < baseline.Count; i++)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"- run {i + 1}: baseline {baseline[i].Wall:F2} s / {baseline[i].Report.PeakRssBytes / 1048576.0:F0} MiB; " +
                $"controller {controller[i].Wall:F2} s / {controller[i].Report.PeakRssBytes / 1048576.0:F0} MiB, {controller[i].Report.Reconciled} reconciles");
        }

        return sb.ToString();
    }
}
