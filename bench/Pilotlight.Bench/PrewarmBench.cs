using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator.Functions;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// Warm standby pods against cold starts, in one run with the same simulated
/// start delay: first-request latency of a function at zero with and without a
/// warm pod, and how long the warm path takes from request to the warm pod
/// answering and to the claim being visible on a watch.
/// </summary>
internal static class PrewarmBench
{
    private const int Rounds = 5;
    private const int LoadSeconds = 3;

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        await using var stack = await BenchStack.StartAsync("prewarm", "bench-l4", GpuNodePreset.L4.WithGpus(8));
        var (plane, client, gatewayUrl) = (stack.Plane, stack.Client, stack.GatewayUrl);
        var ns = await plane.CreateNamespaceAsync("bench");

        // When each pod was first seen serving, through the bench's own watch.
        var servingSeen = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        var podWatch = new Informer<V1Pod>(ListWatch.ForPods(client, fieldSelector: $"metadata.namespace={ns}"));
        podWatch.AddHandler(e =>
        {
            if (FunctionLabels.IsServing(e.Object) && e.Object.Metadata.Labels?.ContainsKey(FunctionLabels.Function) == true)
            {
                servingSeen.TryAdd(e.Object.Metadata.Name, Stopwatch.GetTimestamp());
            }
        });
        var podWatchRun = podWatch.RunAsync(stack.Stopping);
        await podWatch.Synced;

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromMinutes(2) };
        var kubectl = new Kubectl(plane.KubeconfigPath);
        var cold = new List<double>();
        var warm = new List<(double FirstByteMs, double ClaimSeenMs, double RoutedMs)>();
        for (var i = 0; i < Rounds; i++)
        {
            var coldName = $"cold-{i}";
            (await kubectl.ApplyAsync(Manifest(coldName, prewarm: false), ns)).EnsureSuccess();
            await WaitAsync(client, ns, coldName, f => f.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true);
            var (coldMs, _, _) = await InvokeAsync(http, $"{gatewayUrl}/{ns}/{coldName}/predict");
            cold.Add(coldMs);

            var warmName = $"warm-{i}";
            (await kubectl.ApplyAsync(Manifest(warmName, prewarm: true), ns)).EnsureSuccess();
            await WaitAsync(client, ns, warmName, f => f.Status?.WarmReplicas == 1);
            var sent = Stopwatch.GetTimestamp();
            var (warmMs, pod, routedMs) = await InvokeAsync(http, $"{gatewayUrl}/{ns}/{warmName}/predict");
            var deadline = Stopwatch.StartNew();
            while (!servingSeen.ContainsKey(pod) && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(5);
            }

            var claimSeen = Stopwatch.GetElapsedTime(sent, servingSeen[pod]).TotalMilliseconds;
            warm.Add((warmMs, claimSeen, routedMs));
            Console.Error.WriteLine($"bench: prewarm: round {i + 1}: cold {coldMs:F0} ms, warm {warmMs:F0} ms (routed after {routedMs:F0} ms, claim seen after {claimSeen:F0} ms)");

            // Free the node's GPUs for the next round.
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", coldName);
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", warmName);
        }

        await stack.StopAsync();
        await podWatchRun;

        var report = Render(cold, warm);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "prewarm.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private static string Manifest(string name, bool prewarm) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          # Public: this bench measures waking and routing; GatewayBench measures a private function with its token.
          access: Public
          image: example/model-server:1
          env:
            - {"{"}name: LOAD_SECONDS, value: "{LoadSeconds}"{"}"}
            - {"{"}name: COMPUTE_MS, value: "0"{"}"}
          gpu: {"{"}type: L4{"}"}
          scaling: {"{"}minReplicas: 0, maxReplicas: 2, scaledownWindow: 10m{"}"}
        {(prewarm ? "  prewarm: {warmReplicas: 1, keepWarmFor: 0s}" : "")}
        """;

    private static async Task<(double FirstByteMs, string Pod, double RoutedMs)> InvokeAsync(HttpClient http, string url)
    {
        var sent = Stopwatch.GetTimestamp();
        using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        var firstByte = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
        response.EnsureSuccessStatusCode();
        using var answer = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var routed = double.Parse(response.Headers.GetValues(InvocationProxy.RoutedAfterHeader).Single(), CultureInfo.InvariantCulture);
        return (firstByte, answer.RootElement.GetProperty("pod").GetString() ?? "", routed);
    }

    /// <summary>Polls the function until <paramref name="condition"/> holds; throws after <paramref name="timeout"/> (default 2 minutes).</summary>
    internal static async Task WaitAsync(IKubernetes client, string ns, string name, Func<GpuFunction, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < (timeout ?? TimeSpan.FromMinutes(2)))
        {
            var fn = await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);
            if (condition(fn))
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"{name} never got there");
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static string Render(List<double> cold, List<(double FirstByteMs, double ClaimSeenMs, double RoutedMs)> warm)
    {
        var inv = CultureInfo.InvariantCulture;
        string Each(IEnumerable<double> v) => string.Join(", ", v.Select(x => x.ToString("F0", inv)));
        var sb = new StringBuilder();
        sb.AppendLine("# Pre-warm: first request with and without a warm pod");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores in one run: real kube-apiserver v1.20.2, a simulated L4 node whose pods run");
        sb.AppendLine(inv, $"the runtime shim and the sample model server as processes, with the same simulated start delay (model load {LoadSeconds} s) for every pod.");
        sb.AppendLine("Each round deploys two new functions at zero replicas: one without prewarm (baseline: a cold start) and one with");
        sb.AppendLine("`prewarm.warmReplicas: 1`, waits for its warm pod, then sends one request to each through the gateway.");
        sb.AppendLine();
        sb.AppendLine("| | p50 | each | goal |");
        sb.AppendLine("|---|---:|---|---|");
        sb.AppendLine(inv, $"| first request to first byte, cold (baseline) | {Median(cold):F0} ms | {Each(cold)} | |");
        sb.AppendLine(inv, $"| first request to first byte, warm pod claimed | {Median(warm.Select(w => w.FirstByteMs)):F0} ms | {Each(warm.Select(w => w.FirstByteMs))} | |");
        sb.AppendLine(inv, $"| request to routed on the warm path (gateway's {InvocationProxy.RoutedAfterHeader}) | {Median(warm.Select(w => w.RoutedMs)):F0} ms | {Each(warm.Select(w => w.RoutedMs))} | <= 100 ms |");
        sb.AppendLine(inv, $"| ratio cold / warm | {Median(cold) / Median(warm.Select(w => w.FirstByteMs)):F0}x | | |");
        sb.AppendLine(inv, $"| request to the claim (relabel) seen on a watch | {Median(warm.Select(w => w.ClaimSeenMs)):F0} ms | {Each(warm.Select(w => w.ClaimSeenMs))} | |");
        sb.AppendLine();
        sb.AppendLine("The warm path: the gateway routes the request at once to the ready warm pod from its own cache; once it is served the");
        sb.AppendLine("gateway stamps the wake annotation, the autoscaler raises the desired replicas and the operator relabels that pod `serving`");
        sb.AppendLine("(the claim seen on a watch comes after the answer). No pod is created on that path; the pool is refilled afterwards.");
        sb.AppendLine("First byte minus routed is the warm pod's own first answer (its shim's and server's first request after start, JIT");
        sb.AppendLine("included), which the pod would pay on any first request. bench/results/warm-routing.md compares with the claim-first path.");
        return sb.ToString();
    }
}
