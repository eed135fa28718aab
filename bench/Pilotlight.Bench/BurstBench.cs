using System.Collections.Concurrent;
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
/// A burst of 1,000 concurrent requests to a function at zero (maxConcurrency 4), a few times, each on a fresh
/// function, through a gateway in its own process: answers by status, how long until the first and the last pod
/// were requested (first seen on the bench's own watch), and the answers' latency (p50, p99, last).
/// </summary>
internal static class BurstBench
{
    private const int Requests = 1000;
    private const int Runs = 3;
    private const int MaxConcurrency = 4;
    private const int MaxReplicas = 8;
    private const int LoadSeconds = 1;
    private const int ComputeMs = 100;

    private sealed record Run(Dictionary<int, int> ByStatus, Dictionary<string, int> ByStart, int Pods, double FirstPodMs, double LastPodMs,
        double FirstAnswerMs, double P50Ms, double P99Ms, double LastAnswerMs);

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        await using var stack = await BenchStack.StartAsync("burst", "bench-l4", GpuNodePreset.L4.WithGpus(MaxReplicas),
            topology: new BenchTopology { GatewayProcesses = 1 });
        var (plane, client, gatewayUrl) = (stack.Plane, stack.Client, stack.GatewayUrl);
        var ns = await plane.CreateNamespaceAsync("bench");

        // When the bench's own watch first saw each function pod: the pod was requested by then.
        var podSeen = new ConcurrentDictionary<string, (string Function, long At)>();
        var podWatch = new Informer<V1Pod>(ListWatch.ForPods(client, fieldSelector: $"metadata.namespace={ns}"));
        podWatch.AddHandler(e =>
        {
            if (e.Object.Metadata.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true)
            {
                podSeen.TryAdd(e.Object.Metadata.Name, (fn, Stopwatch.GetTimestamp()));
            }
        });
        var podWatchRun = podWatch.RunAsync(stack.Stopping);
        await podWatch.Synced;

