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
/// The gateway on the real control plane with simulated pods running the
/// shim and the sample model server: added latency and throughput against
/// calling the same pod directly, cold-start overhead over the pod's own time
/// to Ready, and time from a request to the first pod being created.
/// </summary>
internal static class GatewayBench
{
    private const int LatencyRequests = 1000;
    private const int Concurrency = 16;
    private static readonly TimeSpan ThroughputWindow = TimeSpan.FromSeconds(5);
    private const int ColdStarts = 5;

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        await using var stack = await BenchStack.StartAsync("gateway", "bench-l4", GpuNodePreset.L4.WithGpus(8));
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

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false }) { Timeout = TimeSpan.FromMinutes(2) };
        var kubectl = new Kubectl(plane.KubeconfigPath);

        // Warm: one pod, plenty of concurrency, no compute time.
        (await kubectl.ApplyAsync(Manifest("warm", minReplicas: 1, loadSeconds: 0), ns)).EnsureSuccess();
        var pod = await WaitReadyPodAsync(client, ns, "warm");
        var direct = $"http://{pod.Status.PodIP}:8099/predict";
        var viaGateway = $"{gatewayUrl}/{ns}/warm/predict";
        for (var i = 0; i < 200; i++)
        {
            (await http.GetAsync(direct)).Dispose();
            (await http.GetAsync(viaGateway)).Dispose();
        }

        Console.Error.WriteLine("bench: gateway: latency");
        var directLatency = await LatencyAsync(http, direct);
        var gatewayLatency = await LatencyAsync(http, viaGateway);
        Console.Error.WriteLine("bench: gateway: throughput");
        var directRate = await ThroughputAsync(http, direct);
        var gatewayRate = await ThroughputAsync(http, viaGateway);

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

        var report = Render(directLatency, gatewayLatency, directRate, gatewayRate, colds);
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
            if (pods.Items.FirstOrDefault(FunctionStatusBuilder.IsReady) is { } ready)
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

    private static async Task<double[]> LatencyAsync(HttpClient http, string url)
    {
        var samples = new double[LatencyRequests];
        for (var i = 0; i < samples.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            using var response = await http.GetAsync(url);
            await response.Content.ReadAsByteArrayAsync();
            samples[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        Array.Sort(samples);
        return samples;
    }

    private static async Task<double> ThroughputAsync(HttpClient http, string url)
    {
        var count = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (clock.Elapsed < ThroughputWindow)
            {
                using var response = await http.GetAsync(url);
                await response.Content.ReadAsByteArrayAsync();
                Interlocked.Increment(ref count);
            }
        }));
        return count / clock.Elapsed.TotalSeconds;
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static string Render(double[] directLatency, double[] gatewayLatency, double directRate, double gatewayRate,
        List<(double FirstByteMs, double PodReadyMs, double ToPodMs)> colds)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Gateway: added latency, throughput, cold start");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores in one run: real kube-apiserver v1.20.2, a simulated L4 node whose pods run the");
        sb.AppendLine("runtime shim and the sample model server (0 ms compute) as processes on loopback IPs, the operator and the gateway in the bench process.");
        sb.AppendLine("Baseline: the same requests sent straight to the pod's shim. The load generator shares the 2 cores with everything else.");
        sb.AppendLine();
        sb.AppendLine("| | direct to pod | via gateway | added / ratio | goal |");
        sb.AppendLine("|---|---:|---:|---:|---|");
        sb.AppendLine(inv, $"| latency p50, {LatencyRequests} sequential GETs | {Percentile(directLatency, 0.5):F2} ms | {Percentile(gatewayLatency, 0.5):F2} ms | +{Percentile(gatewayLatency, 0.5) - Percentile(directLatency, 0.5):F2} ms | <= 1 ms added |");
        sb.AppendLine(inv, $"| latency p99 | {Percentile(directLatency, 0.99):F2} ms | {Percentile(gatewayLatency, 0.99):F2} ms | +{Percentile(gatewayLatency, 0.99) - Percentile(directLatency, 0.99):F2} ms | |");
        sb.AppendLine(inv, $"| throughput, {Concurrency} concurrent, {ThroughputWindow.TotalSeconds:F0} s | {directRate:F0} req/s | {gatewayRate:F0} req/s | {gatewayRate / directRate:P0} | >= 70 % |");
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
        sb.AppendLine("seeing the binding and starting the processes, and the gateway finding the pod ready: it probes starting pods' shims every 25 ms");
        sb.AppendLine("while requests wait, rather than waiting for readiness to reach the API and come back through its watch. The pod's own time to");
        sb.AppendLine("Ready is measured by the simulator polling the shim every 10 ms from process start.");
        return sb.ToString();
    }
}
