using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// The footprint of the programs every pod carries (the runtime shim, the metering sidecar and the sandbox agent,
/// which is the shim in sandbox mode), NativeAOT as the images ship them: with their pinned GC settings and without
/// them (the baseline, <c>-p:PilotlightPinGc=false</c>, same run), on this host and on this host made to look like
/// one whose L3 cache is 260 MiB (.NET sizes its gen0 budget from the largest CPU cache it finds). The big cache is
/// emulated by running the program in a mount namespace where <c>/sys/devices/system/cpu/cpu0/cache</c> reports it,
/// which is where the GC reads it on Linux; that needs root (CAP_SYS_ADMIN), and without it those columns are skipped.
/// </summary>
internal static class SidecarsBench
{
    private const int Repeats = 3;
    private const long EmulatedL3KiB = 260 * 1024;
    private const int RequestsPerSecond = 100;
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(30);

    private sealed record Build(string Name, string Shim, string Meter);

    private sealed record Sample(double IdleMiB, double IdleAnonMiB, double LoadMiB, double LoadAnonMiB, double PeakMiB, double CpuPercent, int Failures);

    private sealed record Program3(Sample Shim, Sample Meter, Sample Agent);

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        var root = RepositoryRoot.Path;
        var builds = new List<Build>();
        foreach (var (name, pin) in new[] { ("pinned", "true"), ("unpinned", "false") })
        {
            var dir = Path.Combine(Path.GetTempPath(), $"pilotlight-bench-sidecars-{name}");
            Console.Error.WriteLine($"bench: sidecars: publishing the shim and the meter with NativeAOT ({name})");
            foreach (var project in new[] { "runtime-shim/Pilotlight.RuntimeShim", "metering/Pilotlight.Metering" })
            {
                // The variants share obj/: the ILC response file names the runtime settings, so a change recompiles.
                (await ProcessRunner.RunAsync("dotnet", ["publish", Path.Combine(root, project), "-c", "Release", "-r", "linux-x64",
                    "-p:PublishAot=true", "-p:StripSymbols=true", $"-p:PilotlightPinGc={pin}", "-o", dir], root)).EnsureSuccess();
            }

            builds.Add(new Build(name, Path.Combine(dir, "Pilotlight.RuntimeShim"), Path.Combine(dir, "Pilotlight.Metering")));
        }

        var fakeCache = await FakeCacheAsync();
        var hosts = fakeCache is null ? new[] { "this host" } : ["this host", "emulated 260 MiB L3"];
        await using var upstream = await StartUpstreamAsync();

        var results = new Dictionary<(string Build, string Host), List<Program3>>();
        for (var r = 0; r < Repeats; r++)
        {
            foreach (var host in hosts)
            {
                foreach (var build in builds)
                {
                    Console.Error.WriteLine($"bench: sidecars: {build.Name}, {host}, run {r + 1}/{Repeats}");
                    var wrap = host == "this host" ? null : fakeCache;
                    var measured = await MeasureAsync(build, wrap, upstream.Url);
                    (results.TryGetValue((build.Name, host), out var list) ? list : results[(build.Name, host)] = []).Add(measured);
                }
            }
        }