        // No client-side connection limit: all 1,000 reach the gateway at once.
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = int.MaxValue })
        {
            Timeout = TimeSpan.FromMinutes(5),
        };
        var kubectl = new Kubectl(plane.KubeconfigPath);
        var runs = new List<Run>();
        for (var i = 0; i < Runs; i++)
        {
            var name = $"burst-{i}";
            (await kubectl.ApplyAsync(Manifest(name), ns)).EnsureSuccess();
            await WaitReadyConditionAsync(client, ns, name);
            Console.Error.WriteLine($"bench: burst: run {i + 1}: {Requests} concurrent requests to {name} at zero");

            var statuses = new ConcurrentDictionary<int, int>();
            var refusals = new ConcurrentDictionary<int, string>();
            var starts = new ConcurrentDictionary<string, int>();
            var answered = new ConcurrentBag<double>();
            var sent = Stopwatch.GetTimestamp();
            await Task.WhenAll(Enumerable.Range(0, Requests).Select(async n =>
            {
                int status;
                try
                {
                    using var response = await http.PostAsync($"{gatewayUrl}/{ns}/{name}/predict?n={n}", new StringContent($"r{n}"));
                    var text = await response.Content.ReadAsStringAsync();
                    status = (int)response.StatusCode;
                    if (status != 200 && refusals.TryAdd(status, text))
                    {
                        // The first answer of each other status, to say why in the log.
                        Console.Error.WriteLine($"bench: burst: run {i + 1}: a {status}: {text.Trim()}");
                    }
                    var start = response.Headers.TryGetValues("X-Pilotlight-Start", out var v) ? v.First() : "(none)";
                    starts.AddOrUpdate(start, 1, (_, c) => c + 1);
                }
                catch (HttpRequestException)
                {
                    status = 0;
                }

                statuses.AddOrUpdate(status, 1, (_, c) => c + 1);
                answered.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            }));

            var times = answered.Order().ToArray();
            var pods = podSeen.Values.Where(p => p.Function == name).ToList();
            var podMs = pods.Select(p => Stopwatch.GetElapsedTime(sent, p.At).TotalMilliseconds).DefaultIfEmpty(0).ToArray();
            var run = new Run(new(statuses), new(starts), pods.Count, podMs.Min(), podMs.Max(),
                times[0], times[times.Length / 2], times[Math.Min(times.Length - 1, (int)(0.99 * times.Length))], times[^1]);
            runs.Add(run);
            Console.Error.WriteLine($"bench: burst: run {i + 1}: {Statuses(run)}; {run.Pods} pods, first and last requested after {run.FirstPodMs:F0} / {run.LastPodMs:F0} ms; "
                + $"answers p50 {run.P50Ms:F0} ms, p99 {run.P99Ms:F0} ms, last {run.LastAnswerMs:F0} ms");

            // Back to nothing before the next run, so that each starts at zero with the node free.
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", name);
            await WaitNoPodsAsync(client, ns, name);
        }

        await stack.StopAsync();
        await podWatchRun;

        var report = Render(runs);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "burst.md"), report);
        Console.WriteLine(report);
        return runs.All(r => r.ByStatus.Keys.All(s => s == 200)) ? 0 : 1;
    }

    private static string Manifest(string name) => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata: {name: {{name}}}
        spec:
          # Public: this bench measures waking and routing; GatewayBench measures a private function with its token.
          access: Public
          image: example/model-server:1
          env:
            - {name: LOAD_SECONDS, value: "{{LoadSeconds}}"}
            - {name: COMPUTE_MS, value: "{{ComputeMs}}"}
          gpu: {type: L4}
          scaling: {minReplicas: 0, maxReplicas: {{MaxReplicas}}, maxConcurrency: {{MaxConcurrency}}, scaledownWindow: 10m}
          timeout: 60s
          startupTimeout: 2m
        """;

    private static async Task WaitReadyConditionAsync(IKubernetes client, string ns, string name)
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

    private static async Task WaitNoPodsAsync(IKubernetes client, string ns, string name)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            if ((await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items.Count == 0)
            {
                return;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"the pods of {name} never went");
    }

    private static string Statuses(Run run) =>
        string.Join(", ", run.ByStatus.OrderBy(kv => kv.Key).Select(kv => $"{kv.Value} x {(kv.Key == 0 ? "no answer" : kv.Key.ToString(CultureInfo.InvariantCulture))}"));

    private static string Spread(IEnumerable<double> values)
    {
        var all = values.ToArray();
        return string.Create(CultureInfo.InvariantCulture, $"{all.Min():F0} – {all.Max():F0} ms");
    }

    private static string Render(List<Run> runs)
    {
        var inv = CultureInfo.InvariantCulture;
        var allOk = runs.All(r => r.ByStatus.Keys.All(s => s == 200));
        var sb = new StringBuilder();
        sb.AppendLine("# Gateway: a burst of 1,000 concurrent requests at zero");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores that every process of the bench shares (the load generator, gateways, operator, pods and control plane: take the");
        sb.AppendLine(inv, $"spread as noise), {runs.Count} runs, each on a new function at zero: real kube-apiserver v1.20.2, one simulated L4 node with {MaxReplicas} GPUs");
        sb.AppendLine(inv, $"whose pods run the runtime shim and the sample model server ({LoadSeconds} s model load, {ComputeMs} ms per request) as processes on");
        sb.AppendLine("loopback IPs; the gateway in its own process (`Pilotlight.Gateway.dll`, default flags: queue bound 1,000 per function), the operator");
        sb.AppendLine(inv, $"and the client in the bench process. The function: maxConcurrency {MaxConcurrency}, maxReplicas {MaxReplicas}. Each run sends {Requests:N0} POSTs at once");
        sb.AppendLine("from one client (no connection limit). \"Pod requested\" is when the bench's own pod watch first saw the pod, from the moment the burst");
        sb.AppendLine("was sent; answer times are from the same moment to each answer's end.");
        sb.AppendLine();
        sb.AppendLine("| run | answers by status | starts (X-Pilotlight-Start) | pods | first pod requested | all pods requested | first answer | p50 answer | p99 answer | last answer |");
        sb.AppendLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (var i = 0; i < runs.Count; i++)
        {
            var r = runs[i];
            var starts = string.Join(", ", r.ByStart.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Value} {kv.Key}"));
            sb.AppendLine(inv, $"| {i + 1} | {Statuses(r)} | {starts} | {r.Pods} | {r.FirstPodMs:F0} ms | {r.LastPodMs:F0} ms | {r.FirstAnswerMs:F0} ms | {r.P50Ms:F0} ms | {r.P99Ms:F0} ms | {r.LastAnswerMs:F0} ms |");
        }

        sb.AppendLine();
        sb.AppendLine(inv, $"Spread over the runs: all {MaxReplicas} pods requested {Spread(runs.Select(r => r.LastPodMs))}, p50 answer {Spread(runs.Select(r => r.P50Ms))}, p99 answer {Spread(runs.Select(r => r.P99Ms))}.");
        sb.AppendLine();
        var podsInTime = runs.Count(r => r.Pods == MaxReplicas && r.LastPodMs <= 2000);
        sb.AppendLine(inv, $"- Goal, first request to all pods requested <= 2 s: met in {podsInTime} of {runs.Count} runs.");
        sb.AppendLine(inv, $"- Goal, every answer 200 below the queue bound: {(allOk ? "met" : "NOT met")}.");
        sb.AppendLine(inv, $"- Lower bound on the last answer once all {MaxReplicas} pods serve: {Requests} x {ComputeMs} ms / ({MaxReplicas} x {MaxConcurrency}) = {Requests * ComputeMs / (MaxReplicas * MaxConcurrency):F0} ms after");
        sb.AppendLine(inv, $"  they are ready (each pod first needs scheduling, two process starts and the {LoadSeconds} s load); the rest is two shared cores running the");
        sb.AppendLine("  client, the gateway, the operator, the control plane and the pods' processes.");
        return sb.ToString();
    }
}
