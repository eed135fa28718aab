using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Testing;

/// <summary>What a simulated GPU node looks like: GFD product label, GPUs and the rest of its capacity.</summary>
/// <param name="Product">Value of <c>nvidia.com/gpu.product</c>.</param>
/// <param name="Gpus">Capacity of <c>nvidia.com/gpu</c>.</param>
/// <param name="GpuMemoryMiB">Value of <c>nvidia.com/gpu.memory</c> (MiB per GPU).</param>
/// <param name="Cpu">CPU capacity.</param>
/// <param name="Memory">Memory capacity.</param>
public sealed record GpuNodePreset(string Product, int Gpus, int GpuMemoryMiB, string Cpu = "64", string Memory = "512Gi")
{
    /// <summary>8 x H100 SXM.</summary>
    public static GpuNodePreset H100 { get; } = new("NVIDIA-H100-80GB-HBM3", 8, 81559, "192", "2Ti");

    /// <summary>8 x A100 80GB SXM.</summary>
    public static GpuNodePreset A100x80GB { get; } = new("NVIDIA-A100-SXM4-80GB", 8, 81920, "128", "1Ti");

    /// <summary>4 x L4.</summary>
    public static GpuNodePreset L4 { get; } = new("NVIDIA-L4", 4, 23034, "48", "192Gi");

    /// <summary>4 x T4.</summary>
    public static GpuNodePreset T4 { get; } = new("Tesla-T4", 4, 15360, "32", "128Gi");

    /// <summary>A CPU node: no GPUs, no GPU labels or taint.</summary>
    public static GpuNodePreset CpuOnly { get; } = new("none", 0, 0, "32", "128Gi");

    /// <summary>The same node with a different GPU count.</summary>
    public GpuNodePreset WithGpus(int gpus) => this with { Gpus = gpus };
}

/// <summary>Options of a <see cref="NodeSimulator"/>.</summary>
public sealed record NodeSimulatorOptions
{
    /// <summary>How often node status and Leases are renewed (the node lifecycle controller's grace is 40 s).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often node status is written with the Lease; null (the default): at every heartbeat. Kubelets renew their
    /// Lease every 10 s and write status only on a change or every 5 minutes (nodeStatusReportFrequency), and the node
    /// lifecycle controller counts either as a sign of life: benches that count API writes set 5 minutes.
    /// </summary>
    public TimeSpan? StatusReportInterval { get; init; }

    /// <summary>
    /// Second octet of the loopback pod IPs (127.N.x.y), so simulators in one process do not collide. The environment's
    /// <c>PILOTLIGHT_POD_NETWORK_OFFSET</c> is added to it, so two checkouts can run the suite on one machine at once.
    /// </summary>
    public int PodNetwork { get; init; } = 1;

    /// <summary>The second octet the pod IPs get: <see cref="PodNetwork"/> plus the environment's offset, if any.</summary>
    public int PodOctet => (PodNetwork + (int.TryParse(Environment.GetEnvironmentVariable("PILOTLIGHT_POD_NETWORK_OFFSET"), out var offset) ? offset : 0)) & 0xff;

    /// <summary>
    /// When set, function pods run for real: the shim and a model server as
    /// processes on the pod IP, Ready only while the shim's /ready says so,
    /// restarted when the startup probe's budget runs out, and stopped as a
    /// kubelet stops them when the pod is deleted: preStop hooks first (the
    /// user container's waits for the shim to drain), SIGTERM after each,
    /// SIGKILL after the grace period.
    /// </summary>
    public FunctionProcessOptions? Processes { get; init; }

