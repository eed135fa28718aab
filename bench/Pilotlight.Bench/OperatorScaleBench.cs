using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// The real operator (every controller, its pod and node informers) and the real gateway, each its own process as the
/// chart runs them, over 1,000 to 10,000 GpuFunctions on a real API server, a tenth of them with one running pod on
/// simulated GPU nodes (pods go Running and Ready without processes): time from the operator's start to every
/// function's status current, peak RSS of each, and the API requests each makes in a steady state with no traffic
/// (from the API server's audit log, which records the operator's and the gateway's users and no one else). The no-op
/// controller over the same functions (<see cref="NoopControllerChild"/>) is the baseline, measured in the same run.
/// </summary>
internal static class OperatorScaleBench
{
    /// <summary>The sizes of a full run.</summary>
    public static IReadOnlyList<int> DefaultSizes { get; } = [1000, 5000, 10000];

    /// <summary>The steady-state window of a full run.</summary>
    public static TimeSpan DefaultWindow { get; } = TimeSpan.FromMinutes(2);

    private const int GpusPerNode = 8;
    private const string ServiceNamespace = "pilotlight-system";
    private const string GatewayPodsService = "pilotlight-gateway-pods";
    /// <summary>Flags added to the operator's (e.g. <c>--workers 16</c>), from <c>PILOTLIGHT_BENCH_OPERATOR_ARGS</c>: to compare settings.</summary>
    private static string[] ExtraOperatorArgs =>
        (Environment.GetEnvironmentVariable("PILOTLIGHT_BENCH_OPERATOR_ARGS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// Extra gateways run beside the measured one with other runtime settings, from
    /// <c>PILOTLIGHT_BENCH_GATEWAY_VARIANTS</c> (<c>name:KEY=VALUE,KEY=VALUE;name:...</c>, e.g.
    /// <c>ws:DOTNET_gcServer=0</c>): each watches the same functions and pods, and its peak RSS is reported; to compare
    /// GC settings in one run. Only the measured gateway serves the operator.
    /// </summary>
    private static IReadOnlyList<(string Name, Dictionary<string, string> Environment)> GatewayVariants =>
        [.. (Environment.GetEnvironmentVariable("PILOTLIGHT_BENCH_GATEWAY_VARIANTS") ?? "")
            .Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => v.Split(':', 2))
            .Select(v => (v[0], v.Length < 2 ? new Dictionary<string, string>() : v[1].Split(',', StringSplitOptions.RemoveEmptyEntries)
                .Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv.Length < 2 ? "" : kv[1])))];

    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(10);

