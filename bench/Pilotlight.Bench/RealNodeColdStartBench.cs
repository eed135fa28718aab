using System.Collections.Concurrent;
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

// The informer's list/watch over a list call, as Pilotlight.ControllerRuntime.ListWatch builds its own (see there).
#pragma warning disable CS0618

/// <summary>
/// A cold start on the real node (tests/real-node: a real kubelet, Docker, the images from the local registry, the
/// chart installed by tests/real-node/install.sh, a GPU from the simulated device plugin), split into the steps a
/// watch of the pod and its events shows: request sent, pod created, scheduled, image present, containers started,
/// pod Ready (the shim's readiness), routed by the gateway, first byte. In the same run, the same function's cold
/// start on a simulated node (processes on loopback, no containers), the figure the other benches use.
/// </summary>
internal static class RealNodeColdStartBench
{
    private const int Rounds = 5;
    private const int LoadSeconds = 2;

    public static async Task<int> RunAsync(string resultsDir, bool required)
    {
        var rnDir = Environment.GetEnvironmentVariable("RN_DIR") is { Length: > 0 } d ? d : "/tmp/pilotlight-real-node";
        if (!File.Exists(Path.Combine(rnDir, "env")))
        {
            Console.Error.WriteLine($"bench: real-node-cold-start: skipped, the real node is not up ({rnDir}/env): make bench-real-node brings it up");
            return required ? 1 : 0;
        }

        Directory.CreateDirectory(resultsDir);
        var simulated = await SimulatedAsync();

        Console.Error.WriteLine("bench: real-node-cold-start: tests/real-node/install.sh");
        var install = await ProcessRunner.RunAsync("bash", [Path.Combine(RepositoryRoot.Path, "tests", "real-node", "install.sh")], RepositoryRoot.Path);
        install.EnsureSuccess();
        var kubeconfig = System.Text.RegularExpressions.Regex.Match(await File.ReadAllTextAsync(Path.Combine(rnDir, "env")), @"KUBECONFIG=(\S+)").Groups[1].Value;
        using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
        var service = await client.CoreV1.ReadNamespacedServiceAsync("pilotlight-gateway", "pilotlight-system");
        var gateway = $"http://{service.Spec.ClusterIP}:{service.Spec.Ports[0].Port}";
        var tag = System.Text.RegularExpressions.Regex.Match(await File.ReadAllTextAsync(Path.Combine(RepositoryRoot.Path, "charts", "pilotlight", "Chart.yaml")),
            """(?m)^appVersion:\s*"?([^"\s]+)""").Groups[1].Value;
        var ns = $"bench-cold-{Guid.NewGuid():N}"[..16];
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } });
        var kubectl = new Kubectl(kubeconfig);

        // Pod and event watches of the bench's own: when each step was first seen.
        var seen = new ConcurrentDictionary<(string Pod, string Step), long>();
        void Saw(string pod, string step) => seen.TryAdd((pod, step), Stopwatch.GetTimestamp());
        using var stopping = new CancellationTokenSource();
        var pods = new Informer<V1Pod>(ListWatch.ForPods(client, fieldSelector: $"metadata.namespace={ns}"));
        pods.AddHandler(e =>
        {
            var pod = e.Object;
            Saw(pod.Metadata.Name, "created");
            if (!string.IsNullOrEmpty(pod.Spec.NodeName))
            {
                Saw(pod.Metadata.Name, "scheduled");
            }

            if (pod.Status?.ContainerStatuses is { Count: > 0 } statuses && statuses.Count == pod.Spec.Containers.Count && statuses.All(s => s.State?.Running is not null))
            {
                Saw(pod.Metadata.Name, "started");
            }

            if (pod.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true)
            {
                Saw(pod.Metadata.Name, "ready");
            }
        });
        var events = new Informer<Corev1Event>(new ListWatch<Corev1Event>(
            "events",
            async (cont, limit, ct) =>
            {
                var page = await client.CoreV1.ListNamespacedEventAsync(ns, continueParameter: cont, limit: limit, cancellationToken: ct);
                return new ListPage<Corev1Event>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.CoreV1.ListNamespacedEventWithHttpMessagesAsync(ns, watch: true, allowWatchBookmarks: true, resourceVersion: rv,
                timeoutSeconds: timeout, cancellationToken: ct).WatchAsync<Corev1Event, Corev1EventList>(onError, ct)));
        events.AddHandler(e =>
        {
            // The function container's image is on the node: pulled, or "already present".
            if (e.Object.Reason == "Pulled" && e.Object.InvolvedObject?.FieldPath == $"spec.containers{{{FunctionPods.FunctionContainer}}}")
            {
                Saw(e.Object.InvolvedObject.Name, "image");
            }
        });
        var runs = new[] { pods.RunAsync(stopping.Token), events.RunAsync(stopping.Token) };
        await pods.Synced;
        await events.Synced;

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromMinutes(5) };
        var rounds = new List<Dictionary<string, double>>();
        for (var i = 0; i < Rounds; i++)
        {
            var name = $"cold-{i}";
            (await kubectl.ApplyAsync(Manifest(name, $"127.0.0.1:5000/pilotlight/sample-model-server:{tag}"), ns)).EnsureSuccess();
            await PrewarmBench.WaitAsync(client, ns, name, f => f.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Reason == "ScaledToZero") == true, TimeSpan.FromMinutes(3));
            var sent = Stopwatch.GetTimestamp();
            using var response = await http.PostAsync($"{gateway}/{ns}/{name}/predict", new StringContent("cold"));
            var firstByte = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            response.EnsureSuccessStatusCode();
            using var answer = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var pod = answer.RootElement.GetProperty("pod").GetString() ?? "";
            var routed = double.Parse(response.Headers.GetValues(InvocationProxy.RoutedAfterHeader).Single(), CultureInfo.InvariantCulture);
            var deadline = Stopwatch.StartNew();
            while (!new[] { "created", "scheduled", "image", "started", "ready" }.All(s => seen.ContainsKey((pod, s))) && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(20);
            }

            var step = new Dictionary<string, double>();
            foreach (var s in new[] { "created", "scheduled", "image", "started", "ready" })
            {
                step[s] = seen.TryGetValue((pod, s), out var at) ? Stopwatch.GetElapsedTime(sent, at).TotalMilliseconds : double.NaN;
            }

            step["routed"] = routed;
            step["first byte"] = firstByte;
            rounds.Add(step);
            Console.Error.WriteLine($"bench: real-node-cold-start: round {i + 1}: " + string.Join(", ", step.Select(kv => $"{kv.Key} {kv.Value:F0} ms")));
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", name);
            await WaitGoneAsync(client, ns);
        }

        await stopping.CancelAsync();
        await Task.WhenAll(runs).ContinueWith(_ => { }, TaskScheduler.Default);
        await client.CoreV1.DeleteNamespaceAsync(ns);

        var report = Render(rounds, simulated);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "real-node-cold-start.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    /// <summary>The same function's cold start on a simulated node (processes on loopback), request to first byte.</summary>
    private static async Task<List<double>> SimulatedAsync()
    {
        await using var stack = await BenchStack.StartAsync("real-node-cold-start", "bench-l4", GpuNodePreset.L4.WithGpus(8));
        var ns = await stack.Plane.CreateNamespaceAsync("bench");
        var kubectl = new Kubectl(stack.Plane.KubeconfigPath);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromMinutes(2) };
        var cold = new List<double>();
        for (var i = 0; i < Rounds; i++)
        {
            var name = $"sim-{i}";
            (await kubectl.ApplyAsync(Manifest(name, "example/model-server:1"), ns)).EnsureSuccess();
            await PrewarmBench.WaitAsync(stack.Client, ns, name, f => f.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Reason == "ScaledToZero") == true);
            var sent = Stopwatch.GetTimestamp();
            using var response = await http.PostAsync($"{stack.GatewayUrl}/{ns}/{name}/predict", new StringContent("cold"), CancellationToken.None);
            cold.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            response.EnsureSuccessStatusCode();
            Console.Error.WriteLine($"bench: real-node-cold-start: simulated round {i + 1}: first byte {cold[^1]:F0} ms");
            await stack.Client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", name);
        }

        await stack.StopAsync();
        return cold;
    }

    private static string Manifest(string name, string image) => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {{name}}
        spec:
          access: Public
          image: {{image}}
          port: 8080
          healthPath: /healthz
          env:
            - {name: LOAD_SECONDS, value: "{{LoadSeconds}}"}
            - {name: COMPUTE_MS, value: "0"}
          gpu: {type: L4, count: 1}
          scaling: {minReplicas: 0, maxReplicas: 1, scaledownWindow: 10m}
          startupTimeout: 4m
        """;

    private static async Task WaitGoneAsync(IKubernetes client, string ns)
    {
        var deadline = Stopwatch.StartNew();
        while ((await client.CoreV1.ListNamespacedPodAsync(ns)).Items.Count > 0 && deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            await Task.Delay(500);
        }
    }

    private static string Render(List<Dictionary<string, double>> rounds, List<double> simulated)
    {
        var inv = CultureInfo.InvariantCulture;
        static double Median(IEnumerable<double> values)
        {
            var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
        }

        string Each(IEnumerable<double> v) => string.Join(", ", v.Select(x => double.IsNaN(x) ? "?" : x.ToString("F0", inv)));
        var sb = new StringBuilder();
        sb.AppendLine("# Cold start on the real node, step by step");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores in one run (`make bench-real-node`). Real node: kubelet v1.20.2");
        sb.AppendLine("(dockershim, Docker 20.10, runc), kube-proxy, the chart installed with helm, every image pulled from the node's registry");
        sb.AppendLine("(`imagePullPolicy: Always` for the sidecars: the NativeAOT runtime shim and meter on scratch), a GPU from the simulated device");
        sb.AppendLine(inv, $"plugin. A function at zero (sample model server, model load {LoadSeconds} s), one request through the gateway's Service, {Rounds} rounds,");
        sb.AppendLine("each a new function. Times are from sending the request, as the bench's own watches of the pod and its events saw each step.");
        sb.AppendLine();
        sb.AppendLine("| step (ms after the request was sent) | p50 | each |");
        sb.AppendLine("|---|---:|---|");
        var labels = new Dictionary<string, string>
        {
            ["created"] = "pod created (wake signal, autoscaler, operator)",
            ["scheduled"] = "pod scheduled",
            ["image"] = "function image present (kubelet's Pulled event)",
            ["started"] = "every container running",
            ["ready"] = "pod Ready (the shim's readiness: the model loaded)",
            ["routed"] = $"routed by the gateway ({InvocationProxy.RoutedAfterHeader})",
            ["first byte"] = "first byte at the client",
        };
        foreach (var (key, label) in labels)
        {
            var values = rounds.Select(r => r[key]).ToList();
            sb.AppendLine(inv, $"| {label} | {Median(values):F0} | {Each(values)} |");
        }

        sb.AppendLine(inv, $"| **simulated node, same run**: first byte (processes on loopback, no containers) | {Median(simulated):F0} | {Each(simulated)} |");
        sb.AppendLine(inv, $"| ratio real / simulated, first byte | {Median(rounds.Select(r => r["first byte"])) / Median(simulated):F1}x | |");
        sb.AppendLine();
        sb.AppendLine("The model load is in both figures (the sample server answers /healthz only after it). What the real node adds is the");
        sb.AppendLine("kubelet's work: pod sandbox (pause), pulls checked against the registry, three containers and an init container started");
        sb.AppendLine("by runc, and the probes' periods. Between containers running and Ready the model server starts in its container (JIT");
        sb.AppendLine("included), loads its model, and the kubelet's next readiness probes pass; the gateway routes on the shim's own readiness");
        sb.AppendLine("as its endpoint cache shows it, which can come before this bench's watch sees the pod's Ready condition.");
        return sb.ToString();
    }
}