        var report = Report(builds, hosts, results, fakeCache is not null);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "sidecars.md"), report);
        Console.WriteLine(report);
        if (fakeCache is not null)
        {
            Directory.Delete(fakeCache, recursive: true);
        }

        return 0;
    }

    private static async Task<Program3> MeasureAsync(Build build, string? fakeCache, string upstreamUrl)
    {
        var work = Directory.CreateTempSubdirectory("pilotlight-bench-sidecars-").FullName;
        var shimPort = ControlPlane.FreePort();
        var agentPort = ControlPlane.FreePort();
        var metricsPort = ControlPlane.FreePort();
        var shim = Start(build.Shim, fakeCache, new()
        {
            ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
            ["PILOTLIGHT_LISTEN_PORT"] = shimPort.ToString(CultureInfo.InvariantCulture),
            ["PILOTLIGHT_UPSTREAM"] = upstreamUrl,
            ["PILOTLIGHT_MAX_CONCURRENCY"] = "8",
            ["PILOTLIGHT_QUEUE_LENGTH"] = "64",
        });
        Directory.CreateDirectory(Path.Combine(work, "workspace"));
        var agent = Start(build.Shim, fakeCache, new()
        {
            ["PILOTLIGHT_MODE"] = "sandbox",
            ["PILOTLIGHT_WORKSPACE"] = Path.Combine(work, "workspace"),
            ["PILOTLIGHT_AGENT_INSECURE"] = "true",
            ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
            ["PILOTLIGHT_LISTEN_PORT"] = agentPort.ToString(CultureInfo.InvariantCulture),
        });
        // As in MeteringBench: 1 GPU allocated, no NVML here, /metrics served, sampling once a second.
        var meter = Start(build.Meter, fakeCache, new()
        {
            ["PILOTLIGHT_NAMESPACE"] = "bench",
            ["PILOTLIGHT_FUNCTION"] = "meter",
            ["PILOTLIGHT_GPU_TYPE"] = "H100",
            ["PILOTLIGHT_GPU_COUNT"] = "1",
            ["PILOTLIGHT_CPU_REQUEST"] = "2",
            ["PILOTLIGHT_MEMORY_REQUEST"] = "8Gi",
            ["PILOTLIGHT_CHECKPOINT"] = Path.Combine(work, "meter.json"),
            ["PILOTLIGHT_METRICS_PORT"] = metricsPort.ToString(CultureInfo.InvariantCulture),
        });
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            await WaitReadyAsync(http, $"http://127.0.0.1:{shimPort}/ready", shim);
            await WaitReadyAsync(http, $"http://127.0.0.1:{agentPort}/ready", agent);
            await Task.Delay(Idle);
            var idle = (Shim: Memory(Pid(shim)), Agent: Memory(Pid(agent)), Meter: Memory(Pid(meter)));
            var cpu0 = (Shim: CpuSeconds(Pid(shim)), Agent: CpuSeconds(Pid(agent)), Meter: CpuSeconds(Pid(meter)));
            var wall = Stopwatch.StartNew();
            var load = SteadyLoadAsync(http, $"http://127.0.0.1:{shimPort}/predict");
            var execs = ExecsAsync(http, $"http://127.0.0.1:{agentPort}/exec");
            var shimFailures = await load;
            var agentFailures = await execs;
            var elapsed = wall.Elapsed.TotalSeconds;
            Sample Take(Process p, (long RssKiB, long AnonKiB, long PeakKiB) idle, double cpuStart, int failures)
            {
                var (rss, anon, peak) = Memory(Pid(p));
                return new Sample(idle.RssKiB / 1024.0, idle.AnonKiB / 1024.0, rss / 1024.0, anon / 1024.0, peak / 1024.0,
                    100 * (CpuSeconds(Pid(p)) - cpuStart) / elapsed, failures);
            }

            return new Program3(Take(shim, idle.Shim, cpu0.Shim, shimFailures), Take(meter, idle.Meter, cpu0.Meter, 0),
                Take(agent, idle.Agent, cpu0.Agent, agentFailures));
        }
        finally
        {
            foreach (var p in new[] { shim, agent, meter })
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                }

                await p.WaitForExitAsync();
                p.Dispose();
            }

            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Starts <paramref name="file"/>, through the fake-cache mount namespace when one is given.</summary>
    private static Process Start(string file, string? fakeCache, Dictionary<string, string> env)
    {
        var info = new ProcessStartInfo(fakeCache is null ? file : "unshare") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        if (fakeCache is not null)
        {
            // exec keeps the PID: the process measured is the program itself, not a shell.
            foreach (var a in new[] { "-m", "sh", "-c", "mount --bind \"$0\" /sys/devices/system/cpu/cpu0 && exec \"$1\"", fakeCache, file })
            {
                info.ArgumentList.Add(a);
            }
        }

        foreach (var (k, v) in env)
        {
            info.Environment[k] = v;
        }

        var process = Process.Start(info)!;
        _ = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        return process;
    }

    private static int Pid(Process p) => p.HasExited ? throw new InvalidOperationException($"{p.StartInfo.FileName} exited {p.ExitCode}") : p.Id;

    private static async Task WaitReadyAsync(HttpClient http, string url, Process process)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            _ = Pid(process);
            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{url} not ready after 30 s");
    }

    /// <summary>A steady 100 requests a second for the window, each started on its own schedule; returns the non-2xx count.</summary>
    private static async Task<int> SteadyLoadAsync(HttpClient http, string url)
    {
        var total = (int)(Window.TotalSeconds * RequestsPerSecond);
        var clock = Stopwatch.StartNew();
        var inflight = new List<Task<bool>>(total);
        for (var i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / RequestsPerSecond) - clock.Elapsed;
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due);
            }

            inflight.Add(OneAsync());
        }

        var outcomes = await Task.WhenAll(inflight);
        return outcomes.Count(ok => !ok);

        async Task<bool> OneAsync()
        {
            try
            {
                using var content = new StringContent("{\"inputs\":[1,2,3]}", Encoding.UTF8, "application/json");
                using var response = await http.PostAsync(url, content);
                await response.Content.ReadAsByteArrayAsync();
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }
    }

    /// <summary>One exec a second through the window (<c>sh -c 'echo ...'</c>); returns the failed count.</summary>
    private static async Task<int> ExecsAsync(HttpClient http, string url)
    {
        var failures = 0;
        var clock = Stopwatch.StartNew();
        for (var i = 0; clock.Elapsed < Window - TimeSpan.FromSeconds(1); i++)
        {
            try
            {
                using var response = await http.PostAsJsonAsync(url, new { argv = new[] { "sh", "-c", $"echo exec {i}; ls /" } });
                await response.Content.ReadAsByteArrayAsync();
                failures += response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (HttpRequestException)
            {
                failures++;
            }

            var due = TimeSpan.FromSeconds(i + 1) - clock.Elapsed;
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due);
            }
        }

        return failures;
    }

    /// <summary>The trivial upstream: <c>/healthz</c> and <c>/predict</c> answering a few bytes of JSON.</summary>
    private static async Task<Upstream> StartUpstreamAsync()
    {
        var port = ControlPlane.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        app.MapGet("/healthz", () => Results.Ok());
        app.MapPost("/predict", () => Results.Text("{\"outputs\":[0.1,0.2,0.3]}", "application/json"));
        await app.StartAsync();
        return new Upstream(app, $"http://127.0.0.1:{port}");
    }

    private sealed record Upstream(WebApplication App, string Url) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => App.DisposeAsync();
    }

    /// <summary>
    /// A copy of cpu0's sysfs folder whose cache/ says L1d 48K, L1i 32K, L2 1M, L3 260M, if this process may bind-mount
    /// it over the real one in a private mount namespace (checked once); null otherwise.
    /// </summary>
    private static async Task<string?> FakeCacheAsync()
    {
        var dir = Directory.CreateTempSubdirectory("pilotlight-bench-fake-cpu0-").FullName;
        var levels = new[] { (1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"), (3, "Unified", $"{EmulatedL3KiB}K") };
        for (var i = 0; i < levels.Length; i++)
        {
            var index = Directory.CreateDirectory(Path.Combine(dir, "cache", $"index{i}")).FullName;
            await File.WriteAllTextAsync(Path.Combine(index, "level"), $"{levels[i].Item1}\n");
            await File.WriteAllTextAsync(Path.Combine(index, "type"), $"{levels[i].Item2}\n");
            await File.WriteAllTextAsync(Path.Combine(index, "size"), $"{levels[i].Item3}\n");
        }

        var probe = await ProcessRunner.RunAsync("unshare", ["-m", "sh", "-c", "mount --bind \"$0\" /sys/devices/system/cpu/cpu0 && cat /sys/devices/system/cpu/cpu0/cache/index3/size", dir], null);
        if (probe.ExitCode == 0 && probe.StandardOutput.Trim() == $"{EmulatedL3KiB}K")
        {
            return dir;
        }

        Console.Error.WriteLine($"bench: sidecars: cannot emulate a big L3 here (needs root for a mount namespace): {probe.StandardError.Trim()}");
        Directory.Delete(dir, recursive: true);
        return null;
    }

    private static string HostL3()
    {
        const string Sys = "/sys/devices/system/cpu/cpu0/cache/index3/size";
        var sys = File.Exists(Sys) ? File.ReadAllText(Sys).Trim() : "not in /sys (no cpu0/cache folder)";
        string sysconf;
        try
        {
            var r = ProcessRunner.RunAsync("getconf", ["LEVEL3_CACHE_SIZE"], null).GetAwaiter().GetResult();
            sysconf = long.TryParse(r.StandardOutput.Trim(), out var bytes) && bytes > 0
                ? $"{bytes / 1024.0 / 1024.0:F1} MiB"
                : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            sysconf = "unknown (no getconf)";
        }

        return $"/sys: {sys}; glibc sysconf(_SC_LEVEL3_CACHE_SIZE): {sysconf}";
    }

    private static string CpuModel() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";

    private static string Report(List<Build> builds, string[] hosts, Dictionary<(string Build, string Host), List<Program3>> results, bool emulated)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Sidecars: footprint with pinned settings, on any host");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores, CPU {CpuModel()}; L3 cache: {HostL3()}.");
        sb.AppendLine("NativeAOT builds, as the images ship them (`-p:StripSymbols=true`). **pinned**: the settings in the csproj files");
        sb.AppendLine("(workstation non-concurrent GC and a capped gen0 budget, `System.GC.Gen0MaxBudget`: 1 MiB for the shim and agent, 4 MiB for");
        sb.AppendLine("the meter; the shim and agent also size-optimised with unused features trimmed); **unpinned**: the same code");
        sb.AppendLine("published with `-p:PilotlightPinGc=false` (the .NET defaults), the baseline, in the same run.");
        sb.AppendLine(emulated
            ? $"**emulated 260 MiB L3**: the program runs in a mount namespace where /sys/devices/system/cpu/cpu0/cache reports L3 = {EmulatedL3KiB / 1024} MiB, where .NET reads the cache size that sizes its gen0 budget."
            : "The emulated big cache needs root (a mount namespace); it was not available in this run.");
        sb.AppendLine(inv, $"Per run, the three run side by side: idle for {Idle.TotalSeconds:F0} s after ready, then for {Window.TotalSeconds:F0} s the shim forwards a steady");
        sb.AppendLine(inv, $"{RequestsPerSecond} requests/s (`POST /predict`, HTTP/1.1, 8 at a time at most) to a trivial upstream (Kestrel in the bench process),");
        sb.AppendLine("the sandbox agent runs one exec a second (`sh -c 'echo; ls /'`), and the meter samples once a second (1 GPU, no NVML, /metrics served).");
        sb.AppendLine(inv, $"RSS is VmRSS, anonymous is RssAnon (RSS less the executable's and libraries' file pages), peak is VmHWM, of /proc/PID/status, in MiB.");
        sb.AppendLine(inv, $"{Repeats} runs: median (min-max). Goal: <= 20 MB (19.1 MiB) idle and under load.");
        sb.AppendLine();
        sb.Append("| program | figure |");
        foreach (var host in hosts)
        {
            foreach (var b in builds)
            {
                sb.Append(inv, $" {b.Name}, {host} |");
            }
        }

        sb.AppendLine();
        sb.Append("|---|---|");
        sb.Append(string.Concat(Enumerable.Repeat("---:|", hosts.Length * builds.Count)));
        sb.AppendLine();
        var programs = new (string Name, Func<Program3, Sample> Pick)[] { ("shim", p => p.Shim), ("sandbox agent", p => p.Agent), ("meter", p => p.Meter) };
        var figures = new (string Name, Func<Sample, double> Pick, string Format)[]
        {
            ("RSS idle", s => s.IdleMiB, "F1"), ("of which anonymous", s => s.IdleAnonMiB, "F1"), ("RSS after load", s => s.LoadMiB, "F1"),
            ("of which anonymous", s => s.LoadAnonMiB, "F1"), ("peak RSS", s => s.PeakMiB, "F1"), ("CPU % of a core under load", s => s.CpuPercent, "F2"),
        };
        foreach (var (programName, pickProgram) in programs)
        {
            foreach (var (figureName, pickFigure, format) in figures)
            {
                sb.Append(inv, $"| {programName} | {figureName} |");
                foreach (var host in hosts)
                {
                    foreach (var b in builds)
                    {
                        var values = results[(b.Name, host)].Select(p => pickFigure(pickProgram(p))).Order().ToList();
                        var cell = $"{values[values.Count / 2].ToString(format, inv)} ({values[0].ToString(format, inv)}-{values[^1].ToString(format, inv)})";
                        sb.Append(inv, $" {cell} |");
                    }
                }

                sb.AppendLine();
            }
        }

        sb.AppendLine();
        var failures = results.Values.SelectMany(l => l).Sum(p => p.Shim.Failures + p.Agent.Failures);
        sb.AppendLine(inv, $"Failed requests and execs over all runs: {failures}.");
        sb.AppendLine();
        sb.AppendLine("The GC collects gen0 only once its budget is spent, so an unpinned program on a big-cache host grows until it has");
        sb.AppendLine("allocated that budget (80-90 MiB at 260 MiB of L3); a program that allocates less in the window shows only part of it.");
        sb.AppendLine("The rest of the RSS is mostly the executable's own pages (RSS less anonymous), which the GC settings do not change.");
        return sb.ToString();
    }

    private static double CpuSeconds(int pid)
    {
        // Fields 14 and 15 of /proc/PID/stat: utime and stime in clock ticks (100 a second on Linux).
        var fields = File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>VmRSS, its anonymous part (RssAnon: the heap, stacks; not the executable's pages) and VmHWM, in KiB.</summary>
    private static (long RssKiB, long AnonKiB, long PeakKiB) Memory(int pid)
    {
        var status = File.ReadAllLines($"/proc/{pid}/status");
        long Field(string name) => long.Parse(status.First(l => l.StartsWith(name, StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return (Field("VmRSS:"), Field("RssAnon:"), Field("VmHWM:"));
    }
}