    /// <summary>How often the steady-state window scrapes the operator's /metrics (a common Prometheus interval).</summary>
    private static readonly TimeSpan ScrapeInterval = TimeSpan.FromSeconds(15);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>Runs every size in turn, each on a fresh control plane; writes operator-scale.md.</summary>
    public static async Task<int> RunAsync(string resultsDir, IReadOnlyList<int>? sizes = null, TimeSpan? window = null)
    {
        sizes ??= DefaultSizes;
        var steady = window ?? DefaultWindow;
        Directory.CreateDirectory(resultsDir);
        var total = Stopwatch.StartNew();
        var host = HostInfo.Read();
        var results = new List<SizeResult>();
        foreach (var size in sizes)
        {
            var result = await RunSizeAsync(size, steady);
            results.Add(result);
            Console.WriteLine(JsonSerializer.Serialize(result, Json));
        }

        var report = Render(results, host, steady, total.Elapsed);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "operator-scale.md"), report);
        Console.Error.WriteLine(report);
        Console.Error.WriteLine($"bench: operator-scale took {total.Elapsed.TotalMinutes:F1} min");
        return results.All(r => r.Converged) ? 0 : 1;
    }

    private static async Task<SizeResult> RunSizeAsync(int size, TimeSpan window)
    {
        var withPod = (size + 9) / 10;
        var nodes = (withPod + GpusPerNode - 1) / GpusPerNode;
        Console.Error.WriteLine($"bench: operator-scale {size}: control plane, {nodes} simulated nodes of {GpusPerNode} GPUs");
        // Room for ClusterIPs should the functions ask for Services (spec.clusterService; none here): a /24 holds about 250.
        // With API Priority and Fairness, as a cluster has by default since 1.20 (the operator's client then lifts its own limit).
        await using var plane = await ControlPlane.StartAsync("10.0.0.0/16", priorityAndFairness: true);
        await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        using var admin = plane.CreateClient();
        await InstallIdentitiesAsync(plane, admin);

        // Pods go Running and Ready at once, no processes: 1,000 real pods would not fit on the machine.
        // Lease every 10 s, node status every 5 minutes or on a change, as kubelets do.
        await using var simulator = new NodeSimulator(admin, new NodeSimulatorOptions { StatusReportInterval = TimeSpan.FromMinutes(5) });
        await simulator.StartAsync();
        for (var i = 0; i < nodes; i++)
        {
            await simulator.AddNodeAsync($"gpu-{i:D4}", GpuNodePreset.L4.WithGpus(GpusPerNode));
        }

        var ns = await plane.CreateNamespaceAsync("scale");
        var create = Stopwatch.StartNew();
        await CreateFunctionsAsync(admin, ns, size);
        var createSeconds = create.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"bench: operator-scale {size}: created {size} GpuFunctions ({withPod} with minReplicas 1) in {createSeconds:F1}s");

        // The baseline, before the operator has written anything: the no-op controller's own child process.
        var listOnly = await RunBaselineAsync(plane, ns, size, "list-only");
        var noop = await RunBaselineAsync(plane, ns, size, "reconcile");
        Console.Error.WriteLine($"bench: operator-scale {size}: baseline list-only {listOnly.Wall:F2}s / {listOnly.PeakMiB:F0} MiB, " +
            $"no-op controller {noop.Wall:F2}s / {noop.PeakMiB:F0} MiB");

        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        var run = await RunOperatorAsync(plane, admin, ns, size, withPod, window);
        return run with
        {
            Size = size, WithPod = withPod, Nodes = nodes, CreateSeconds = createSeconds, LoadAverage = load,
            BaselineListOnly = listOnly, BaselineNoop = noop,
        };
    }

    /// <summary>
    /// The operator's and the gateway's ServiceAccounts (the control plane already knows their users by token, and
    /// audits only them), bound to cluster-admin: RBAC is the tests' concern, the requests are the same.
    /// </summary>
    private static async Task InstallIdentitiesAsync(ControlPlane plane, Kubernetes admin)
    {
        await admin.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ServiceNamespace } });
        foreach (var (account, user) in new[] { ("pilotlight-operator", ChartRbac.OperatorUser), ("pilotlight-gateway", ChartRbac.GatewayUser) })
        {
            await admin.CoreV1.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = account } }, ServiceNamespace);
            await admin.RbacAuthorizationV1.CreateClusterRoleBindingAsync(new V1ClusterRoleBinding
            {
                Metadata = new V1ObjectMeta { Name = $"bench-{account}" },
                RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "cluster-admin" },
                Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
            });
            await File.WriteAllTextAsync(Path.Combine(plane.Directory, $"{account}.kubeconfig"),
                File.ReadAllText(plane.KubeconfigPath).Replace($"token: {AdminToken(plane)}", $"token: {plane.UserToken(user)}", StringComparison.Ordinal));
        }

        // The gateway pods' Service the chart passes as --gateway-service. The gateway here is a loopback process,
        // which Endpoints cannot list, so it is also named in --gateways (the chart's operator.extraGateways).
        await admin.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = GatewayPodsService },
            Spec = new V1ServiceSpec { ClusterIP = "None", Ports = [new V1ServicePort { Name = "http", Port = 8080 }] },
        }, ServiceNamespace);
        await admin.CoreV1.CreateNamespacedEndpointsAsync(new V1Endpoints { Metadata = new V1ObjectMeta { Name = GatewayPodsService }, Subsets = [] },
            ServiceNamespace);

        // The operator's projected token for the gateway's audience (its /internal/* answer only the operator).
        var token = await admin.CoreV1.CreateNamespacedServiceAccountTokenAsync(new Authenticationv1TokenRequest
        {
            Spec = new V1TokenRequestSpec { Audiences = [new Pilotlight.Gateway.InvocationAccessOptions().Audience], ExpirationSeconds = 6 * 3600 },
        }, "pilotlight-operator", ServiceNamespace);
        await File.WriteAllTextAsync(Path.Combine(plane.Directory, "operator-gateway-token"), token.Status.Token);
    }

    /// <summary>The admin token, as the admin kubeconfig holds it.</summary>
    private static string AdminToken(ControlPlane plane) =>
        File.ReadLines(plane.KubeconfigPath).Select(l => l.Trim()).First(l => l.StartsWith("token: ", StringComparison.Ordinal))["token: ".Length..];

    private static async Task CreateFunctionsAsync(Kubernetes client, string ns, int size)
    {
        await Parallel.ForEachAsync(Enumerable.Range(0, size), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            var fn = new GpuFunction
            {
                Metadata = new V1ObjectMeta { Name = Name(i), NamespaceProperty = ns },
                Spec = new GpuFunctionSpec
                {
                    Image = $"registry.example/models/fn-{i % 50}:1",
                    Gpu = new GpuRequirement { Type = GpuType.L4, Count = 1 },
                    Scaling = new ScalingPolicy { MinReplicas = HasPod(i) ? 1 : 0 },
                },
            };
            await client.CustomObjects.CreateNamespacedCustomObjectAsync(fn, Group.Name, Group.Version, ns, "gpufunctions", cancellationToken: ct);
        });
    }

    private static string Name(int i) => $"fn-{i:D5}";

    private static bool HasPod(int i) => i % 10 == 0;

    private static async Task<ChildRun> RunBaselineAsync(ControlPlane plane, string ns, int size, string mode)
    {
        var wall = Stopwatch.StartNew();
        var result = await ProcessRunner.RunAsync(Environment.ProcessPath!,
            ["noop-controller", plane.KubeconfigPath, ns, size.ToString(CultureInfo.InvariantCulture), mode], null);
        var elapsed = wall.Elapsed.TotalSeconds;
        result.EnsureSuccess();
        var report = JsonSerializer.Deserialize<ChildReport>(result.StandardOutput.TrimEnd().Split('\n')[^1])!;
        return new ChildRun(elapsed, report.PeakRssBytes / 1048576.0);
    }

    private static async Task<SizeResult> RunOperatorAsync(ControlPlane plane, Kubernetes admin, string ns, int size, int withPod, TimeSpan window)
    {
        int gatewayPort = ControlPlane.FreePort(), internalPort = ControlPlane.FreePort(), adminPort = ControlPlane.FreePort(), metricsPort = ControlPlane.FreePort();
        var gatewayUrl = $"http://127.0.0.1:{gatewayPort}";
        var invokeKeys = $"{ServiceNamespace}/pilotlight-invoke-keys";

        // The chart's gateway flags, less the sandbox agents' client certificate (no sandboxes here).
        ManagedProcess StartGateway(string url, int internalAt, int adminAt, string log, Dictionary<string, string>? environment = null) =>
            ManagedProcess.Start("dotnet",
            [
                Path.Combine(AppContext.BaseDirectory, "Pilotlight.Gateway.dll"),
                "--kubeconfig", Path.Combine(plane.Directory, "pilotlight-gateway.kubeconfig"),
                "--listen", url,
                "--internal-port", internalAt.ToString(CultureInfo.InvariantCulture),
                "--admin-port", adminAt.ToString(CultureInfo.InvariantCulture),
                "--internal-callers", ChartRbac.OperatorUser,
                "--invoke-keys-configmap", invokeKeys,
            ], Path.Combine(plane.Directory, log), environment);
        var gateway = StartGateway(gatewayUrl, internalPort, adminPort, "gateway.log");
        List<(string Name, ManagedProcess Process)> variants = [];
        ManagedProcess? process = null;
        try
        {
            await BenchStack.WaitOkAsync($"{gatewayUrl}/readyz", () => gateway.HasExited ? $"the gateway exited: {gateway.LogTail(10)}" : null);
            // One after another once the measured one is up: all at once would slow its start on a loaded machine.
            // Their ports differ from the operator's too (a free port stays free to be handed out again until bound).
            HashSet<int> taken = [gatewayPort, internalPort, adminPort, metricsPort];
            int Unused()
            {
                int port;
                while (!taken.Add(port = ControlPlane.FreePort()))
                {
                }

                return port;
            }

            foreach (var (name, environment) in GatewayVariants)
            {
                var url = $"http://127.0.0.1:{Unused()}";
                var variant = StartGateway(url, Unused(), Unused(), $"gateway-{name}.log", environment);
                variants.Add((name, variant));
                await BenchStack.WaitOkAsync($"{url}/readyz", () => variant.HasExited ? $"gateway variant {name} exited: {variant.LogTail(10)}" : null);
            }

            var writesBefore = await ApiServerWrites.ReadAsync(plane.KubeconfigPath);
            // Who spends the 2 cores while converging: every process on them but the operator (read at its start below).
            List<(string Name, int Id)> others = [.. plane.Processes.Select(p => (p.Name, p.Id)), ("gateway", gateway.Id), ("bench (nodes, watch)", Environment.ProcessId)];
            var othersCpu0 = others.ToDictionary(p => p.Name, p => Cpu(p.Id));
            // The chart's operator flags, less the admission webhook (the bench creates its functions first).
            var clock = Stopwatch.StartNew();
            var started = DateTimeOffset.UtcNow;
            process = ManagedProcess.Start("dotnet",
            [
                Path.Combine(AppContext.BaseDirectory, "Pilotlight.Operator.dll"),
                "--kubeconfig", Path.Combine(plane.Directory, "pilotlight-operator.kubeconfig"),
                "--endpoint-base", gatewayUrl,
                "--schedule-gateway", gatewayUrl,
                "--gateway-service", $"{ServiceNamespace}/{GatewayPodsService}",
                "--gateways", $"http://127.0.0.1:{internalPort}",
                "--metrics-port", metricsPort.ToString(CultureInfo.InvariantCulture),
                "--leader-elect", "--lease-namespace", ServiceNamespace,
                "--function-pod-security", "baseline",
                "--sandbox-agent-secret", $"{ServiceNamespace}/pilotlight-sandbox-agent-tls",
                "--gateway-token-file", Path.Combine(plane.Directory, "operator-gateway-token"),
                "--invoke-keys-configmap", invokeKeys,
                .. ExtraOperatorArgs,
            ], Path.Combine(plane.Directory, "operator.log"));

            var timeout = ConvergeTimeout(size);
            var (converged, current, zeroSeconds, podSeconds) = await WaitCurrentAsync(admin, ns, size, withPod, process, gateway, clock, timeout);
            // When the poll that saw the last one current ended (polls are a second apart).
            var convergeSeconds = converged ? Math.Max(zeroSeconds!.Value, podSeconds!.Value) : clock.Elapsed.TotalSeconds;
            var convergedAt = DateTimeOffset.UtcNow;
            var operatorCpuConverge = Cpu(process.Id);
            var cpuUntilConverged = others.ToDictionary(p => p.Name, p => Cpu(p.Id) - othersCpu0[p.Name]);
            cpuUntilConverged["operator"] = operatorCpuConverge;
            var allWrites = ApiServerWrites.Since(writesBefore, await ApiServerWrites.ReadAsync(plane.KubeconfigPath));
            Console.Error.WriteLine(converged
                ? $"bench: operator-scale {size}: every status current {convergeSeconds:F1}s after the operator started"
                : $"bench: operator-scale {size}: only {current}/{size} current after {timeout.TotalSeconds:F0}s");

            await Task.Delay(Settle);
            var from = DateTimeOffset.UtcNow;
            double opCpu0 = Cpu(process.Id), gwCpu0 = Cpu(gateway.Id);
            Console.Error.WriteLine($"bench: operator-scale {size}: steady-state window of {window.TotalSeconds:F0}s");
            // Scraped as Prometheus would, from the window's start: what a scrape holds and costs shows in RSS and CPU.
            var (scrapes, metricsBytes, metricsSeries) = (0, 0L, 0);
            using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) })
            {
                // Every interval and once more at the window's end, so the memory read next follows a scrape.
                var windowEnd = DateTimeOffset.UtcNow + window;
                while (true)
                {
                    var text = await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
                    (scrapes, metricsBytes) = (scrapes + 1, System.Text.Encoding.UTF8.GetByteCount(text));
                    metricsSeries = text.Split('\n').Count(l => l.Length > 0 && l[0] != '#');
                    var left = windowEnd - DateTimeOffset.UtcNow;
                    if (left <= TimeSpan.Zero)
                    {
                        break;
                    }

                    await Task.Delay(left < ScrapeInterval ? left : ScrapeInterval);
                }
            }

            var to = DateTimeOffset.UtcNow;
            double opCpu = Cpu(process.Id) - opCpu0, gwCpu = Cpu(gateway.Id) - gwCpu0;
            var (opPeak, opRss) = Memory(process.Id);
            var (gwPeak, gwRss) = Memory(gateway.Id);
            var variantMemory = variants.ToDictionary(v => v.Name, v => v.Process.HasExited ? (0d, 0d) : Memory(v.Process.Id));
            Console.Error.WriteLine($"bench: operator-scale {size}: gateway peak RSS {gwPeak:F0} MiB (RSS at end {gwRss:F0})");
            foreach (var (name, (peak, rss)) in variantMemory)
            {
                Console.Error.WriteLine($"bench: operator-scale {size}: gateway variant {name}: peak RSS {peak:F0} MiB (RSS at end {rss:F0})");
            }

            var end = await CountCurrentAsync(admin, ns);
            if (process.HasExited || gateway.HasExited)
            {
                throw new InvalidOperationException($"exited during the run: operator {process.HasExited}, gateway {gateway.HasExited}\n" +
                    $"{process.LogTail(20)}\n{gateway.LogTail(20)}");
            }

            // A watch is in the audit log only once it has ended: stop both first, so that every watch they opened is.
            await process.StopAsync();
            await gateway.StopAsync();
            foreach (var (_, variant) in variants)
            {
                await variant.StopAsync();
            }

            await Task.Delay(1000);
            var events = plane.AuditEvents();
            var floor = await StatusFloorAsync(admin, ns, size);
            Console.Error.WriteLine($"bench: operator-scale {size}: floor: {size} status patches by a bare client, {FloorParallelism} at once, in {floor:F1}s");
            return new SizeResult
            {
                StatusFloorSeconds = floor,
                AllWritesUntilConverged = allWrites,
                Converged = converged,
                ConvergeSeconds = convergeSeconds,
                CurrentAtDeadline = current,
                CurrentAtEnd = end.AtZero + end.WithPod,
                ZeroSeconds = zeroSeconds,
                PodSeconds = podSeconds,
                OperatorPeakMiB = opPeak,
                OperatorRssMiB = opRss,
                GatewayPeakMiB = gwPeak,
                GatewayRssMiB = gwRss,
                GatewayVariants = variantMemory.ToDictionary(kv => kv.Key, kv => new ChildRun(0, kv.Value.Item1)),
                OperatorCpuConvergeSeconds = operatorCpuConverge,
                CpuUntilConverged = cpuUntilConverged,
                MetricsScrapes = scrapes,
                MetricsBytes = metricsBytes,
                MetricsSeries = metricsSeries,
                OperatorCpuPercent = 100 * opCpu / (to - from).TotalSeconds,
                GatewayCpuPercent = 100 * gwCpu / (to - from).TotalSeconds,
                WindowSeconds = (to - from).TotalSeconds,
                Converge = Requests.Of(events, started, convergedAt),
                Steady = Requests.Of(events, from, to),
            };
        }
        finally
        {
            if (process is not null)
            {
                await process.StopAsync();
            }

            await gateway.StopAsync();
            foreach (var (_, variant) in variants)
            {
                await variant.StopAsync();
            }

            if (Environment.GetEnvironmentVariable("PILOTLIGHT_KEEP_CONTROL_PLANE") is not null)
            {
                Console.Error.WriteLine($"bench: operator-scale {size}: logs kept in {plane.Directory}");
            }
        }
    }

    /// <summary>
    /// How long the operator gets to make every status current: generous, the machine may be shared (1,000 took 147 s
    /// on a loaded 2-core machine, about 7 functions a second).
    /// </summary>
    private static TimeSpan ConvergeTimeout(int size) => TimeSpan.FromSeconds(Math.Max(300, size * 0.15));

    /// <summary>
    /// Watches the functions (an informer: one list, then watch events, as the operator and the gateway get them) and
    /// counts those whose status is current, once a second, until all are; gives up after <paramref name="timeout"/>.
    /// A paged list of every function each second, which this used to do, costs the API server more than the operator
    /// does at 10,000 and slowed what it measured. Also says when the functions at zero, and those with a pod, were all
    /// current (seconds from <paramref name="clock"/>'s start).
    /// </summary>
    private static async Task<(bool Converged, int Current, double? ZeroSeconds, double? PodSeconds)> WaitCurrentAsync(Kubernetes admin,
        string ns, int size, int withPod, ManagedProcess op, ManagedProcess gateway, Stopwatch clock, TimeSpan timeout)
    {
        using var stop = new CancellationTokenSource();
        var functions = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(admin, ns));
        var watching = functions.RunAsync(stop.Token);
        try
        {
            (int AtZero, int WithPod) current = (0, 0);
            double? zeroAt = null, podAt = null;
            var lastReport = TimeSpan.Zero;
            while (clock.Elapsed < timeout)
            {
                if (op.HasExited || gateway.HasExited)
                {
                    throw new InvalidOperationException($"exited: operator {op.HasExited}, gateway {gateway.HasExited}\n{op.LogTail(20)}\n{gateway.LogTail(20)}");
                }

                if (watching.IsFaulted)
                {
                    await watching;
                }

                current = CountCurrent(functions.List());
                zeroAt ??= current.AtZero >= size - withPod ? clock.Elapsed.TotalSeconds : null;
                podAt ??= current.WithPod >= withPod ? clock.Elapsed.TotalSeconds : null;
                if (zeroAt is not null && podAt is not null)
                {
                    return (true, size, zeroAt, podAt);
                }

                if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(15))
                {
                    lastReport = clock.Elapsed;
                    Console.Error.WriteLine($"bench: {clock.Elapsed.TotalSeconds:F0}s: current {current.AtZero}/{size - withPod} at zero, {current.WithPod}/{withPod} with a pod");
                }

                await Task.Delay(1000);
            }

            return (false, current.AtZero + current.WithPod, zeroAt, podAt);
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await watching;
            }
            catch (OperationCanceledException)
            {
                // Stopped: the run is over.
            }
        }
    }

    /// <summary>
    /// Functions whose status is current: observedGeneration is the generation and Ready is True, ScaledToZero for
    /// one at minReplicas 0, with a ready replica for one at minReplicas 1.
    /// </summary>
    private static (int AtZero, int WithPod) CountCurrent(IEnumerable<GpuFunction> functions)
    {
        int atZero = 0, withPod = 0;
        foreach (var fn in functions.Where(IsCurrent))
        {
            _ = fn.Spec.Scaling.MinReplicas == 0 ? atZero++ : withPod++;
        }

        return (atZero, withPod);
    }

    /// <summary>The same count from one paged list (once, at the end of a run).</summary>
    /// <summary>Status patches the floor run keeps in flight: more than the operator's workers, so the API server is the bound.</summary>
    private const int FloorParallelism = 32;

    /// <summary>
    /// The API server's own floor for the largest part of the operator's work, once the operator and the gateway have
    /// stopped: every function's status written again (the status the operator wrote, <c>usage.asOf</c> moved so it
    /// changes) by a bare client with <see cref="FloorParallelism"/> patches in flight. Wall seconds. What the operator
    /// adds on top of it is its own work (and the pods and Events it makes).
    /// </summary>
    private static async Task<double> StatusFloorAsync(Kubernetes admin, string ns, int size)
    {
        var bodies = new List<(string Name, string Body)>(size);
        string? cont = null;
        var asOf = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", System.Globalization.CultureInfo.InvariantCulture);
        do
        {
            var page = await admin.CustomObjects.ListNamespacedCustomObjectAsync<JsonElement>(
                Group.Name, Group.Version, ns, "gpufunctions", continueParameter: cont, limit: 500);
            foreach (var item in page.GetProperty("items").EnumerateArray())
            {
                var status = System.Text.Json.Nodes.JsonNode.Parse(item.GetProperty("status").GetRawText())!.AsObject();
                if (status["usage"] is System.Text.Json.Nodes.JsonObject usage)
                {
                    usage["asOf"] = asOf;
                }

                bodies.Add((item.GetProperty("metadata").GetProperty("name").GetString()!, $"{{\"status\":{status.ToJsonString()}}}"));
            }

            cont = page.GetProperty("metadata").TryGetProperty("continue", out var c) ? c.GetString() : null;
        }
        while (!string.IsNullOrEmpty(cont));

        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(bodies, new ParallelOptions { MaxDegreeOfParallelism = FloorParallelism }, async (item, ct) =>
            await admin.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch(item.Body, V1Patch.PatchType.MergePatch),
                Group.Name, Group.Version, ns, "gpufunctions", item.Name, cancellationToken: ct));
        return clock.Elapsed.TotalSeconds;
    }

    private static async Task<(int AtZero, int WithPod)> CountCurrentAsync(Kubernetes admin, string ns)
    {
        var all = new List<GpuFunction>();
        string? cont = null;
        do
        {
            var page = await admin.CustomObjects.ListNamespacedCustomObjectAsync<CustomResourceList<GpuFunction>>(
                Group.Name, Group.Version, ns, "gpufunctions", continueParameter: cont, limit: 500);
            all.AddRange(page.Items);
            cont = page.Metadata.ContinueProperty;
        }
        while (!string.IsNullOrEmpty(cont));

        return CountCurrent(all);
    }

    private static bool IsCurrent(GpuFunction fn)
    {
        if (fn.Status is not { } status || status.ObservedGeneration != fn.Metadata.Generation)
        {
            return false;
        }

        var ready = status.Conditions?.FirstOrDefault(c => c.Type == "Ready");
        return ready?.Status == "True"
            && (fn.Spec.Scaling.MinReplicas == 0 ? ready.Reason == "ScaledToZero" : status.ReadyReplicas >= fn.Spec.Scaling.MinReplicas);
    }

    /// <summary>VmHWM and VmRSS of a process, MiB.</summary>
    private static (double Peak, double Rss) Memory(int pid)
    {
        double Field(string name)
        {
            var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(name, StringComparison.Ordinal));
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }

        return (Field("VmHWM:"), Field("VmRSS:"));
    }

    /// <summary>CPU seconds a process has used (utime + stime, fields 14 and 15 of /proc/PID/stat, 100 ticks a second).</summary>
    private static double Cpu(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    private static string Render(List<SizeResult> results, HostInfo host, TimeSpan window, TimeSpan took)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# The real operator at scale");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {host.Cores} cores ({host.Cpu}, {host.L3}), real kube-apiserver v1.20.2 on loopback with API Priority and Fairness on (its default); " +
            $"each size once, on its own fresh control plane; the whole run took {took.TotalMinutes:F1} min.");
        sb.AppendLine();
        sb.AppendLine("The operator and the gateway run as their own processes from their Release builds, with the chart's flags (leader election,");
        sb.AppendLine("the gateway pods' Service, the operator's token for the gateway's /internal/*, invoke keys, the sandbox agents' Secret),");
        sb.AppendLine("less the admission webhook, each as its own user (bound to cluster-admin) whose every request the API server's audit");
        sb.AppendLine("log records; the bench's own requests (admin) are not in it. A tenth of the functions have minReplicas 1, the rest 0;");
        sb.AppendLine("none asks for a Service of its own (`spec.clusterService`, off by default since 2026-12-03);");
        sb.AppendLine($"their pods go Running and Ready on simulated nodes of {GpusPerNode} GPUs with no processes. The simulator (admin) heartbeats");
        sb.AppendLine("each node's Lease every 10 s and writes its status every 5 minutes or when its Ready condition was changed, as kubelets do.");
        sb.AppendLine(ExtraOperatorArgs.Length == 0
            ? "The operator runs with its default workers and API client rate (8 workers, `--kube-api-qps auto`: no client-side limit once the API server shows Priority and Fairness)."
            : $"The operator's flags beyond the chart's (PILOTLIGHT_BENCH_OPERATOR_ARGS): `{string.Join(' ', ExtraOperatorArgs)}`.");
        sb.AppendLine();
        sb.AppendLine("- converge: from the operator's process start to every function's status current (observedGeneration = generation,");
        sb.AppendLine("  Ready True: ScaledToZero at minReplicas 0, a ready replica at 1), counted every second from a watch (an informer).");
        sb.AppendLine("- peak RSS: VmHWM of each process at the end of the run; RSS: VmRSS then.");
        sb.AppendLine(inv, $"- steady state: a {window.TotalSeconds:F0} s window from {Settle.TotalSeconds:F0} s after convergence, no traffic. Writes: create,");
        sb.AppendLine("  update, patch, delete of stored objects (TokenReviews and SubjectAccessReviews, which store nothing, are counted apart as");
        sb.AppendLine("  reviews). Reads: get and list. Watches opened are counted apart (the log is read once both processes have stopped).");
        sb.AppendLine(inv, $"  The operator's /metrics is scraped every {ScrapeInterval.TotalSeconds:F0} s from the window's start, as Prometheus would (its cost is in the");
        sb.AppendLine("  operator's RSS and steady CPU).");
        sb.AppendLine("- baseline: the no-op controller of controller-noop.md over the same functions in the same run (its own process: wall time");
        sb.AppendLine("  from start to every function listed / reconciled once, and peak RSS).");
        sb.AppendLine(inv, $"- floor: once the operator and the gateway have stopped, every function's status patched again (the status the operator");
        sb.AppendLine(inv, $"  wrote, usage.asOf moved) by a bare client, {FloorParallelism} at once: what the API server alone needs for the status writes,");
        sb.AppendLine("  the bulk of converging (the operator also makes the pods and Events, and the API server then has two fewer watchers).");
        sb.AppendLine();
        sb.AppendLine("Noisy: this machine's 2 cores are shared with other work while it runs (load average at each operator start below), so");
        sb.AppendLine("times and CPU are upper bounds; re-run on a quiet machine for the numbers to quote.");
        foreach (var r in results)
        {
            var goal = r.Size == 10000 ? "<= 60 s" : "(<= 60 s at 10,000)";
            sb.AppendLine();
            sb.AppendLine(inv, $"## {r.Size:N0} GpuFunctions ({r.WithPod:N0} with a running pod, {r.Nodes} nodes)");
            sb.AppendLine();
            sb.AppendLine(inv, $"Created in {r.CreateSeconds:F1} s (16 at a time); load average at the operator's start {r.LoadAverage}.");
            sb.AppendLine();
            sb.AppendLine("| | measured | goal (on 2 cores) |");
            sb.AppendLine("|---|---:|---|");
            sb.AppendLine(inv, $"| converge s | {(r.Converged ? r.ConvergeSeconds.ToString("F1", inv) : $"not in {r.ConvergeSeconds:F0} s: {r.CurrentAtDeadline}/{r.Size} current then")} | {goal} |");
            sb.AppendLine(inv, $"| of which: all at zero current, all with a pod current (s) | {Seconds(r.ZeroSeconds)}, {Seconds(r.PodSeconds)} | |");
            sb.AppendLine(inv, $"| current at the end of the run | {r.CurrentAtEnd}/{r.Size} | all |");
            sb.AppendLine(inv, $"| operator peak RSS MiB (RSS at end) | {r.OperatorPeakMiB:F0} ({r.OperatorRssMiB:F0}) | <= 300 MB (286 MiB) |");
            sb.AppendLine(inv, $"| gateway peak RSS MiB (RSS at end) | {r.GatewayPeakMiB:F0} ({r.GatewayRssMiB:F0}) | <= 200 MB (191 MiB) |");
            foreach (var (name, variant) in r.GatewayVariants)
            {
                sb.AppendLine(inv, $"| gateway variant {name} ({VariantSettings(name)}) peak RSS MiB | {variant.PeakMiB:F0} | |");
            }

            sb.AppendLine(inv, $"| operator /metrics: series, KiB (scraped {r.MetricsScrapes} times in the window) | {r.MetricsSeries:N0}, {r.MetricsBytes / 1024.0:F0} | |");
            sb.AppendLine(inv, $"| steady writes/s (operator + gateway) | {r.Steady.Writes / r.WindowSeconds:F2} | <= 5 |");
            sb.AppendLine(inv, $"| steady reads/s (get, list) | {r.Steady.Reads / r.WindowSeconds:F2} | |");
            sb.AppendLine(inv, $"| steady reviews/s, watches opened/s | {r.Steady.Reviews / r.WindowSeconds:F2}, {r.Steady.Watches / r.WindowSeconds:F2} | |");
            sb.AppendLine(inv, $"| steady CPU % of a core: operator, gateway | {r.OperatorCpuPercent:F1}, {r.GatewayCpuPercent:F1} | |");
            sb.AppendLine(inv, $"| operator CPU s until converged | {r.OperatorCpuConvergeSeconds:F1} | |");
            if (r.CpuUntilConverged.Count > 0)
            {
                var cpu = r.CpuUntilConverged.OrderByDescending(kv => kv.Value).ToList();
                sb.AppendLine(inv, $"| CPU s until converged, every process (of {Environment.ProcessorCount * r.ConvergeSeconds:F0} core-seconds on {Environment.ProcessorCount} cores) | {string.Join(", ", cpu.Select(kv => $"{kv.Key} {kv.Value:F1}"))}; all {cpu.Sum(kv => kv.Value):F1} | |");
            }
            sb.AppendLine(inv, $"| requests until converged: writes, reads | {r.Converge.Writes}, {r.Converge.Reads} | |");
            sb.AppendLine(inv, $"| baseline: list into cache, wall s / peak MiB | {r.BaselineListOnly.Wall:F2} / {r.BaselineListOnly.PeakMiB:F0} | |");
            sb.AppendLine(inv, $"| baseline: no-op controller, wall s / peak MiB | {r.BaselineNoop.Wall:F2} / {r.BaselineNoop.PeakMiB:F0} | |");
            if (r.AllWritesUntilConverged.Total > 0)
            {
                var w = r.AllWritesUntilConverged;
                sb.AppendLine(inv, $"| writes by every client until converged (API server's count), per s | {w.Total:N0}, {w.Total / r.ConvergeSeconds:F0}/s | |");
                sb.AppendLine(inv, $"| of which (top 6) | {string.Join(", ", w.ByResource.OrderByDescending(kv => kv.Value).Take(6).Select(kv => $"{kv.Key} {kv.Value:N0}"))} | |");
            }

            if (r.StatusFloorSeconds > 0)
            {
                sb.AppendLine(inv, $"| floor: {r.Size:N0} status patches by a bare client, s (converge / floor) | {r.StatusFloorSeconds:F1} ({r.ConvergeSeconds / r.StatusFloorSeconds:F2}x) | |");
            }
            sb.AppendLine();
            sb.AppendLine(inv, $"Steady state by user, verb and resource (per second over {r.WindowSeconds:F0} s, top 8):");
            sb.AppendLine();
            foreach (var (key, n) in r.Steady.ByKey.OrderByDescending(kv => kv.Value).Take(8))
            {
                sb.AppendLine(inv, $"- {key}: {n / r.WindowSeconds:F2}");
            }

            sb.AppendLine();
            sb.AppendLine("Until converged (count, top 8):");
            sb.AppendLine();
            foreach (var (key, n) in r.Converge.ByKey.OrderByDescending(kv => kv.Value).Take(8))
            {
                sb.AppendLine(inv, $"- {key}: {n}");
            }
        }

        return sb.ToString();
    }

    private static string VariantSettings(string name) =>
        string.Join(", ", GatewayVariants.FirstOrDefault(v => v.Name == name).Environment?.Select(kv => $"{kv.Key}={kv.Value}") ?? []);

    private static string Seconds(double? s) => s is { } v ? v.ToString("F1", CultureInfo.InvariantCulture) : "never";

    /// <summary>A baseline child's wall time and peak RSS.</summary>
    internal sealed record ChildRun(double Wall, double PeakMiB);

    /// <summary>What one size measured (printed as JSON on stdout).</summary>
    internal sealed record SizeResult
    {
        public int Size { get; init; }
        public int WithPod { get; init; }
        public int Nodes { get; init; }
        public double CreateSeconds { get; init; }
        public string LoadAverage { get; init; } = "";
        public bool Converged { get; init; }
        public double ConvergeSeconds { get; init; }
        public int CurrentAtDeadline { get; init; }
        public int CurrentAtEnd { get; init; }
        public double? ZeroSeconds { get; init; }
        public double? PodSeconds { get; init; }
        public double OperatorPeakMiB { get; init; }
        public double OperatorRssMiB { get; init; }
        public double GatewayPeakMiB { get; init; }
        public double GatewayRssMiB { get; init; }
        public IReadOnlyDictionary<string, ChildRun> GatewayVariants { get; init; } = new Dictionary<string, ChildRun>();
        public double OperatorCpuConvergeSeconds { get; init; }
        public IReadOnlyDictionary<string, double> CpuUntilConverged { get; init; } = new Dictionary<string, double>();
        public int MetricsScrapes { get; init; }
        public long MetricsBytes { get; init; }
        public int MetricsSeries { get; init; }
        public double OperatorCpuPercent { get; init; }
        public double GatewayCpuPercent { get; init; }
        public double WindowSeconds { get; init; }
        public Requests Converge { get; init; } = new(0, 0, 0, 0, new Dictionary<string, int>());
        public Requests Steady { get; init; } = new(0, 0, 0, 0, new Dictionary<string, int>());
        public ChildRun BaselineListOnly { get; init; } = new(0, 0);
        public ChildRun BaselineNoop { get; init; } = new(0, 0);
        public double StatusFloorSeconds { get; init; }
        public ApiServerWrites AllWritesUntilConverged { get; init; } = new(new Dictionary<string, long>());
    }

    /// <summary>The audited requests (operator's and gateway's) received in a time range.</summary>
    internal sealed record Requests(int Writes, int Reads, int Reviews, int Watches, IReadOnlyDictionary<string, int> ByKey)
    {
        public static Requests Of(IReadOnlyList<AuditEvent> events, DateTimeOffset from, DateTimeOffset to)
        {
            // One event per request: its ResponseComplete (a watch, logged when it ends, also has a ResponseStarted).
            var inRange = events.Where(e => e.Received is { } at && at >= from && at < to && e.Request is not null && e.Stage == "ResponseComplete")
                .DistinctBy(e => e.AuditId).ToList();
            static bool Review(AuditEvent e) => e.Request!.Resource is "tokenreviews" or "subjectaccessreviews";
            var byKey = inRange
                .GroupBy(e => $"{(e.User == ChartRbac.OperatorUser ? "operator" : e.User == ChartRbac.GatewayUser ? "gateway" : e.User)} {e.Verb} {e.Request!.FullResource}")
                .ToDictionary(g => g.Key, g => g.Count());
            return new Requests(
                inRange.Count(e => e.IsWrite && !Review(e)),
                inRange.Count(e => e.Verb is "get" or "list"),
                inRange.Count(Review),
                inRange.Count(e => e.Verb == "watch"),
                byKey);
        }
    }

    /// <summary>The machine: cores, CPU model, L3 size (or what /proc/cpuinfo says of its cache where sysfs has no L3).</summary>
    private sealed record HostInfo(int Cores, string Cpu, string L3)
    {
        public static HostInfo Read()
        {
            var model = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                : null;
            const string l3 = "/sys/devices/system/cpu/cpu0/cache/index3/size";
            // Where sysfs has no cache levels (some VMs), the last-level cache size /proc/cpuinfo reports.
            var cache = File.Exists(l3) ? $"L3 {File.ReadAllText(l3).Trim()}"
                : File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("cache size", StringComparison.Ordinal)) is { } line
                    ? $"no L3 in sysfs, cpuinfo cache size {line.Split(':', 2)[1].Trim()}"
                : "L3 unknown";
            return new HostInfo(Environment.ProcessorCount, model ?? "unknown CPU", cache);
        }
    }
}
