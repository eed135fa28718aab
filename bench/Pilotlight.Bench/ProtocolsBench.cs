using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;
using Pilotlight.SampleModelServer;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// Streaming protocols through the gateway against the same pod called directly (its shim port), with real
/// shim and sample server processes: a server-sent event stream's time to first event and the gaps between
/// events, a WebSocket echo round trip, a gRPC unary call over h2c. Gateway and direct samples alternate, so
/// both see the same machine; the whole set runs three times and the report gives each figure's median over
/// the runs with their spread, and the gateway's ratio to direct from the same runs.
/// </summary>
internal static class ProtocolsBench
{
    private const int Runs = 3;
    private const int StreamSamples = 40;
    private const int StreamEvents = 10;
    private const int StreamGapMs = 20;
    private const int RoundTrips = 300;

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        await using var stack = await BenchStack.StartAsync("protocols", "bench-proto", GpuNodePreset.L4);
        var ns = await stack.Plane.CreateNamespaceAsync("proto");
        (await new Kubectl(stack.Plane.KubeconfigPath).ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata: {name: proto}
            spec:
              # Public: this bench measures waking and routing; GatewayBench measures a private function with its token.
              access: Public
              image: example/model-server:1
              env:
                - {name: LOAD_SECONDS, value: "0"}
                - {name: COMPUTE_MS, value: "0"}
              gpu: {type: L4}
              scaling: {minReplicas: 1, maxReplicas: 1, maxConcurrency: 64, scaledownWindow: 10m}
            """, ns)).EnsureSuccess();
        var podIp = await ReadyPodIpAsync(stack.Client, ns, "proto");
        var direct = $"http://{podIp}:8099";
        var gateway = $"{stack.GatewayUrl}/{ns}/proto";

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 64 }) { Timeout = TimeSpan.FromMinutes(1) };
        using var directGrpc = GrpcChannel.ForAddress(direct);
        using var gatewayGrpc = GrpcChannel.ForAddress(stack.GatewayUrl, new GrpcChannelOptions { HttpHandler = new PathPrefixHandler($"/{ns}/proto") });
        var targets = new[] { new Target("direct", direct, directGrpc), new Target("gateway", gateway, gatewayGrpc) };

        // Warm both paths: connections, JIT, the gateway's route.
        for (var i = 0; i < 50; i++)
        {
            foreach (var target in targets)
            {
                (await http.GetAsync($"{target.Http}/headers")).EnsureSuccessStatusCode().Dispose();
                await target.Grpc.CreateCallInvoker().AsyncUnaryCall(SampleEcho.Say, null, default, "warm");
            }
        }

        var runs = new List<Dictionary<(string Metric, string Target), double[]>>();
        for (var run = 1; run <= Runs; run++)
        {
            Console.Error.WriteLine($"bench: protocols: run {run} of {Runs}");
            var samples = new Dictionary<(string Metric, string Target), List<double>>();
            void Add(string metric, string target, IEnumerable<double> values)
            {
                if (!samples.TryGetValue((metric, target), out var list))
                {
                    samples[(metric, target)] = list = [];
                }

                list.AddRange(values);
            }

            for (var i = 0; i < StreamSamples; i++)
            {
                foreach (var target in targets)
                {
                    var (first, gaps) = await EventStreamAsync(http, target.Http);
                    Add("SSE time to first event", target.Name, [first]);
                    Add($"SSE gap between events ({StreamGapMs} ms apart at the server)", target.Name, gaps);
                }
            }

            foreach (var target in targets)
            {
                Add("WebSocket echo round trip (1 KiB)", target.Name, await WebSocketRoundTripsAsync(target.Http));
            }

            for (var i = 0; i < RoundTrips; i++)
            {
                foreach (var target in targets)
                {
                    var start = Stopwatch.GetTimestamp();
                    await target.Grpc.CreateCallInvoker().AsyncUnaryCall(SampleEcho.Say, null, default, "bench");
                    Add("gRPC unary call (h2c)", target.Name, [Stopwatch.GetElapsedTime(start).TotalMilliseconds]);
                }
            }

            runs.Add(samples.ToDictionary(s => s.Key, s => s.Value.Order().ToArray()));
        }

        await stack.StopAsync();
        var report = Render(runs);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "protocols.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private sealed record Target(string Name, string Http, GrpcChannel Grpc);

    /// <summary>One event stream: milliseconds to its first event, and between each event and the next.</summary>
    private static async Task<(double First, double[] Gaps)> EventStreamAsync(HttpClient http, string baseUrl)
    {
        var start = Stopwatch.GetTimestamp();
        using var response = await http.GetAsync($"{baseUrl}/events?n={StreamEvents}&gapMs={StreamGapMs}", HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var arrivals = new List<long>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                arrivals.Add(Stopwatch.GetTimestamp());
            }
        }

        if (arrivals.Count != StreamEvents)
        {
            throw new InvalidOperationException($"{baseUrl}: {arrivals.Count} events of {StreamEvents}");
        }

        var first = Stopwatch.GetElapsedTime(start, arrivals[0]).TotalMilliseconds;
        var gaps = arrivals.Zip(arrivals.Skip(1), (a, b) => Stopwatch.GetElapsedTime(a, b).TotalMilliseconds).ToArray();
        return (first, gaps);
    }

    private static async Task<double[]> WebSocketRoundTripsAsync(string baseUrl)
    {
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri(baseUrl.Replace("http://", "ws://", StringComparison.Ordinal) + "/ws"), CancellationToken.None);
        var message = Encoding.UTF8.GetBytes(new string('x', 1024));
        var buffer = new byte[4096];
        var samples = new double[RoundTrips];
        for (var i = 0; i < RoundTrips; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await socket.SendAsync(message, WebSocketMessageType.Text, true, CancellationToken.None);
            var received = 0;
            while (received < message.Length)
            {
                var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                received += result.Count;
            }

            samples[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        return samples;
    }

    private static async Task<string> ReadyPodIpAsync(IKubernetes client, string ns, string name)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            var pods = await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}");
            if (pods.Items.FirstOrDefault(PodReadiness.IsReady) is { } ready)
            {
                return ready.Status.PodIP;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"no ready pod for {name}");
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    private static string Render(List<Dictionary<(string Metric, string Target), double[]>> runs)
    {
        var inv = CultureInfo.InvariantCulture;
        string Spread(IEnumerable<double> values, string format)
        {
            var sorted = values.Order().ToArray();
            return $"{sorted[sorted.Length / 2].ToString(format, inv)} ({sorted[0].ToString(format, inv)}-{sorted[^1].ToString(format, inv)})";
        }

        var sb = new StringBuilder();
        sb.AppendLine("# Protocols through the gateway");
        sb.AppendLine();
        sb.AppendLine($"`make bench BENCH=protocols`: one warm pod (the real shim in front of the sample model server), called through the gateway");
        sb.AppendLine("and directly on its shim port, samples alternating. Milliseconds; each cell is the median of the " + $"{Runs} runs with their range");
        sb.AppendLine($"in brackets; ratio = gateway / direct within each run. SSE: {StreamSamples} streams of {StreamEvents} events {StreamGapMs} ms apart per run");
        sb.AppendLine($"(time to first event from sending the request; gaps between consecutive events as the client read them). WebSocket: {RoundTrips}");
        sb.AppendLine($"echoes of 1 KiB on one connection per run. gRPC: {RoundTrips} unary calls per run on one h2c channel each way.");
        sb.AppendLine();
        sb.AppendLine("| metric | direct p50 | direct p95 | gateway p50 | gateway p95 | ratio p50 | ratio p95 |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var metric in runs[0].Keys.Select(k => k.Metric).Distinct())
        {
            double P(Dictionary<(string, string), double[]> run, string target, double p) => Percentile(run[(metric, target)], p);
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {metric} | {Spread(runs.Select(r => P(r, "direct", 0.5)), "F2")} | {Spread(runs.Select(r => P(r, "direct", 0.95)), "F2")} " +
                $"| {Spread(runs.Select(r => P(r, "gateway", 0.5)), "F2")} | {Spread(runs.Select(r => P(r, "gateway", 0.95)), "F2")} " +
                $"| {Spread(runs.Select(r => P(r, "gateway", 0.5) / P(r, "direct", 0.5)), "F2")} | {Spread(runs.Select(r => P(r, "gateway", 0.95) / P(r, "direct", 0.95)), "F2")} |");
        }

        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores; {DateTime.UtcNow:yyyy-MM-dd}.");
        return sb.ToString();
    }

    /// <summary>gRPC clients drop any path in the channel's address; the gateway routes by <c>/{namespace}/{function}</c>.</summary>
    private sealed class PathPrefixHandler(string prefix) : DelegatingHandler(new SocketsHttpHandler { UseProxy = false })
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.RequestUri = new UriBuilder(request.RequestUri!) { Path = prefix + request.RequestUri!.AbsolutePath }.Uri;
            return base.SendAsync(request, cancellationToken);
        }
    }
}
