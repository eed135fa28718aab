using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// Two gateway processes behind a gateway Service whose Endpoints the bench keeps, the operator as a process that
/// reads demand from that Service, steady load spread over both gateways; then one gateway is killed (SIGKILL), and
/// in a second scenario one is stopped (SIGTERM, it drains). Counts what the clients lost and samples what the
/// autoscaler saw (its /metrics) around the event.
/// </summary>
internal static class GatewayReplicasBench
{
    private const int Repetitions = 3;
    private const int Clients = 8;
    private const int ComputeMs = 200;
    private const int TargetConcurrency = 2;
    private const string Function = "steady";
    private static readonly TimeSpan Before = TimeSpan.FromSeconds(8);

    /// <summary>The first scenario's load runs this long before its event, so that the function has scaled up to the load.</summary>
    private static readonly TimeSpan FirstBefore = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan After = TimeSpan.FromSeconds(12);
    private static readonly TimeSpan SampleEvery = TimeSpan.FromMilliseconds(250);

    private enum Event
    {
        Kill,
        Drain,
    }

    /// <summary>What became of one request, sent at <paramref name="At"/> (seconds from the event) to gateway <paramref name="Gateway"/>.</summary>
    private sealed record Sent(double At, int Gateway, string Outcome);

    /// <summary>The operator's view at one moment (seconds from the event), with the clients' own count of requests open at gateway B.</summary>
    private sealed record Sample(double At, double InFlight, double Desired, double Unknown, double Unread, int OpenAtB);

