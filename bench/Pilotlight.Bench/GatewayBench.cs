using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// The gateway, run as its own process from the built binary, on the real control plane with simulated pods
/// running the shim and the sample model server: added latency, throughput and request-body transfer time against
/// calling the same pod directly (interleaved, repeated), cold-start overhead over the pod's own time to Ready, and
/// time from a request to the first pod being created.
/// </summary>
internal static class GatewayBench
{
    private const int Repetitions = 3;
    private const int LatencyRequests = 1000;
    private const int Concurrency = 16;
    private static readonly TimeSpan ThroughputWindow = TimeSpan.FromSeconds(5);

    /// <summary>Each side's throughput window is cut into slices taken in turn (direct, gateway, direct...), so a burst of background load hits both.</summary>
    private const int ThroughputSlices = 5;
    private const int ColdStarts = 5;

    /// <summary>POST body sizes and how many sequential requests of each a measurement sends.</summary>
    private static readonly (int Bytes, int Count)[] Bodies = [(1024, 200), (1024 * 1024, 40), (20 * 1024 * 1024, 8)];

    /// <summary>
    /// One repetition: sorted latencies, req/s, CPU time per request under the throughput load (µs, per process: the
    /// bench (client), the gateway, the pod's shim, the pod's server), and the median time of each body size; direct then
    /// via the gateway.
    /// </summary>
    private sealed record Repetition(double[] DirectLatency, double[] GatewayLatency, double DirectRate, double GatewayRate,
        double[] DirectCpuUs, double[] GatewayCpuUs, List<(double DirectMs, double GatewayMs)> Bodies);

    private static readonly string[] CpuNames = ["bench process (the client; the operator idles in it)", "gateway", "pod's shim", "pod's server"];

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        // The gateway in its own process, as deployed; the operator stays in the bench process (it only matters
        // to the cold starts, and is idle while the warm path is measured).
        await using var stack = await BenchStack.StartAsync("gateway", "bench-l4", GpuNodePreset.L4.WithGpus(8),
            topology: new BenchTopology { GatewayProcesses = 1 });
        var (plane, client, gatewayUrl) = (stack.Plane, stack.Client, stack.GatewayUrl);
        var ns = await plane.CreateNamespaceAsync("bench");

        // Pod creations as the bench sees them through its own watch.
        var firstPodSeen = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        var podWatch = new Informer<V1Pod>(ListWatch.ForPods(client, fieldSelector: $"metadata.namespace={ns}"));
        podWatch.AddHandler(e =>
        {
            if (e.Object.Metadata.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true)
            {
                firstPodSeen.TryAdd(fn, Stopwatch.GetTimestamp());
            }
        });
        var podWatchRun = podWatch.RunAsync(stack.Stopping);
        await podWatch.Synced;

