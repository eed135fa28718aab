using System.Globalization;
using System.Text;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// Request to routed for a function at zero with a ready warm pod: the gateway routing to it from its own cache
/// (warm routing) against the path before it (hold, wake annotation, autoscaler, relabel, the watch back), both
/// in one run on one control plane. Two gateways run side by side, one with warm routing off; each sample is a
/// fresh function whose one warm pod is its only pod, sent one request through one of them. The measure is the
/// gateway's own <see cref="InvocationProxy.RoutedAfterHeader"/>.
/// </summary>
internal static class WarmRoutingBench
{
    private const int Repetitions = 3;
    private const int SamplesPerMode = 30;

    /// <summary>Functions deployed at once: half for each gateway, so both see the same machine load.</summary>
    private const int Batch = 10;

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        var oldPathUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        await using var stack = await BenchStack.StartAsync("warm-routing", "bench-l4", GpuNodePreset.L4.WithGpus(Batch + 2),
            o => o with { Gateways = [.. o.Gateways, new Uri(oldPathUrl)] });
        var oldPath = GatewayApp.Build(stack.Client, oldPathUrl, new GatewayOptions { WarmRouting = false },
            registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await oldPath.StartAsync();
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromMinutes(2) };
            var kubectl = new Kubectl(stack.Plane.KubeconfigPath);
            var runs = new List<(List<Sample> Warm, List<Sample> Old)>();
            var n = 0;
            for (var rep = 1; rep <= Repetitions; rep++)
            {
                var ns = await stack.Plane.CreateNamespaceAsync($"bench-{rep}");
                List<Sample> warm = [], old = [];
                while (warm.Count < SamplesPerMode || old.Count < SamplesPerMode)
                {
                    var names = Enumerable.Range(0, Batch).Select(_ => $"fn-{n++}").ToList();
                    foreach (var name in names)
                    {
                        (await kubectl.ApplyAsync(Manifest(name), ns)).EnsureSuccess();
                    }

                    foreach (var name in names)
                    {
                        await WaitAsync(stack.Client, ns, name, f => f.Status?.WarmReplicas == 1);
                    }

                    // Alternate the gateways so that neither always goes first after the batch settled.
                    for (var i = 0; i < names.Count; i++)
                    {
                        var viaWarm = i % 2 == 0;
                        var (list, url) = viaWarm ? (warm, stack.GatewayUrl) : (old, oldPathUrl);
                        if (list.Count < SamplesPerMode)
                        {
                            list.Add(await InvokeAsync(http, $"{url}/{ns}/{names[i]}/predict"));
                        }
                    }

                    foreach (var name in names)
                    {
                        await stack.Client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", name);
                    }

                    // The node's GPUs free again before the next batch's warm pods are placed.
                    await WaitGoneAsync(stack.Client, ns);
                }

                runs.Add((warm, old));
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"bench: warm-routing: repetition {rep}: warm routing p50 {Percentile(warm, 0.5):F2} ms, old path p50 {Percentile(old, 0.5):F2} ms"));
            }

            var report = Render(runs);
            await File.WriteAllTextAsync(Path.Combine(resultsDir, "warm-routing.md"), report);
            Console.WriteLine(report);
            return 0;
        }
        finally
        {
            await stack.StopAsync();
            await oldPath.StopAsync();
            await oldPath.DisposeAsync();
        }
    }

    /// <summary>One request: the gateway's routed-after time and the start it reported.</summary>
    private sealed record Sample(double RoutedMs, string Start);

    /// <summary>
    /// A function whose only pod is one warm standby: maxReplicas 1, so once it is claimed there is no room
    /// for a second warm pod and the batch's pods stay few.
    /// </summary>
    private static string Manifest(string name) => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {{name}}
        spec:
          # Public: this bench measures waking and routing; GatewayBench measures a private function with its token.
          access: Public
          image: example/model-server:1
          env:
            - {name: LOAD_SECONDS, value: "0"}
            - {name: COMPUTE_MS, value: "0"}
          gpu: {type: L4}
          scaling: {minReplicas: 0, maxReplicas: 1, scaledownWindow: 10m}
          prewarm: {warmReplicas: 1, keepWarmFor: 0s}
        """;

    private static async Task<Sample> InvokeAsync(HttpClient http, string url)
    {
        using var response = await http.GetAsync(url);
        response.EnsureSuccessStatusCode();
        var routed = double.Parse(response.Headers.GetValues(InvocationProxy.RoutedAfterHeader).Single(), CultureInfo.InvariantCulture);
        return new Sample(routed, response.Headers.GetValues(InvocationProxy.StartHeader).Single());
    }

    private static async Task WaitAsync(IKubernetes client, string ns, string name, Func<GpuFunction, bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (DateTime.UtcNow < deadline)
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

    private static async Task WaitGoneAsync(IKubernetes client, string ns)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            if ((await client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count == 0)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"the pods of {ns} never went");
    }

    private static double Percentile(IReadOnlyList<Sample> samples, double p)
    {
        var sorted = samples.Select(s => s.RoutedMs).Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }

    private static string Render(List<(List<Sample> Warm, List<Sample> Old)> runs)
    {
        var inv = CultureInfo.InvariantCulture;
        string Spread(Func<(List<Sample> Warm, List<Sample> Old), double> f) =>
            string.Create(inv, $"{runs.Min(f):F2} to {runs.Max(f):F2} ms");
        var sb = new StringBuilder();
        sb.AppendLine("# Warm routing: request to routed for a function at zero with a ready warm pod");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores in one run: a local kube-apiserver, a simulated L4 node whose pods");
        sb.AppendLine("run the runtime shim and the sample model server as processes, the operator, and two gateways side by side: one routing to");
        sb.AppendLine("warm pods from its own cache (the default), one with `GatewayOptions.WarmRouting` off (the path before: the request is held,");
        sb.AppendLine("the gateway stamps the wake annotation, the operator claims the warm pod by relabelling it, and the gateway routes once its");
        sb.AppendLine("watch shows the label). Each sample is a new function (`prewarm.warmReplicas: 1`, `maxReplicas: 1`) whose only pod is one ready");
        sb.AppendLine(inv, $"warm standby, sent one request; functions are deployed {Batch} at a time and the two gateways take turns over them.");
        sb.AppendLine(inv, $"The measure is the gateway's `{InvocationProxy.RoutedAfterHeader}`: from the request's arrival to its dispatch to a pod.");
        sb.AppendLine();
        sb.AppendLine("| repetition | warm routing p50 | warm routing p95 | old path p50 | old path p95 | samples (each) | warm starts |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        for (var i = 0; i < runs.Count; i++)
        {
            var (warm, old) = runs[i];
            sb.AppendLine(inv, $"| {i + 1} | {Percentile(warm, 0.5):F2} ms | {Percentile(warm, 0.95):F2} ms | {Percentile(old, 0.5):F2} ms | {Percentile(old, 0.95):F2} ms | {warm.Count} | {warm.Count(s => s.Start == "warm")}/{warm.Count} |");
        }

        sb.AppendLine();
        sb.AppendLine("| | across repetitions | goal |");
        sb.AppendLine("|---|---|---|");
        sb.AppendLine(inv, $"| warm routing p50 | {Spread(r => Percentile(r.Warm, 0.5))} | <= 5 ms |");
        sb.AppendLine(inv, $"| warm routing p95 | {Spread(r => Percentile(r.Warm, 0.95))} | |");
        sb.AppendLine(inv, $"| old path p50 (baseline) | {Spread(r => Percentile(r.Old, 0.5))} | |");
        sb.AppendLine(inv, $"| old path p95 (baseline) | {Spread(r => Percentile(r.Old, 0.95))} | |");
        sb.AppendLine();
        sb.AppendLine("A warm start is told by the API's one-second timestamps (`X-Pilotlight-Start`): a standby that turned ready less than a");
        sb.AppendLine("second before its request reads `cold` there although it was routed to at once, which is why that column can fall short.");
        return sb.ToString();
    }
}
