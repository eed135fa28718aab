using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Usage;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// The metering sidecar's footprint while sampling (NativeAOT build against
/// the JIT build of the same code, measured in one run) and the operator
/// ledger's cost with 1,000 metered pods.
/// </summary>
internal static class MeteringBench
{
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        var project = Path.Combine(RepositoryRoot.Path, "metering", "Pilotlight.Metering");
        var aotDir = Path.Combine(Path.GetTempPath(), "pilotlight-bench-meter-aot");
        var jitDir = Path.Combine(Path.GetTempPath(), "pilotlight-bench-meter-jit");
        Console.Error.WriteLine("bench: metering: publishing the sidecar (NativeAOT and JIT)");
        (await ProcessRunner.RunAsync("dotnet", ["publish", project, "-c", "Release", "-r", "linux-x64", "-p:PublishAot=true", "-o", aotDir], null)).EnsureSuccess();
        (await ProcessRunner.RunAsync("dotnet", ["publish", project, "-c", "Release", "-o", jitDir], null)).EnsureSuccess();

        var aot = await MeasureAsync(Path.Combine(aotDir, "Pilotlight.Metering"), []);
        var jit = await MeasureAsync("dotnet", [Path.Combine(jitDir, "Pilotlight.Metering.dll")]);
        var (ledgerMs, listMs, statusBytes) = LedgerCost();

        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Metering: sidecar footprint and ledger cost");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores in one run. The sidecar samples once a second with");
        sb.AppendLine(inv, $"1 GPU allocated, no NVML on this machine and /metrics served; figures over {Window.TotalSeconds:F0} s after a {WarmUp.TotalSeconds:F0} s warm-up.");
        sb.AppendLine("Baseline: the JIT build of the same sidecar.");
        sb.AppendLine();
        sb.AppendLine("| sidecar | RSS MiB | peak RSS MiB | CPU % of one core | goal |");
        sb.AppendLine("|---|---:|---:|---:|---|");
        sb.AppendLine(inv, $"| NativeAOT | {aot.RssMiB:F1} | {aot.PeakMiB:F1} | {aot.CpuPercent:F2} | <= 20 MB, <= 1 % |");
        sb.AppendLine(inv, $"| JIT (baseline) | {jit.RssMiB:F1} | {jit.PeakMiB:F1} | {jit.CpuPercent:F2} | |");
        sb.AppendLine(inv, $"| ratio AOT / JIT | {aot.RssMiB / jit.RssMiB:F2} | {aot.PeakMiB / jit.PeakMiB:F2} | {(jit.CpuPercent > 0 ? aot.CpuPercent / jit.CpuPercent : double.NaN):F2} | |");
        sb.AppendLine();
        sb.AppendLine("Operator ledger with 1,000 metered pods (100 functions x 10 pods, one ledger update per function, as one round of reconciles does):");
        sb.AppendLine();
        // Per pod: ms per round x 1000 us / 1000 pods, numerically the same figure in us.
        sb.AppendLine("| | ms per round | per pod |");
        sb.AppendLine("|---|---:|---:|");
        sb.AppendLine(inv, $"| baseline: selecting each function's pods | {listMs:F3} | {listMs:F2} us |");
        sb.AppendLine(inv, $"| selecting + ledger update | {ledgerMs:F3} | {ledgerMs:F2} us |");
        sb.AppendLine(inv, $"| ratio | {ledgerMs / listMs:F1} | |");
        sb.AppendLine();
        sb.AppendLine(inv, $"status.usage of a function with 10 open pods: {statusBytes} bytes of JSON.");
        var report = sb.ToString();
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "metering.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private sealed record Footprint(double RssMiB, double PeakMiB, double CpuPercent);

    private static async Task<Footprint> MeasureAsync(string file, string[] args)
    {
        var dir = Directory.CreateTempSubdirectory("pilotlight-bench-meter-").FullName;
        var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["PILOTLIGHT_NAMESPACE"] = "bench";
        info.Environment["PILOTLIGHT_FUNCTION"] = "meter";
        info.Environment["PILOTLIGHT_GPU_TYPE"] = "H100";
        info.Environment["PILOTLIGHT_GPU_COUNT"] = "1";
        info.Environment["PILOTLIGHT_CPU_REQUEST"] = "2";
        info.Environment["PILOTLIGHT_MEMORY_REQUEST"] = "8Gi";
        info.Environment["PILOTLIGHT_CHECKPOINT"] = Path.Combine(dir, "meter.json");
        info.Environment["PILOTLIGHT_METRICS_PORT"] = ControlPlane.FreePort().ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(info)!;
        _ = process.StandardError.ReadToEndAsync();
        await Task.Delay(WarmUp);
        var cpu0 = CpuSeconds(process.Id);
        var wall = Stopwatch.StartNew();
        await Task.Delay(Window);
        var cpu = CpuSeconds(process.Id) - cpu0;
        var elapsed = wall.Elapsed.TotalSeconds;
        var (rss, peak) = Memory(process.Id);
        process.Kill();
        await process.WaitForExitAsync();
        Directory.Delete(dir, recursive: true);
        return new Footprint(rss / 1024.0, peak / 1024.0, 100 * cpu / elapsed);
    }

    private static double CpuSeconds(int pid)
    {
        // Fields 14 and 15 of /proc/PID/stat: utime and stime in clock ticks (100 a second on Linux).
        var fields = File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    private static (long RssKiB, long PeakKiB) Memory(int pid)
    {
        long Field(string name) => long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(name, StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return (Field("VmRSS:"), Field("VmHWM:"));
    }

    private static (double LedgerMs, double ListMs, int StatusBytes) LedgerCost()
    {
        var t0 = new DateTime(2026, 11, 23, 12, 0, 0, DateTimeKind.Utc);
        var pods = Enumerable.Range(0, 1000).Select(i => new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = $"p{i}", Uid = $"uid-{i:D4}", Labels = new Dictionary<string, string> { ["fn"] = $"f{i / 10}" } },
            Spec = new V1PodSpec
            {
                NodeName = "n",
                Containers = [new V1Container { Name = "function", Resources = new V1ResourceRequirements { Limits = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new("2") } } }],
            },
            Status = new V1PodStatus { StartTime = t0.AddSeconds(-i) },
        }).ToList();
        var functions = Enumerable.Range(0, 100).Select(f => $"f{f}").ToList();
        var previous = functions.ToDictionary(f => f, f => UsageLedger.Update(null, pods.Where(p => p.Metadata.Labels["fn"] == f), new Dictionary<string, DateTime>(), t0));
        var none = new Dictionary<string, DateTime>();

        const int Rounds = 200;
        var list = Stopwatch.StartNew();
        var count = 0;
        for (var r = 0; r < Rounds; r++)
        {
            foreach (var f in functions)
            {
                count += pods.Where(p => p.Metadata.Labels["fn"] == f).Count();
            }
        }

        var listMs = list.Elapsed.TotalMilliseconds / Rounds;
        var ledger = Stopwatch.StartNew();
        for (var r = 0; r < Rounds; r++)
        {
            var now = t0.AddSeconds(r + 1);
            foreach (var f in functions)
            {
                previous[f] = UsageLedger.Update(previous[f], pods.Where(p => p.Metadata.Labels["fn"] == f), none, now);
            }
        }

        var ledgerMs = ledger.Elapsed.TotalMilliseconds / Rounds;
        var bytes = k8s.KubernetesJson.Serialize(previous["f0"]).Length;
        return (ledgerMs, listMs, count > 0 ? bytes : 0);
    }
}