    /// <summary>
    /// Longest a deleted pod's processes get before they are killed, whatever its grace period says. A kubelet has no
    /// such cap; this one is only there so that a stuck process cannot hold a test run for long, and it is well above
    /// the grace periods tests use (a function's timeout plus the drain grace).
    /// </summary>
    public TimeSpan MaxDrain { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Stands in for kubelets, kwok-style: registers GPU nodes (capacity
/// <c>nvidia.com/gpu</c>, GPU Feature Discovery labels, the
/// <c>nvidia.com/gpu:NoSchedule</c> taint), keeps them Ready with Lease and
/// status heartbeats, moves pods the scheduler binds to them to Running and
/// Ready with a loopback pod IP, and finishes the deletion of their pods.
/// </summary>
public sealed class NodeSimulator : IAsyncDisposable
{
    /// <summary>Label every simulated node carries.</summary>
    public const string SimulatedLabel = "pilotlight.dev/simulated";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };
    private readonly IKubernetes _client;
    private readonly NodeSimulatorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, GpuNodePreset> _nodes = new();
    private readonly ConcurrentDictionary<string, string> _podIps = new();
    private readonly ConcurrentDictionary<string, DateTime> _statusReported = new();
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _heartbeats = new();
    private readonly ConcurrentDictionary<string, byte> _inFlight = new();
    private readonly ConcurrentDictionary<string, PodProcessPair> _processes = new();
    // Like a kubelet's HTTPS probe: the server's certificate is not checked.
    private readonly HttpClient _probe = new(new SocketsHttpHandler
    {
        SslOptions = new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true },
    }) { Timeout = TimeSpan.FromSeconds(1) };
    private readonly HttpClient _hooks = new() { Timeout = Timeout.InfiniteTimeSpan };
    private readonly ConcurrentDictionary<string, TimeSpan> _timeToReady = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Informer<V1Pod> _pods;
    private Task _running = Task.CompletedTask;
    private int _nextIp;
    private readonly SemaphoreSlim _logServerGate = new(1, 1);
    private ContainerLogServer? _logServer;

    /// <summary>A simulator writing through <paramref name="client"/>.</summary>
    public NodeSimulator(IKubernetes client, NodeSimulatorOptions? options = null, TimeProvider? time = null, ILogger? logger = null)
    {
        _client = client;
        _options = options ?? new NodeSimulatorOptions();
        foreach (var dll in _options.Processes is { } p ? new[] { p.ShimDll, p.ModelServerDll } : [])
        {
            if (!File.Exists(dll))
            {
                throw new FileNotFoundException($"Function pods cannot run: {dll} is missing (`make pod-processes` builds it)", dll);
            }
        }

        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _pods = new Informer<V1Pod>(ListWatch.ForPods(client), time: _time, logger: _logger);
        _pods.AddHandler(OnPod);
    }

    /// <summary>Names of the nodes this simulator runs.</summary>
    public IReadOnlyCollection<string> Nodes => [.. _nodes.Keys];

    /// <summary>Starts watching pods and heartbeating; returns once the pod watch has listed.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await EnsureLogServerAsync(cancellationToken).ConfigureAwait(false);
        _running = Task.WhenAll(_pods.RunAsync(_stop.Token), HeartbeatLoopAsync(_stop.Token));
        await _pods.Synced.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The kubelet's log endpoint for this simulator's nodes (their status names its port), so <c>kubectl logs</c> and
    /// the API's pods/log work: function and sandbox pods run as processes have their output there; other containers
    /// have an empty log. The API server must reach nodes by InternalIP (127.0.0.1), as <see cref="ControlPlane"/> sets.
    /// </summary>
    public int KubeletPort => _logServer?.Port ?? 0;

    private async Task<int> EnsureLogServerAsync(CancellationToken ct)
    {
        await _logServerGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _logServer ??= await ContainerLogServer.StartAsync(ContainerLog, ct).ConfigureAwait(false);
            return _logServer.Port;
        }
        finally
        {
            _logServerGate.Release();
        }
    }

    /// <summary>A container's log as the kubelet would serve it; null for a pod this simulator does not know.</summary>
    private ContainerLogSource? ContainerLog(string @namespace, string name, string container)
    {
        var pod = _pods.Get(new ObjectKey(@namespace, name));
        if (pod?.Spec?.NodeName is not { } node || !_nodes.ContainsKey(node))
        {
            return null;
        }

        var process = _processes.TryGetValue(pod.Metadata.Uid, out var pair) ? pair.ProcessOf(container) : null;
        var path = process?.ContainerLogPath ?? _options.Processes?.ContainerLogPath(@namespace, name, container);
        return new ContainerLogSource(path, () => process is { HasExited: false });
    }

