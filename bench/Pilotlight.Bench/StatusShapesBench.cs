using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// What the API server pays for a GpuFunction's status by its shape: N fresh functions per shape, each given its first
/// status by a bare client with 32 patches in flight (as the operator's first reconcile of a function at zero does), on
/// one control plane with Priority and Fairness. Rounds alternate the shapes so a slower API server late in the run
/// (a larger etcd) weighs on all of them alike.
/// </summary>
internal static class StatusShapesBench
{
    private const int Parallelism = 32;

    /// <summary>A status as the operator writes it for a function at zero that never ran (2026-12-03).</summary>
    private static string Full(string name, string now) => $$"""
        {"coldStarts":0,"conditions":[
        {"lastTransitionTime":"{{now}}","message":"no replicas; the first request wakes the function","observedGeneration":1,"reason":"ScaledToZero","status":"True","type":"Ready"},
        {"lastTransitionTime":"{{now}}","message":"nothing to do","observedGeneration":1,"reason":"PodsReady","status":"False","type":"Reconciling"},
        {"lastTransitionTime":"{{now}}","message":"making progress","observedGeneration":1,"reason":"PodsReady","status":"False","type":"Stalled"},
        {"lastTransitionTime":"{{now}}","message":"no replicas; the first request wakes the function","observedGeneration":1,"reason":"ScaledToZero","status":"True","type":"ScaledUp"}],
        "desiredReplicas":0,"endpoint":"http://gateway.example/bench/{{name}}","gpu":"L4","observedGeneration":1,"prePullEligibleNodes":0,
        "prePulledNodes":0,"readyReplicas":0,"replicas":0,"reservedReplicas":0,"selector":"pilotlight.dev/function={{name}}",
        "usage":{"asOf":"{{now}}","closedCpuSeconds":0,"closedGpuSeconds":0,"closedMemoryByteSeconds":0,"cpuSeconds":0,"gpuSeconds":0,"memoryByteSeconds":0,"openPods":[]},
        "warmReplicas":0}
        """;

    /// <summary>The same without the counters that are 0 and without usage (nothing billed yet).</summary>
    private static string Lean(string name, string now) => $$"""
        {"conditions":[
        {"lastTransitionTime":"{{now}}","message":"no replicas; the first request wakes the function","observedGeneration":1,"reason":"ScaledToZero","status":"True","type":"Ready"},
        {"lastTransitionTime":"{{now}}","message":"nothing to do","observedGeneration":1,"reason":"PodsReady","status":"False","type":"Reconciling"},
        {"lastTransitionTime":"{{now}}","message":"making progress","observedGeneration":1,"reason":"PodsReady","status":"False","type":"Stalled"},
        {"lastTransitionTime":"{{now}}","message":"no replicas; the first request wakes the function","observedGeneration":1,"reason":"ScaledToZero","status":"True","type":"ScaledUp"}],
        "endpoint":"http://gateway.example/bench/{{name}}","gpu":"L4","observedGeneration":1,"replicas":0,"selector":"pilotlight.dev/function={{name}}"}
        """;

    /// <summary>Only Ready among the conditions (kstatus's advice for abnormal-true ones: present only when True).</summary>
    private static string Minimal(string name, string now) => $$"""
        {"conditions":[
        {"lastTransitionTime":"{{now}}","message":"no replicas; the first request wakes the function","observedGeneration":1,"reason":"ScaledToZero","status":"True","type":"Ready"}],
        "endpoint":"http://gateway.example/bench/{{name}}","gpu":"L4","observedGeneration":1,"replicas":0,"selector":"pilotlight.dev/function={{name}}"}
        """;

    public static async Task<int> RunAsync(string resultsDir, int size, int rounds)
    {
        var shapes = new (string Name, Func<string, string, string> Body)[] { ("full", Full), ("lean", Lean), ("minimal", Minimal) };
        await using var plane = await ControlPlane.StartAsync(ControlPlane.DefaultServiceClusterIpRange, priorityAndFairness: true);
        await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        using var admin = plane.CreateClient();
        var seconds = shapes.ToDictionary(s => s.Name, _ => new List<double>());
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (name, body) in shapes)
            {
                var ns = await plane.CreateNamespaceAsync($"shape-{name}");
                await Parallel.ForEachAsync(Enumerable.Range(0, size), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
                    await admin.CustomObjects.CreateNamespacedCustomObjectAsync(new GpuFunction
                    {
                        Metadata = new V1ObjectMeta { Name = $"fn-{i:D5}", NamespaceProperty = ns },
                        Spec = new GpuFunctionSpec { Image = "registry.example/models/fn:1", Gpu = new GpuRequirement { Type = GpuType.L4, Count = 1 } },
                    }, Group.Name, Group.Version, ns, "gpufunctions", cancellationToken: ct));
                var now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture);
                var clock = Stopwatch.StartNew();
                await Parallel.ForEachAsync(Enumerable.Range(0, size), new ParallelOptions { MaxDegreeOfParallelism = Parallelism }, async (i, ct) =>
                {
                    var fn = $"fn-{i:D5}";
                    var patch = new V1Patch($"{{\"status\":{body(fn, now).ReplaceLineEndings("")}}}", V1Patch.PatchType.MergePatch);
                    await admin.CustomObjects.PatchNamespacedCustomObjectStatusAsync(patch, Group.Name, Group.Version, ns, "gpufunctions", fn, cancellationToken: ct);
                });
                seconds[name].Add(clock.Elapsed.TotalSeconds);
                Console.Error.WriteLine($"bench: status-shapes round {round + 1}: {name}: {size} first statuses in {clock.Elapsed.TotalSeconds:F1}s ({size / clock.Elapsed.TotalSeconds:F0}/s)");
            }
        }

        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# What a GpuFunction's status costs the API server, by its shape");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores, real kube-apiserver v1.20.2 on loopback with Priority and Fairness on.");
        sb.AppendLine(inv, $"Per shape and round: {size:N0} new functions, then each one's first status by a bare client ({Parallelism} merge patches in flight);");
        sb.AppendLine("rounds alternate the shapes. full: the operator's status for a function at zero that never ran (2026-12-03); lean: the same");
        sb.AppendLine("without counters at 0 and without usage; minimal: also only the Ready condition.");
        sb.AppendLine();
        sb.AppendLine("| shape | seconds per round | patches/s (mean) | against full |");
        sb.AppendLine("|---|---|---:|---:|");
        var full = seconds["full"].Average();
        foreach (var (name, _) in shapes)
        {
            var list = seconds[name];
            sb.AppendLine(inv, $"| {name} | {string.Join(", ", list.Select(s => s.ToString("F1", inv)))} | {size / list.Average():F0} | {full / list.Average():F2}x |");
        }

        Directory.CreateDirectory(resultsDir);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "status-shapes.md"), sb.ToString());
        Console.Error.WriteLine(sb.ToString());
        return 0;
    }
}
