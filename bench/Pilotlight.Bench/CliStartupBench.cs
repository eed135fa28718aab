using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// How long the NativeAOT <c>pilotlight</c> binary takes to start and answer <c>get</c> on a real API server, beside
/// <c>kubectl get gfn</c> (the baseline, same run, same objects) and the same CLI run on the JIT. Goal: 300 ms.
/// </summary>
internal static class CliStartupBench
{
    private const int Functions = 20;
    private const int Runs = 15;

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        var root = RepositoryRoot.Path;
        var aotDir = Path.Combine(Path.GetTempPath(), $"pilotlight-cli-bench-{Environment.ProcessId}");
        Console.Error.WriteLine("bench: cli-startup: publishing the CLI with NativeAOT");
        (await ProcessRunner.RunAsync("dotnet", ["publish", Path.Combine(root, "cli/Pilotlight.Cli"), "-c", "Release", "-r", "linux-x64",
            "-p:PublishAot=true", "-p:StripSymbols=true", "-o", aotDir], root)).EnsureSuccess();
        var aot = Path.Combine(aotDir, "pilotlight");
        var jit = Path.Combine(root, "cli/Pilotlight.Cli/bin/Release/net10.0/pilotlight.dll");
        (await ProcessRunner.RunAsync("dotnet", ["build", Path.Combine(root, "cli/Pilotlight.Cli"), "-c", "Release", "-v", "quiet", "-nologo"], root)).EnsureSuccess();
        var kubectl = FindKubectl();

        Console.Error.WriteLine("bench: cli-startup: starting a local control plane");
        await using var plane = await ControlPlane.StartAsync();
        await plane.InstallCrdsAsync(Path.Combine(root, "crds"));
        var ns = await plane.CreateNamespaceAsync("bench-cli");
        using (var client = plane.CreateClient())
        {
            for (var i = 0; i < Functions; i++)
            {
                var fn = new GpuFunction
                {
                    Metadata = new V1ObjectMeta { Name = $"fn-{i:D2}", NamespaceProperty = ns },
                    Spec = new GpuFunctionSpec { Image = $"registry.example/models/fn-{i}:1", Gpu = new GpuRequirement { Type = GpuType.L4, Count = 1 } },
                };
                await client.CustomObjects.CreateNamespacedCustomObjectAsync(fn, Group.Name, Group.Version, ns, "gpufunctions");
            }
        }

        var kubeconfig = plane.KubeconfigPath;
        var variants = new List<(string Name, string File, string[] Args)>
        {
            ("pilotlight get functions (NativeAOT)", aot, ["get", "functions", "-n", ns, "--kubeconfig", kubeconfig]),
            ("pilotlight get functions (JIT, dotnet pilotlight.dll)", "dotnet", [jit, "get", "functions", "-n", ns, "--kubeconfig", kubeconfig]),
        };
        if (kubectl is not null)
        {
            variants.Insert(0, ("kubectl get gfn (baseline)", kubectl, ["get", "gfn", "-n", ns, "--kubeconfig", kubeconfig]));
        }

        var timings = variants.ToDictionary(v => v.Name, _ => new List<double>());
        foreach (var v in variants)
        {
            // One untimed run each: the page cache holds every binary before any timing starts.
            (await ProcessRunner.RunAsync(v.File, v.Args, null)).EnsureSuccess();
        }
        for (var run = 0; run < Runs; run++)
        {
            // Interleaved, so a slow moment of the machine falls on all of them alike.
            foreach (var v in variants)
            {
                var watch = Stopwatch.StartNew();
                var result = await ProcessRunner.RunAsync(v.File, v.Args, null);
                var ms = watch.Elapsed.TotalMilliseconds;
                result.EnsureSuccess();
                if (!result.StandardOutput.Contains("fn-19", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"{v.Name} did not list fn-19: {result.StandardOutput}");
                }
                timings[v.Name].Add(ms);
            }
        }

        var report = Render(variants.Select(v => v.Name).ToList(), timings, kubectl, new FileInfo(aot).Length);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "cli-startup.md"), report);
        Console.WriteLine(report);
        Directory.Delete(aotDir, recursive: true);
        return 0;
    }

    /// <summary>kubectl from PATH, else the real node's build cache (<c>make real-node</c>); null when neither has one.</summary>
    private static string? FindKubectl()
    {
        var cache = Environment.GetEnvironmentVariable("PILOTLIGHT_CACHE") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache/pilotlight");
        var candidates = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "kubectl"))
            .Append(Path.Combine(cache, "node/v1.20.2/bin/kubectl"));
        return candidates.FirstOrDefault(File.Exists);
    }

    private static string Render(List<string> names, Dictionary<string, List<double>> timings, string? kubectl, long aotBytes)
    {
        static double Median(List<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }

        var sb = new StringBuilder();
        sb.AppendLine("# CLI: start-up and one `get`");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores, real kube-apiserver v1.20.2 on loopback, {Functions} GpuFunctions in the namespace.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Wall time from process start to exit, {Runs} runs each, interleaved, after one untimed run each: median (min-max), ms.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"The NativeAOT binary is {aotBytes / 1048576.0:F1} MiB (stripped). Goal: NativeAOT `get` <= 300 ms.");
        if (kubectl is null)
        {
            sb.AppendLine("kubectl was not found (PATH, or the real node's cache: `make real-node`), so there is no kubectl baseline in this run.");
        }
        sb.AppendLine();
        sb.AppendLine("| command | median ms | min-max ms | ratio to the first row |");
        sb.AppendLine("|---|---:|---:|---:|");
        var first = Median(timings[names[0]]);
        foreach (var name in names)
        {
            var t = timings[name];
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {Median(t):F0} | {t.Min():F0}-{t.Max():F0} | {Median(t) / first:F2} |");
        }
        return sb.ToString();
    }
}