    /// <summary>Registers a Ready node named <paramref name="name"/> shaped like <paramref name="preset"/>, with extra <paramref name="labels"/>.</summary>
    public async Task AddNodeAsync(string name, GpuNodePreset preset, IReadOnlyDictionary<string, string>? labels = null,
        CancellationToken cancellationToken = default)
    {
        var node = new V1Node
        {
            Metadata = new V1ObjectMeta
            {
                Name = name,
                Labels = new Dictionary<string, string>
                {
                    ["kubernetes.io/hostname"] = name,
                    ["kubernetes.io/os"] = "linux",
                    ["kubernetes.io/arch"] = "amd64",
                    [SimulatedLabel] = "true",
                    ["nvidia.com/gpu.present"] = "true",
                    ["nvidia.com/gpu.product"] = preset.Product,
                    ["nvidia.com/gpu.count"] = preset.Gpus.ToString(CultureInfo.InvariantCulture),
                    ["nvidia.com/gpu.memory"] = preset.GpuMemoryMiB.ToString(CultureInfo.InvariantCulture),
                },
            },
            Spec = new V1NodeSpec
            {
                Taints = [new V1Taint { Key = "nvidia.com/gpu", Effect = "NoSchedule" }],
            },
            Status = ReadyStatus(name, preset, _time.GetUtcNow().UtcDateTime, await EnsureLogServerAsync(cancellationToken).ConfigureAwait(false)),
        };
        if (preset.Gpus == 0)
        {
            // A plain CPU node: no GPU labels, no GPU taint.
            foreach (var key in node.Metadata.Labels.Keys.Where(k => k.StartsWith("nvidia.com/", StringComparison.Ordinal)).ToList())
            {
                node.Metadata.Labels.Remove(key);
            }

            node.Spec.Taints = null;
        }

        foreach (var (key, value) in labels ?? new Dictionary<string, string>())
        {
            node.Metadata.Labels[key] = value;
        }

        try
        {
            await _client.CoreV1.CreateNodeAsync(node, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
        }

        _nodes[name] = preset;
        await HeartbeatAsync(name, preset, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes the simulator's nodes.</summary>
    public async Task DeleteNodesAsync(CancellationToken cancellationToken = default)
    {
        foreach (var name in _nodes.Keys)
        {
            _nodes.TryRemove(name, out _);
            _statusReported.TryRemove(name, out _);
            try
            {
                await _client.CoreV1.DeleteNodeAsync(name, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
            }
        }
    }

    /// <summary>
    /// For a function pod run as processes: the pod's own time to Ready, from
    /// starting its processes to the shim's first successful /ready.
    /// </summary>
    public TimeSpan? TimeToReady(string @namespace, string name) =>
        _timeToReady.TryGetValue($"{@namespace}/{name}", out var t) ? t : null;

    /// <summary>The loopback pod IP given to a pod, if it runs here.</summary>
    public string? PodIp(string @namespace, string name) => _podIps.GetValueOrDefault($"{@namespace}/{name}");

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _running.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        foreach (var pair in _processes.Values)
        {
            await pair.StopAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }

        _processes.Clear();
        if (_logServer is not null)
        {
            await _logServer.DisposeAsync().ConfigureAwait(false);
        }

        _logServerGate.Dispose();
        _probe.Dispose();
        _hooks.Dispose();

        _stop.Dispose();
    }

    private async Task HeartbeatLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.HeartbeatInterval, _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            // In parallel, as each kubelet heartbeats on its own: one after another, 125 nodes at 2 requests each
            // outlast the node lifecycle controller's 40 s grace period when the API server is busy, and the nodes
            // (and, through it, their pods' Ready conditions) flap.
            var beat = new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct };
            try
            {
                await Parallel.ForEachAsync(_nodes, beat, async (node, token) =>
                {
                    try
                    {
                        await HeartbeatAsync(node.Key, node.Value, token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        _logger.LogWarning("Heartbeat of node {Node} failed: {Error}", node.Key, ex.Message);
                    }
                }).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// One heartbeat of a node at a time, as a kubelet has one: the loop's beat and the first beat of <see cref="AddNodeAsync"/>
    /// (or two adds of one name) would otherwise both find no Lease and both create it, and one fails with AlreadyExists.
    /// </summary>
    private async Task HeartbeatAsync(string name, GpuNodePreset preset, CancellationToken ct)
    {
        var gate = _heartbeats.GetOrAdd(name, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await BeatAsync(name, preset, ct).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task BeatAsync(string name, GpuNodePreset preset, CancellationToken ct)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        if (_options.StatusReportInterval is not { } every || !_statusReported.TryGetValue(name, out var last) || now - last >= every
            || !await ReadyAsReportedAsync(name, ct).ConfigureAwait(false))
        {
            var patch = new V1Node { Status = ReadyStatus(name, preset, now, KubeletPort) };
            await _client.CoreV1.PatchNodeStatusAsync(new V1Patch(KubernetesJson.Serialize(patch), V1Patch.PatchType.MergePatch), name,
                cancellationToken: ct).ConfigureAwait(false);
            _statusReported[name] = now;
        }

        await RenewLeaseAsync(name, now, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Whether the node's stored Ready condition is still the one this simulator reported (as a kubelet compares its
    /// status with the node it reads at every heartbeat): the node lifecycle controller may have marked it Unknown.
    /// </summary>
    private async Task<bool> ReadyAsReportedAsync(string name, CancellationToken ct)
    {
        var node = await _client.CoreV1.ReadNodeAsync(name, cancellationToken: ct).ConfigureAwait(false);
        return node.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready") is { Status: "True", Reason: "KubeletReady" };
    }

    /// <summary>
    /// What a healthy kubelet reports. A node is created with it too (the API server keeps a node's status on create), so
    /// the node lifecycle controller never sees the node without a Ready condition and never taints it not-ready.
    /// </summary>
    private static V1NodeStatus ReadyStatus(string name, GpuNodePreset preset, DateTime now, int kubeletPort)
    {
        var capacity = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(preset.Cpu),
            ["memory"] = new(preset.Memory),
            ["pods"] = new("110"),
            ["ephemeral-storage"] = new("1Ti"),
            ["nvidia.com/gpu"] = new(preset.Gpus.ToString(CultureInfo.InvariantCulture)),
        };
        V1NodeCondition Condition(string type, string status, string reason) => new()
        {
            Type = type, Status = status, Reason = reason, LastHeartbeatTime = now, LastTransitionTime = now,
        };
        return new V1NodeStatus
        {
            Capacity = capacity,
            Allocatable = capacity,
            Conditions =
            [
                Condition("Ready", "True", "KubeletReady"),
                Condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                Condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                Condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            ],
            Addresses = [new V1NodeAddress { Type = "InternalIP", Address = "127.0.0.1" }, new V1NodeAddress { Type = "Hostname", Address = name }],
            DaemonEndpoints = new V1NodeDaemonEndpoints { KubeletEndpoint = new V1DaemonEndpoint { Port = kubeletPort } },
            NodeInfo = new V1NodeSystemInfo
            {
                KubeletVersion = "v1.20.2-pilotlight-sim", KubeProxyVersion = "", OperatingSystem = "linux", Architecture = "amd64",
                ContainerRuntimeVersion = "pilotlight-sim://1", OsImage = "simulated", KernelVersion = "", MachineID = "",
                SystemUUID = "", BootID = "",
            },
        };
    }

    private async Task RenewLeaseAsync(string name, DateTime now, CancellationToken ct)
    {
        const string ns = "kube-node-lease";
        try
        {
            var lease = await _client.CoordinationV1.ReadNamespacedLeaseAsync(name, ns, cancellationToken: ct).ConfigureAwait(false);
            lease.Spec.RenewTime = now;
            await _client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, name, ns, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            await _client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
            {
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
                Spec = new V1LeaseSpec { HolderIdentity = name, LeaseDurationSeconds = 40, RenewTime = now },
            }, ns, cancellationToken: ct).ConfigureAwait(false);
        }
    }

    private void OnPod(InformerEvent<V1Pod> e)
    {
        var pod = e.Object;
        if (e.Type == WatchEventType.Deleted)
        {
            _podIps.TryRemove($"{pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}", out _);
            return;
        }

        if (pod.Spec?.NodeName is not { } node || !_nodes.ContainsKey(node))
        {
            return;
        }

        var terminating = pod.Metadata.DeletionTimestamp is not null;
        var pending = pod.Status?.Phase is null or "Pending";
        if (!terminating && !pending)
        {
            if (NotReadyByTheNodeController(pod) && _inFlight.TryAdd($"{pod.Metadata.Uid}/ready", 0))
            {
                // The node lifecycle controller marks the pods of a node it thought lost not Ready; a kubelet puts
                // its own status back once it is heard from again, and so does the simulator.
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await PatchPodStatusAsync(pod, pod.Status!.PodIP, ready: true).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        _logger.LogWarning("Restoring pod {Namespace}/{Pod} Ready failed: {Error}", pod.Metadata.NamespaceProperty, pod.Metadata.Name, ex.Message);
                    }
                    finally
                    {
                        _inFlight.TryRemove($"{pod.Metadata.Uid}/ready", out _);
                    }
                });
            }

            return;
        }

        var key = $"{pod.Metadata.Uid}/{(terminating ? "delete" : "start")}";
        if (_inFlight.TryAdd(key, 0))
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await (terminating ? FinishDeletionAsync(pod) : StartPodAsync(pod)).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _logger.LogWarning("Simulating pod {Namespace}/{Pod} failed: {Error}", pod.Metadata.NamespaceProperty, pod.Metadata.Name, ex.Message);
                }
                finally
                {
                    _inFlight.TryRemove(key, out _);
                }
            });
        }
    }

    /// <summary>
    /// A running pod without processes (those follow their shim's readiness) whose Ready condition someone else
    /// turned False while its containers stayed ready: what the node lifecycle controller does to an unreachable node's pods.
    /// </summary>
    private bool NotReadyByTheNodeController(V1Pod pod) =>
        pod.Status?.Phase == "Running"
        && pod.Status.PodIP is not null
        && !_processes.ContainsKey(pod.Metadata.Uid)
        && pod.Status.Conditions?.FirstOrDefault(c => c.Type == "Ready")?.Status == "False"
        && pod.Status.Conditions?.FirstOrDefault(c => c.Type == "ContainersReady")?.Status == "True";

    private async Task StartPodAsync(V1Pod pod)
    {
        var ip = _podIps.GetOrAdd($"{pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}", _ => NextIp());
        if (_options.Processes is { } processes
            && (pod.Metadata.Labels?.ContainsKey("pilotlight.dev/function") == true || PodProcessPair.IsSandbox(pod)))
        {
            var pair = _processes.GetOrAdd(pod.Metadata.Uid, _ => PodProcessPair.Start(pod, ip, processes));
            await PatchPodStatusAsync(pod, ip, ready: false).ConfigureAwait(false);
            _ = Task.Run(() => FollowReadinessAsync(pod, ip));
            return;
        }

        await PatchPodStatusAsync(pod, ip, ready: true).ConfigureAwait(false);
    }

    /// <summary>Kills a function pod's processes, as a crash would; the simulator restarts them like a kubelet.</summary>
    public bool CrashPod(string @namespace, string name)
    {
        var pod = _pods.Get(new ObjectKey(@namespace, name));
        if (pod is null || !_processes.TryGetValue(pod.Metadata.Uid, out var pair))
        {
            return false;
        }

        pair.Crash();
        return true;
    }

    /// <summary>
    /// Mirrors the shim's /ready into the pod's Ready condition, like a kubelet
    /// readiness probe (every 10 ms until first ready, then every 100 ms), and
    /// restarts the processes if they die. The user container's startup probe is
    /// honoured simply: its httpGet is asked on every turn until it answers 2xx, and
    /// when it has not within periodSeconds x failureThreshold of the processes'
    /// start, both are restarted and the restart count goes up. Liveness probes
    /// are not simulated.
    /// </summary>
    private async Task FollowReadinessAsync(V1Pod pod, string ip)
    {
        bool? reported = false;
        var started = _time.GetTimestamp();
        var restarts = 0;
        while (!_stop.IsCancellationRequested && _processes.TryGetValue(pod.Metadata.Uid, out var pair))
        {
            try
            {
                if (pair.Crashed && pod.Spec.RestartPolicy == "Never")
                {
                    // Like a kubelet: a pod that must not restart ends, Succeeded on exit code 0 and Failed otherwise.
                    await ReportTerminatedAsync(pod, ip, pair.ExitCode ?? 137).ConfigureAwait(false);
                    return;
                }

                if (pair.Crashed && _options.Processes is { } processes)
                {
                    await pair.StopAsync(TimeSpan.Zero).ConfigureAwait(false);
                    var replacement = PodProcessPair.Start(pod, ip, processes);
                    if (!_processes.TryUpdate(pod.Metadata.Uid, replacement, pair))
                    {
                        await replacement.StopAsync(TimeSpan.Zero).ConfigureAwait(false);
                        return;
                    }

                    pair = replacement;
                    restarts++;
                    _logger.LogInformation("Restarted the processes of {Pod} ({Restarts} restarts)", pod.Metadata.Name, restarts);
                }

                if (pair.Startup is { } startup && !pair.StartupPassed && _options.Processes is { } options)
                {
                    if (await AnswersAsync(startup.Uri).ConfigureAwait(false))
                    {
                        pair.StartupPassed = true;
                    }
                    else if (TimeProvider.System.GetElapsedTime(pair.StartedAt) >= startup.Budget)
                    {
                        // The startup probe's budget (startupTimeout) is spent: the kubelet kills the container and
                        // starts it again. Here both processes restart, and the restart count goes up.
                        await pair.StopAsync(TimeSpan.Zero).ConfigureAwait(false);
                        var restarted = PodProcessPair.Start(pod, ip, options);
                        if (!_processes.TryUpdate(pod.Metadata.Uid, restarted, pair))
                        {
                            await restarted.StopAsync(TimeSpan.Zero).ConfigureAwait(false);
                            return;
                        }

                        pair = restarted;
                        restarts++;
                        _logger.LogInformation("Startup probe of {Pod} failed for {Budget}: restarted ({Restarts} restarts)", pod.Metadata.Name, startup.Budget, restarts);
                        reported = null;
                    }
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Starting or stopping the processes failed: said, and tried again on the next round, rather than
                // ending this loop silently (the pod would never restart or report again).
                _logger.LogWarning("Restarting the processes of {Pod} failed: {Error}", pod.Metadata.Name, ex);
                await Task.Delay(TimeSpan.FromMilliseconds(200), _time, _stop.Token).ConfigureAwait(false);
                continue;
            }

            bool ready;
            try
            {
                using var response = await _probe.GetAsync(pair.ReadyUri, _stop.Token).ConfigureAwait(false);
                ready = response.IsSuccessStatusCode;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                ready = false;
            }

            if (ready)
            {
                _timeToReady.TryAdd($"{pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}", _time.GetElapsedTime(started));
            }

            if (ready != reported)
            {
                try
                {
                    await PatchPodStatusAsync(pod, ip, ready, restarts).ConfigureAwait(false);
                    reported = ready;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _logger.LogWarning("Readiness of {Pod} not reported: {Error}", pod.Metadata.Name, ex.Message);
                }
            }

            try
            {
                // Finely until first Ready, so TimeToReady is the pod's own time to within 10 ms.
                await Task.Delay(TimeSpan.FromMilliseconds(reported == true || _timeToReady.ContainsKey(PodKey(pod)) ? 100 : 10), _time, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<bool> AnswersAsync(Uri uri)
    {
        try
        {
            using var response = await _probe.GetAsync(uri, _stop.Token).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    private async Task ReportTerminatedAsync(V1Pod pod, string ip, int exitCode)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var patch = new
        {
            status = new
            {
                phase = exitCode == 0 ? "Succeeded" : "Failed",
                podIP = ip,
                conditions = new[] { new { type = "Ready", status = "False", lastTransitionTime = now } },
                containerStatuses = pod.Spec.Containers.Select(c => new
                {
                    name = c.Name,
                    image = c.Image,
                    imageID = $"sim://{c.Image}",
                    ready = false,
                    restartCount = 0,
                    state = new { terminated = new { exitCode, reason = exitCode switch { 0 => "Completed", 137 => "OOMKilled", _ => "Error" }, finishedAt = now } },
                }).ToArray(),
            },
        };
        try
        {
            await _client.CoreV1.PatchNamespacedPodStatusAsync(MergePatch(patch), pod.Metadata.Name, pod.Metadata.NamespaceProperty,
                cancellationToken: _stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _logger.LogWarning("End of {Pod} not reported: {Error}", pod.Metadata.Name, ex.Message);
        }
    }

    private static string PodKey(V1Pod pod) => $"{pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}";

    private async Task PatchPodStatusAsync(V1Pod pod, string ip, bool ready, int restarts = 0)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var readiness = ready ? "True" : "False";
        object Condition(string type, string status = "True") => new { type, status, lastTransitionTime = now };
        var patch = new
        {
            status = new
            {
                phase = "Running",
                hostIP = "127.0.0.1",
                podIP = ip,
                podIPs = new[] { new { ip } },
                startTime = now,
                conditions = new[] { Condition("Initialized"), Condition("Ready", readiness), Condition("ContainersReady", readiness), Condition("PodScheduled") },
                containerStatuses = pod.Spec.Containers.Select(c => new
                {
                    name = c.Name,
                    image = c.Image,
                    imageID = $"sim://{c.Image}",
                    containerID = $"sim://{pod.Metadata.Uid}/{c.Name}",
                    ready,
                    started = true,
                    restartCount = restarts,
                    state = new { running = new { startedAt = now } },
                }).ToArray(),
            },
        };
        await _client.CoreV1.PatchNamespacedPodStatusAsync(MergePatch(patch), pod.Metadata.Name, pod.Metadata.NamespaceProperty,
            cancellationToken: _stop.Token).ConfigureAwait(false);
    }

    private async Task FinishDeletionAsync(V1Pod pod)
    {
        if (_processes.TryRemove(pod.Metadata.Uid, out var pair))
        {
            // Like a kubelet: preStop hooks, SIGTERM after each, SIGKILL once the deletion's grace period is over.
            var seconds = pod.Metadata.DeletionGracePeriodSeconds ?? pod.Spec.TerminationGracePeriodSeconds ?? 30;
            var grace = TimeSpan.FromSeconds(Math.Min(seconds, _options.MaxDrain.TotalSeconds));
            var ip = pod.Status?.PodIP ?? PodIp(pod.Metadata.NamespaceProperty, pod.Metadata.Name) ?? "127.0.0.1";
            await pair.TerminateAsync(pod, ip, grace, _hooks).ConfigureAwait(false);
        }

        try
        {
            await _client.CoreV1.DeleteNamespacedPodAsync(pod.Metadata.Name, pod.Metadata.NamespaceProperty,
                new V1DeleteOptions { GracePeriodSeconds = 0, Preconditions = new V1Preconditions { Uid = pod.Metadata.Uid } },
                cancellationToken: _stop.Token).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
        {
        }
    }

    private string NextIp()
    {
        var n = Interlocked.Increment(ref _nextIp);
        return $"127.{_options.PodOctet}.{(n >> 8) & 0xff}.{n & 0xff}";
    }

    private static V1Patch MergePatch(object body) => new(JsonSerializer.Serialize(body, Json), V1Patch.PatchType.MergePatch);
}