    private sealed record Scenario(Event Event, int Repetition, List<Sent> Requests, List<Sample> Samples, double? ExitedAt);

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        await using var stack = await BenchStack.StartAsync("gateway-replicas", "bench-l4", GpuNodePreset.L4.WithGpus(8), topology: new BenchTopology
        {
            GatewayProcesses = 2,
            GatewayService = true,
            GatewayArgs = ["--drain-seconds", "30"],
            // Short windows (as the integration tests use): a gateway misread as zero demand would show as a lower
            // desired count within the run, not a minute later.
            OperatorArgs = ["--stable-window", "6s", "--panic-window", "2s", "--autoscaler-tick", "500ms"],
        });
        var ns = await stack.Plane.CreateNamespaceAsync("bench");
        (await new Kubectl(stack.Plane.KubeconfigPath).ApplyAsync(Manifest, ns)).EnsureSuccess();

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = int.MaxValue }) { Timeout = TimeSpan.FromMinutes(1) };
        await WaitAsync(async () => (await stack.Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", Function))
            .Status?.ReadyReplicas >= 1, "the function has a ready pod");

        var scenarios = new List<Scenario>();
        for (var r = 0; r < Repetitions; r++)
        {
            foreach (var e in new[] { Event.Kill, Event.Drain })
            {
                Console.Error.WriteLine($"bench: gateway-replicas: repetition {r + 1}: {e}");
                var scenario = await RunScenarioAsync(stack, http, ns, e, r);
                scenarios.Add(scenario);
                Console.Error.WriteLine($"bench: gateway-replicas: repetition {r + 1}: {e}: {Outcomes(scenario)}; lost {Lost(scenario)}");

                // Gateway B back on the same address, listed, read by the operator, before the next scenario.
                var b = stack.Gateways[1];
                await b.StopAsync();
                await b.StartAsync();
                b.Listed = true;
                await WaitAsync(async () => await MetricAsync(http, stack, "pilotlight_autoscaler_demand_unknown") == 0, "the operator reads both gateways again");
            }
        }

        await stack.StopAsync();
        var report = Render(scenarios);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "gateway-replicas.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private static string Manifest => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata: {name: {{Function}}}
        spec:
          # Public: this bench measures waking and routing; GatewayBench measures a private function with its token.
          access: Public
          image: example/model-server:1
          env:
            - {name: LOAD_SECONDS, value: "1"}
            - {name: COMPUTE_MS, value: "{{ComputeMs}}"}
          gpu: {type: L4}
          scaling: {minReplicas: 1, maxReplicas: 6, maxConcurrency: 4, targetConcurrency: {{TargetConcurrency}}, scaledownWindow: 5s}
          timeout: 60s
          startupTimeout: 2m
        """;

    private static async Task<Scenario> RunScenarioAsync(BenchStack stack, HttpClient http, string ns, Event e, int repetition)
    {
        var (a, b) = (stack.Gateways[0], stack.Gateways[1]);
        var clock = Stopwatch.StartNew();
        var before = repetition == 0 && e == Event.Kill ? FirstBefore : Before;
        var requests = new ConcurrentBag<Sent>();
        var openAtB = 0;
        using var stopLoad = new CancellationTokenSource();
        using var stopSampling = new CancellationTokenSource();
        var next = 0;

        // Clients follow the Endpoints (as kube-proxy would): each request goes round-robin to a gateway listed
        // ready; a refused connection (the gateway is gone, its Endpoints not yet updated) is sent once to the other.
        var load = Enumerable.Range(0, Clients).Select(async _ =>
        {
            while (!stopLoad.IsCancellationRequested)
            {
                var pick = Interlocked.Increment(ref next) % 2;
                if (!(pick == 0 ? a : b).ListedReady)
                {
                    pick = 1 - pick;
                }

                var at = clock.Elapsed.TotalSeconds;
                var outcome = await SendAsync(http, stack.Gateways[pick], ns, pick == 1 ? () => Interlocked.Increment(ref openAtB) : null,
                    pick == 1 ? () => Interlocked.Decrement(ref openAtB) : null);
                if (outcome == "refused")
                {
                    outcome = "refused, then " + await SendAsync(http, stack.Gateways[1 - pick], ns, null, null);
                }

                requests.Add(new Sent(at, pick, outcome));
            }
        }).ToList();

        var samples = new List<Sample>();
        var sampling = Task.Run(async () =>
        {
            var inFlight = $"namespace=\"{ns}\",function=\"{Function}\"";
            while (!stopSampling.IsCancellationRequested)
            {
                try
                {
                    var text = await http.GetStringAsync(stack.OperatorMetricsUrl);
                    samples.Add(new Sample(clock.Elapsed.TotalSeconds,
                        Metric(text, "pilotlight_autoscaler_in_flight", inFlight) ?? double.NaN,
                        Metric(text, "pilotlight_autoscaler_desired_replicas", inFlight) ?? double.NaN,
                        Metric(text, "pilotlight_autoscaler_demand_unknown") ?? double.NaN,
                        Metric(text, "pilotlight_autoscaler_gateway_unread") ?? double.NaN,
                        Volatile.Read(ref openAtB)));
                }
                catch (HttpRequestException)
                {
                }

                await Task.Delay(SampleEvery);
            }
        });

        await Task.Delay(before);
        // Times are taken from here, not from the planned moment: on a busy machine the delay overruns.
        var signalAt = clock.Elapsed.TotalSeconds;
        if (e == Event.Kill)
        {
            b.Kill();
        }
        else
        {
            b.Terminate();
        }

        double? exitedAt = null;
        var watchExit = Task.Run(async () =>
        {
            if (await b.WaitExitAsync(After))
            {
                exitedAt = clock.Elapsed.TotalSeconds - signalAt;
                if (e == Event.Drain)
                {
                    // A gateway that stopped on its own was a deleted pod: the endpoints controller drops it. A killed
                    // one is a pod whose container died: it stays listed, not ready, until it restarts.
                    b.Listed = false;
                }
            }
        });

        await Task.Delay(After);
        // Sampling ends while the load still runs, so the last samples are not of the load winding down.
        await stopSampling.CancelAsync();
        await sampling;
        await stopLoad.CancelAsync();
        await Task.WhenAll(load);
        await watchExit;
        return new Scenario(e, repetition, [.. requests.Select(r => r with { At = r.At - signalAt }).OrderBy(r => r.At)],
            [.. samples.Select(x => x with { At = x.At - signalAt })], exitedAt);
    }

    /// <summary>One POST; its outcome: the status code, "refused" (connection refused) or "cut" (any other transport failure).</summary>
    private static async Task<string> SendAsync(HttpClient http, BenchStack.BenchGateway gateway, string ns, Action? opened, Action? closed)
    {
        opened?.Invoke();
        try
        {
            using var response = await http.PostAsync($"{gateway.Url}/{ns}/{Function}/predict", new StringContent("steady"));
            await response.Content.ReadAsByteArrayAsync();
            return ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
        }
        catch (HttpRequestException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
        {
            return "refused";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return "cut";
        }
        finally
        {
            closed?.Invoke();
        }
    }

    private static async Task<double?> MetricAsync(HttpClient http, BenchStack stack, string name) =>
        Metric(await http.GetStringAsync(stack.OperatorMetricsUrl), name);

    /// <summary>A sample of a Prometheus text exposition, or null when absent.</summary>
    private static double? Metric(string text, string name, string labels = "")
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && (line.Length == name.Length || line[name.Length] is ' ' or '{') && line.Contains(labels, StringComparison.Ordinal))
            {
                return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"never: {what}");
    }

    /// <summary>
    /// Requests that failed although they were not sent to the stopped gateway before the event: the goal is none.
    /// (Those sent to it before a SIGKILL were in its hands, and are counted apart as cut.)
    /// </summary>
    /// <summary>
    /// Seconds from the signal to when B's exit was seen: a SIGKILL lands late on a busy machine, and a request B took
    /// until then was in its hands when it died (cut), not one the clients could have sent elsewhere (lost).
    /// </summary>
    private static double DiedBy(Scenario s) => s.ExitedAt ?? 0;

    private static int Lost(Scenario s) =>
        s.Requests.Count(r => !r.Outcome.EndsWith("200", StringComparison.Ordinal) && !(r.Gateway == 1 && r.At < DiedBy(s) && s.Event == Event.Kill));

    /// <summary>The lost requests by gateway and outcome, e.g. "B: 2 x cut".</summary>
    private static string LostDetail(Scenario s)
    {
        var lost = s.Requests.Where(r => !r.Outcome.EndsWith("200", StringComparison.Ordinal) && !(r.Gateway == 1 && r.At < DiedBy(s) && s.Event == Event.Kill)).ToList();
        return lost.Count == 0 ? "0" : $"{lost.Count} ({string.Join(", ", lost.GroupBy(r => (r.Gateway, r.Outcome)).Select(g => $"{(g.Key.Gateway == 0 ? "A" : "B")}: {g.Count()} x {g.Key.Outcome}"))})";
    }

    private static int CutAtKill(Scenario s) =>
        s.Event == Event.Kill ? s.Requests.Count(r => !r.Outcome.EndsWith("200", StringComparison.Ordinal) && r.Gateway == 1 && r.At < DiedBy(s)) : 0;

    private static string Outcomes(Scenario s) =>
        string.Join(", ", s.Requests.GroupBy(r => r.Outcome).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} x {g.Key}"));

    /// <summary>Samples while the stopped gateway was listed but gone or draining (from the event until it left the Endpoints, or the end).</summary>
    private static List<Sample> WhileListedDown(Scenario s) =>
        [.. s.Samples.Where(x => x.At >= 1 && (s.Event == Event.Kill || s.ExitedAt is not { } exit || x.At < exit))];

    private static string Render(List<Scenario> scenarios)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Gateway replicas: one of two killed or drained under steady load");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores that every process of the bench shares (the load generator, gateways, operator, pods and control plane).");
        sb.AppendLine("Real kube-apiserver v1.20.2, one simulated L4 node whose pods run the runtime shim and the sample model server as processes; two");
        sb.AppendLine("gateway processes (`Pilotlight.Gateway.dll --drain-seconds 30`) on this machine's own IPv4 address (the API server refuses loopback");
        sb.AppendLine("ones in Endpoints); a selector-less Service whose Endpoints the bench rewrites every 250 ms from each gateway's /readyz, as the");
        sb.AppendLine("endpoints controller would (ready, not ready, or dropped once a drained gateway has exited); the operator as its own process with");
        sb.AppendLine("`--gateway-service` only (and `--stable-window 6s --panic-window 2s --autoscaler-tick 500ms`, so that a misread would show within the run).");
        sb.AppendLine(inv, $"The function: {ComputeMs} ms per request, minReplicas 1, maxReplicas 6, maxConcurrency 4, targetConcurrency {TargetConcurrency}.");
        sb.AppendLine(inv, $"Load: {Clients} client loops, each sending one POST after another, round-robin over the gateways the Endpoints list ready; a request");
        sb.AppendLine("whose connection is refused is sent once to the other gateway (no other retry). After");
        sb.AppendLine(inv, $"{Before.TotalSeconds:F0} s of load ({FirstBefore.TotalSeconds:F0} s before the first, while the function scales up) gateway B is sent SIGKILL (it stays listed, not ready, like a pod whose container died) or SIGTERM (it");
        sb.AppendLine(inv, $"drains; once it exits it is dropped from the Endpoints, like a deleted pod); the load runs {After.TotalSeconds:F0} s more. {Repetitions} repetitions");
        sb.AppendLine("of both, B restarted on the same address after each. Times are seconds from the signal. The autoscaler's view is its /metrics,");
        sb.AppendLine(inv, $"sampled every {SampleEvery.TotalMilliseconds:F0} ms: `pilotlight_autoscaler_in_flight` (what it could read), `desired_replicas`, `demand_unknown`");
        sb.AppendLine("(1: a listed gateway was not read, nothing scales down) and `gateway_unread`.");
        sb.AppendLine();
        sb.AppendLine("| scenario | rep | requests by outcome | in B's hands until its exit was seen (cut) | lost (goal 0) | B's exit seen after | samples while B listed down: demand unknown / all | in flight read, before → while down | desired, before → lowest while down |");
        sb.AppendLine("|---|---:|---|---:|---:|---:|---:|---|---|");
        foreach (var s in scenarios)
        {
            var down = WhileListedDown(s);
            var before = s.Samples.Where(x => x.At is > -4 and < 0).ToList();
            sb.AppendLine(inv, $"| {(s.Event == Event.Kill ? "SIGKILL" : "SIGTERM (drain)")} | {s.Repetition + 1} | {Outcomes(s)} | {CutAtKill(s)} | {LostDetail(s)} | "
                + $"{(s.ExitedAt is { } x ? x.ToString("F1", inv) + " s" : "-")} | {down.Count(d => d.Unknown == 1)} / {down.Count} | "
                + $"{Range(before.Select(b => b.InFlight))} → {Range(down.Select(d => d.InFlight))} | {Range(before.Select(b => b.Desired))} → {(down.Count == 0 ? "-" : down.Min(d => d.Desired).ToString("F0", inv))} |");
        }

        sb.AppendLine();
        foreach (var e in new[] { Event.Kill, Event.Drain })
        {
            var runs = scenarios.Where(s => s.Event == e).ToList();
            var down = runs.SelectMany(WhileListedDown).ToList();
            var held = runs.All(s => WhileListedDown(s) is { Count: > 0 } d && d.Min(x => x.Desired) >= s.Samples.Where(x => x.At is > -4 and < 0).Select(x => x.Desired).DefaultIfEmpty(0).Min());
            sb.AppendLine(inv, $"- {(e == Event.Kill ? "SIGKILL" : "SIGTERM")}: {runs.Sum(Lost)} requests lost over {runs.Count} runs that had not been sent to gateway B before its exit was seen (goal 0: "
                + $"{(runs.Sum(Lost) == 0 ? "met" : "NOT met")}){(e == Event.Kill ? string.Create(inv, $", and {runs.Sum(CutAtKill)} cut that B held when it was killed") : "")}. "
                + $"While B was listed but {(e == Event.Kill ? "dead" : "draining")}, {down.Count(x => x.Unknown == 1)} of {down.Count} samples had demand unknown "
                + $"(B never read as zero demand: {(down.All(x => x.Unknown == 1) ? "met" : "NOT met")}); desired replicas {(held ? "never fell below" : "FELL below")} their level before the signal.");
        }

        foreach (var e in new[] { Event.Kill, Event.Drain })
        {
            var first = scenarios.First(s => s.Event == e);
            sb.AppendLine();
            sb.AppendLine(inv, $"Timeline of the first {(e == Event.Kill ? "SIGKILL" : "SIGTERM")} run, per second (min – max of the samples; \"open at B\" is the clients' own count):");
            sb.AppendLine();
            sb.AppendLine("| second | in flight read | desired | demand unknown | gateway unread | open at B |");
            sb.AppendLine("|---:|---|---|---|---|---|");
            foreach (var g in first.Samples.GroupBy(x => (int)Math.Floor(x.At)).Where(g => g.Key >= -3).OrderBy(g => g.Key))
            {
                sb.AppendLine(inv, $"| {g.Key} | {Range(g.Select(x => x.InFlight))} | {Range(g.Select(x => x.Desired))} | {Range(g.Select(x => x.Unknown))} | {Range(g.Select(x => x.Unread))} | {Range(g.Select(x => (double)x.OpenAtB))} |");
            }
        }

        return sb.ToString();
    }

    private static string Range(IEnumerable<double> values)
    {
        var all = values.Where(v => !double.IsNaN(v)).ToArray();
        return all.Length == 0 ? "-" : all.Min() == all.Max() ? all.Min().ToString("F0", CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{all.Min():F0} – {all.Max():F0}");
    }
}