        // The function is private, as functions are by default: every request carries a caller's token (the pod gets
        // it too when called direct, so both sides send the same bytes).
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false }) { Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await stack.InvokerTokenAsync());
        var kubectl = new Kubectl(plane.KubeconfigPath);

        // Warm: one pod, plenty of concurrency, no compute time.
        (await kubectl.ApplyAsync(Manifest("warm", minReplicas: 1, loadSeconds: 0), ns)).EnsureSuccess();
        var pod = await WaitReadyPodAsync(client, ns, "warm");
        var direct = $"http://{pod.Status.PodIP}:8099/predict";
        var cpu = CpuOf([Environment.ProcessId, stack.Gateways[0].ProcessId, .. PodProcessIds(pod.Status.PodIP)]);
        var viaGateway = $"{gatewayUrl}/{ns}/warm/predict";
        for (var i = 0; i < 300; i++)
        {
            (await http.GetAsync(direct)).Dispose();
            (await http.GetAsync(viaGateway)).Dispose();
        }

        // Each repetition measures the pod directly, then through the gateway, one measurement after the other,
        // so both sides of a ratio see the same background load.
        var reps = new List<Repetition>();
        for (var r = 0; r < Repetitions; r++)
        {
            Console.Error.WriteLine($"bench: gateway: repetition {r + 1}: latency, throughput, bodies");
            var latency = await LatencyAsync(http, direct, viaGateway);
            var rate = await ThroughputAsync(http, direct, viaGateway, cpu);
            var bodies = new List<(double, double)>();
            foreach (var (size, count) in Bodies)
            {
                bodies.Add(await PostAsync(http, direct, viaGateway, size, count));
            }

            reps.Add(new Repetition(latency.Direct, latency.Gateway, rate.Direct, rate.Gateway, rate.DirectCpuUs, rate.GatewayCpuUs, bodies));
            Console.Error.WriteLine($"bench: gateway: repetition {r + 1}: p50 {Percentile(latency.Direct, 0.5):F2} / {Percentile(latency.Gateway, 0.5):F2} ms, "
                + $"{rate.Direct:F0} / {rate.Gateway:F0} req/s (direct / gateway)");
        }

        Console.Error.WriteLine("bench: gateway: cold starts");
        var colds = new List<(double FirstByteMs, double PodReadyMs, double ToPodMs)>();
        for (var i = 0; i < ColdStarts; i++)
        {
            var name = $"cold-{i}";
            (await kubectl.ApplyAsync(Manifest(name, minReplicas: 0, loadSeconds: 1), ns)).EnsureSuccess();
            await WaitStatusAsync(client, ns, name);
            var sent = Stopwatch.GetTimestamp();
            using var response = await http.GetAsync($"{gatewayUrl}/{ns}/{name}/predict", HttpCompletionOption.ResponseHeadersRead);
            var firstByte = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            response.EnsureSuccessStatusCode();
            var podName = response.Headers.TryGetValues("X-Pilotlight-Cold-Start", out _)
                ? (await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items.Single().Metadata.Name
                : throw new InvalidOperationException("no cold-start header");
            // The gateway may answer before the simulated kubelet has recorded the pod Ready.
            var waited = Stopwatch.StartNew();
            TimeSpan? own;
            while ((own = stack.Simulator.TimeToReady(ns, podName)) is null && waited.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(20);
            }

            var ready = own ?? throw new InvalidOperationException($"no readiness time for {podName}");
            var toPod = Stopwatch.GetElapsedTime(sent, firstPodSeen[name]).TotalMilliseconds;
            colds.Add((firstByte, ready.TotalMilliseconds, toPod));
            Console.Error.WriteLine($"bench: gateway: cold start {i + 1}: first byte {firstByte:F0} ms, pod's own time to Ready {ready.TotalMilliseconds:F0} ms, pod seen after {toPod:F0} ms");
        }

        await stack.StopAsync();
        await podWatchRun;

        var report = Render(reps, colds);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "gateway.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private static string Manifest(string name, int minReplicas, int loadSeconds) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          env:
            - {"{"}name: LOAD_SECONDS, value: "{loadSeconds}"{"}"}
            - {"{"}name: COMPUTE_MS, value: "0"{"}"}
          gpu: {"{"}type: L4{"}"}
          scaling:
            minReplicas: {minReplicas}
            maxReplicas: 1
            maxConcurrency: 256
            scaledownWindow: 10m
        """;

    private static async Task<V1Pod> WaitReadyPodAsync(IKubernetes client, string ns, string name)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            var pods = await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}");
            if (pods.Items.FirstOrDefault(PodReadiness.IsReady) is { } ready)
            {
                return ready;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"no ready pod for {name}");
    }

    private static async Task WaitStatusAsync(IKubernetes client, string ns, string name)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(1))
        {
            var fn = await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);
            if (fn.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{name} never reported status");
    }

    /// <summary>Sequential GETs, one to each URL in turn, so both see the same moments of background load; each side's times sorted.</summary>
    private static async Task<(double[] Direct, double[] Gateway)> LatencyAsync(HttpClient http, string direct, string gateway)
    {
        var samples = (Direct: new double[LatencyRequests], Gateway: new double[LatencyRequests]);
        for (var i = 0; i < LatencyRequests; i++)
        {
            samples.Direct[i] = await TimeAsync(() => http.GetAsync(direct));
            samples.Gateway[i] = await TimeAsync(() => http.GetAsync(gateway));
        }

        Array.Sort(samples.Direct);
        Array.Sort(samples.Gateway);
        return samples;
    }

    /// <summary>Milliseconds from sending a request to having read its answer (which must be a success).</summary>
    private static async Task<double> TimeAsync(Func<Task<HttpResponseMessage>> send)
    {
        var start = Stopwatch.GetTimestamp();
        using var response = await send();
        await response.Content.ReadAsByteArrayAsync();
        var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        response.EnsureSuccessStatusCode();
        return ms;
    }

    /// <summary>
    /// Requests per second with <see cref="Concurrency"/> loops, over slices taken in turn for each URL, and the CPU time
    /// each process of <paramref name="cpu"/> spent per request on each side (µs).
    /// </summary>
    private static async Task<(double Direct, double Gateway, double[] DirectCpuUs, double[] GatewayCpuUs)> ThroughputAsync(
        HttpClient http, string direct, string gateway, Func<double[]> cpu)
    {
        var slice = ThroughputWindow / ThroughputSlices;
        var (directCount, directTime, gatewayCount, gatewayTime) = (0, TimeSpan.Zero, 0, TimeSpan.Zero);
        var (directCpu, gatewayCpu) = (new double[CpuNames.Length], new double[CpuNames.Length]);
        for (var i = 0; i < ThroughputSlices; i++)
        {
            var before = cpu();
            var (n, t) = await SliceAsync(http, direct, slice);
            var after = cpu();
            (directCount, directTime) = (directCount + n, directTime + t);
            for (var p = 0; p < before.Length; p++)
            {
                directCpu[p] += after[p] - before[p];
            }

            (n, t) = await SliceAsync(http, gateway, slice);
            before = cpu();
            (gatewayCount, gatewayTime) = (gatewayCount + n, gatewayTime + t);
            for (var p = 0; p < before.Length; p++)
            {
                gatewayCpu[p] += before[p] - after[p];
            }
        }

        return (directCount / directTime.TotalSeconds, gatewayCount / gatewayTime.TotalSeconds,
            [.. directCpu.Select(ms => ms * 1000 / directCount)], [.. gatewayCpu.Select(ms => ms * 1000 / gatewayCount)]);
    }

    /// <summary>A reader of the CPU time (ms, user and system) each process has used so far.</summary>
    private static Func<double[]> CpuOf(int[] pids) => () => [.. pids.Select(pid =>
    {
        using var process = Process.GetProcessById(pid);
        return process.TotalProcessorTime.TotalMilliseconds;
    })];

    /// <summary>
    /// The simulated pod's shim and server processes: the simulator starts them with the pod's IP in their
    /// environment (<c>PILOTLIGHT_LISTEN_ADDRESS</c>, <c>LISTEN_ADDRESS</c>).
    /// </summary>
    private static int[] PodProcessIds(string ip)
    {
        int? shim = null, server = null;
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            string[] env;
            try
            {
                env = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (env.Contains($"PILOTLIGHT_LISTEN_ADDRESS={ip}"))
            {
                shim = pid;
            }
            else if (env.Contains($"LISTEN_ADDRESS={ip}"))
            {
                server = pid;
            }
        }

        return [shim ?? throw new InvalidOperationException($"no shim process for {ip}"), server ?? throw new InvalidOperationException($"no server process for {ip}")];
    }

    private static async Task<(int Count, TimeSpan Elapsed)> SliceAsync(HttpClient http, string url, TimeSpan length)
    {
        var count = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (clock.Elapsed < length)
            {
                using var response = await http.GetAsync(url);
                await response.Content.ReadAsByteArrayAsync();
                Interlocked.Increment(ref count);
            }
        }));
        return (count, clock.Elapsed);
    }

    /// <summary>Median times of <paramref name="count"/> POSTs of <paramref name="bytes"/> each (with a Content-Length), one to each URL in turn.</summary>
    private static async Task<(double DirectMs, double GatewayMs)> PostAsync(HttpClient http, string direct, string gateway, int bytes, int count)
    {
        var body = new byte[bytes];
        Random.Shared.NextBytes(body);
        var (d, g) = (new double[count], new double[count]);
        for (var i = 0; i < count; i++)
        {
            d[i] = await TimeAsync(() => http.PostAsync(direct, new ByteArrayContent(body)));
            g[i] = await TimeAsync(() => http.PostAsync(gateway, new ByteArrayContent(body)));
        }

        return (Median(d), Median(g));
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>"median (min – max)" of one figure over the repetitions.</summary>
    private static string Spread(IEnumerable<double> values, string format, string unit = "")
    {
        var all = values.ToArray();
        var inv = CultureInfo.InvariantCulture;
        return $"{Median(all).ToString(format, inv)}{unit} ({all.Min().ToString(format, inv)} – {all.Max().ToString(format, inv)})";
    }

    private static string Size(int bytes) => bytes >= 1024 * 1024 ? $"{bytes / (1024 * 1024)} MiB" : $"{bytes / 1024} KiB";

    private static string Render(List<Repetition> reps, List<(double FirstByteMs, double PodReadyMs, double ToPodMs)> colds)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var p50Added = reps.Select(r => Percentile(r.GatewayLatency, 0.5) - Percentile(r.DirectLatency, 0.5)).ToArray();
        var rateRatio = reps.Select(r => r.GatewayRate / r.DirectRate * 100).ToArray();
        sb.AppendLine("# Gateway: added latency, throughput, request bodies, cold start");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores that every process of the bench shares (the load generator, gateways, operator, pods and control plane),");
        sb.AppendLine("so take the spread as noise. Real kube-apiserver v1.20.2, a simulated L4 node whose pods run the runtime shim and the sample model");
        sb.AppendLine("server (0 ms compute) as processes on loopback IPs. The gateway runs as its own process (`dotnet Pilotlight.Gateway.dll --kubeconfig");
        sb.AppendLine("... --listen ...`, its default flags otherwise, as deployed); the operator and the load generator run in the bench process.");
        sb.AppendLine("The function is private (the default): every request carries a caller's token, which the gateway checks (a cached decision after the first). Baseline: the same requests sent straight to the pod's shim, interleaved with those via the gateway: sequential requests");
        sb.AppendLine(inv, $"alternate one by one (direct, gateway, direct, ...), the throughput windows alternate in {ThroughputWindow.TotalSeconds / ThroughputSlices:F0} s slices. {reps.Count} repetitions;");
        sb.AppendLine("figures are the median over the repetitions with (min – max); ratios and added times are taken within a repetition, then summarised.");
        sb.AppendLine();
        sb.AppendLine("| | direct to pod | via gateway | added / ratio | goal |");
        sb.AppendLine("|---|---:|---:|---:|---|");
        sb.AppendLine(inv, $"| latency p50, {LatencyRequests} sequential GETs | {Spread(reps.Select(r => Percentile(r.DirectLatency, 0.5)), "F2", " ms")} | {Spread(reps.Select(r => Percentile(r.GatewayLatency, 0.5)), "F2", " ms")} | +{Spread(p50Added, "F2", " ms")} | <= 0.3 ms added ({(Median(p50Added) <= 0.3 ? "met" : "NOT met")}) |");
        sb.AppendLine(inv, $"| latency p99 | {Spread(reps.Select(r => Percentile(r.DirectLatency, 0.99)), "F2", " ms")} | {Spread(reps.Select(r => Percentile(r.GatewayLatency, 0.99)), "F2", " ms")} | +{Spread(reps.Select(r => Percentile(r.GatewayLatency, 0.99) - Percentile(r.DirectLatency, 0.99)), "F2", " ms")} | |");
        sb.AppendLine(inv, $"| throughput, {Concurrency} concurrent GETs, {ThroughputWindow.TotalSeconds:F0} s each | {Spread(reps.Select(r => r.DirectRate), "F0", " req/s")} | {Spread(reps.Select(r => r.GatewayRate), "F0", " req/s")} | {Spread(rateRatio, "F0", " %")} | >= 80 % ({(Median(rateRatio) >= 80 ? "met" : "NOT met")}) |");
        for (var p = 0; p < CpuNames.Length; p++)
        {
            sb.AppendLine(inv, $"| CPU per request under that load: {CpuNames[p]} | {Spread(reps.Select(r => r.DirectCpuUs[p]), "F0", " µs")} | {Spread(reps.Select(r => r.GatewayCpuUs[p]), "F0", " µs")} | | |");
        }

        sb.AppendLine(inv, $"| CPU per request, all four | {Spread(reps.Select(r => r.DirectCpuUs.Sum()), "F0", " µs")} | {Spread(reps.Select(r => r.GatewayCpuUs.Sum()), "F0", " µs")} | {Spread(reps.Select(r => r.DirectCpuUs.Sum() / r.GatewayCpuUs.Sum() * 100), "F0", " %")} (direct / gateway) | |");
        for (var b = 0; b < Bodies.Length; b++)
        {
            var (bytes, count) = Bodies[b];
            var mb = bytes / 1e6;
            sb.AppendLine(inv, $"| POST {Size(bytes)}, median of {count} sequential | {Spread(reps.Select(r => r.Bodies[b].DirectMs), "F1", " ms")} = {Spread(reps.Select(r => mb / (r.Bodies[b].DirectMs / 1000)), "F0", " MB/s")} | {Spread(reps.Select(r => r.Bodies[b].GatewayMs), "F1", " ms")} = {Spread(reps.Select(r => mb / (r.Bodies[b].GatewayMs / 1000)), "F0", " MB/s")} | +{Spread(reps.Select(r => r.Bodies[b].GatewayMs - r.Bodies[b].DirectMs), "F1", " ms")}, {Spread(reps.Select(r => r.Bodies[b].DirectMs / r.Bodies[b].GatewayMs * 100), "F0", " %")} of direct MB/s | |");
        }

        sb.AppendLine();
        sb.AppendLine(inv, $"Each repetition (direct / gateway): {string.Join("; ", reps.Select((r, i) => string.Create(inv, $"{i + 1}: p50 {Percentile(r.DirectLatency, 0.5):F2} / {Percentile(r.GatewayLatency, 0.5):F2} ms, {r.DirectRate:F0} / {r.GatewayRate:F0} req/s")))}.");
        sb.AppendLine();
        var cpuDirect = Median(reps.Select(r => r.DirectCpuUs.Sum()));
        var cpuGateway = Median(reps.Select(r => r.GatewayCpuUs.Sum()));
        var gatewayOwn = Median(reps.Select(r => r.GatewayCpuUs[1]));
        sb.AppendLine(inv, $"Throughput here is bound by CPU: the client, the gateway, the shim and the server share {Environment.ProcessorCount} cores (with the control plane and");
        sb.AppendLine(inv, $"other work), so the ratio follows what a request costs in CPU over all four processes: {cpuDirect:F0} µs direct, {cpuGateway:F0} µs via the gateway");
        sb.AppendLine(inv, $"({cpuDirect / cpuGateway * 100:F0} %, against a throughput ratio of {Median(rateRatio):F0} %). The gateway itself spends {gatewayOwn:F0} µs a request, {gatewayOwn / Median(reps.Select(r => r.DirectCpuUs[2])):F1} times");
        sb.AppendLine("what the pod's shim spends forwarding the same request directly, and the other processes spend more per request when it is in the path.");
        sb.AppendLine(inv, $"On a machine this full, 80 % of direct throughput needs the gateway's path to add at most {cpuDirect / 0.8 - cpuDirect:F0} µs of CPU a request; where the");
        sb.AppendLine("gateway has cores of its own the ratio is set by other limits, which this machine cannot show.");
        sb.AppendLine();
        sb.AppendLine(inv, $"The gateway keeps a body of up to its replay limit (1 MiB by default; in memory up to 64 KiB, then in a temporary file)");
        sb.AppendLine("so that it can resend it on a retry: the 1 MiB case pays for that copy, the 20 MiB one is streamed. The sample server reads the");
        sb.AppendLine("first KiB; the rest is read and dropped by its HTTP server, so MB/s is that of the path, not of a model.");
        sb.AppendLine();
        sb.AppendLine(inv, $"Cold starts ({colds.Count}, each a new function at zero; the sample server's simulated model load is 1 s):");
        sb.AppendLine();
        sb.AppendLine("| | p50 | each | goal |");
        sb.AppendLine("|---|---:|---|---|");
        sb.AppendLine(inv, $"| first request to first byte | {Median(colds.Select(c => c.FirstByteMs)):F0} ms | {string.Join(", ", colds.Select(c => c.FirstByteMs.ToString("F0", inv)))} | |");
        sb.AppendLine(inv, $"| pod's own time to Ready (processes started to shim ready) | {Median(colds.Select(c => c.PodReadyMs)):F0} ms | {string.Join(", ", colds.Select(c => c.PodReadyMs.ToString("F0", inv)))} | |");
        sb.AppendLine(inv, $"| cold-start overhead (first byte minus pod's time to Ready) | {Median(colds.Select(c => c.FirstByteMs - c.PodReadyMs)):F0} ms | {string.Join(", ", colds.Select(c => (c.FirstByteMs - c.PodReadyMs).ToString("F0", inv)))} | <= 200 ms |");
        sb.AppendLine(inv, $"| first request to the pod's creation seen on a watch | {Median(colds.Select(c => c.ToPodMs)):F0} ms | {string.Join(", ", colds.Select(c => c.ToPodMs.ToString("F0", inv)))} | <= 50 ms |");
        sb.AppendLine();
        sb.AppendLine("The overhead covers the gateway's wake annotation, the operator's reconcile and pod creation, scheduling, the simulated kubelet");
        sb.AppendLine("seeing the binding and starting the processes, and the gateway finding the pod ready. The pod's own time to Ready is measured");
        sb.AppendLine("by the simulator polling the shim every 10 ms from process start.");
        return sb.ToString();
    }
}
