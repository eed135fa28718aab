using System.Globalization;
using k8s.Models;

namespace Pilotlight.Testing;

/// <summary>
/// What the node simulator runs for a function pod instead of containers:
/// the runtime shim and a stand-in model server, as real processes bound to
/// the pod's loopback IP.
/// </summary>
/// <param name="ShimDll">Path of Pilotlight.RuntimeShim.dll.</param>
/// <param name="ModelServerDll">Path of the server run in place of the user's image (Pilotlight.SampleModelServer.dll).</param>
/// <param name="LogDirectory">Where each process's output goes.</param>
public sealed record FunctionProcessOptions(string ShimDll, string ModelServerDll, string LogDirectory)
{
    /// <summary>The shim and sample server as built by <c>dotnet build -c Release</c> in this checkout.</summary>
    public static FunctionProcessOptions FromRepository(string logDirectory, string configuration = "Release") => new(
        Path.Combine(RepositoryRoot.Path, "runtime-shim", "Pilotlight.RuntimeShim", "bin", configuration, "net10.0", "Pilotlight.RuntimeShim.dll"),
        Path.Combine(RepositoryRoot.Path, "samples", "model-server", "Pilotlight.SampleModelServer", "bin", configuration, "net10.0", "Pilotlight.SampleModelServer.dll"),
        logDirectory);

    /// <summary>
    /// Where a function container's output is kept in CRI format, as a kubelet keeps it (the simulated kubelet serves
    /// it at /containerLogs). One file per container across restarts, so a restarted container's log holds its earlier
    /// runs too. Sandbox agents keep writing their plain log only: read through a pipe, a process the agent starts
    /// that outlives it would hold the pipe open and slow its stop.
    /// </summary>
    public string ContainerLogPath(string @namespace, string pod, string container) =>
        Path.Combine(LogDirectory, "containers", $"{@namespace}_{pod}_{container}.log");
}

/// <summary>The two processes of one simulated function pod.</summary>
internal sealed class PodProcessPair
{
    private PodProcessPair(ManagedProcess? server, ManagedProcess shim, Uri ready)
    {
        Server = server;
        Shim = shim;
        ReadyUri = ready;
    }

    /// <summary>The stand-in for the user's server; none in a sandbox pod, where the shim is the agent.</summary>
    public ManagedProcess? Server { get; }

    public ManagedProcess Shim { get; }

    public Uri ReadyUri { get; }

    /// <summary>The user container's startup probe: where it asks, and how long it may take in all (periodSeconds x failureThreshold).</summary>
    public (Uri Uri, TimeSpan Budget)? Startup { get; private init; }

    /// <summary>When these processes were started, as <see cref="TimeProvider.GetTimestamp"/> of the system clock.</summary>
    public long StartedAt { get; } = TimeProvider.System.GetTimestamp();

    /// <summary>True once the startup probe has had a 2xx (or there is none); the simulator then stops asking it.</summary>
    public bool StartupPassed { get; set; }

    /// <summary>Starts the pod's processes on <paramref name="ip"/> with the environment the pod spec gives its containers.</summary>
    public static PodProcessPair Start(V1Pod pod, string ip, FunctionProcessOptions options)
    {
        Directory.CreateDirectory(options.LogDirectory);
        if (IsSandbox(pod))
        {
            return StartSandbox(pod, ip, options);
        }

        var function = pod.Spec.Containers.First(c => c.Name == "function");
        var shim = pod.Spec.Containers.First(c => c.Name == "runtime-shim");
        var userPort = function.Ports?.FirstOrDefault()?.ContainerPort ?? 8080;
        var shimEnv = Env(shim, pod);
        var shimPort = shimEnv.GetValueOrDefault("PILOTLIGHT_LISTEN_PORT", "8099");
        var name = $"{pod.Metadata.NamespaceProperty}_{pod.Metadata.Name}";

        var serverEnv = Env(function, pod);
        serverEnv["PORT"] = userPort.ToString(CultureInfo.InvariantCulture);
        serverEnv["LISTEN_ADDRESS"] = ip;
        serverEnv["POD_NAME"] = pod.Metadata.Name;
        var server = ManagedProcess.Start("dotnet", [options.ModelServerDll], Path.Combine(options.LogDirectory, $"{name}.server.log"), serverEnv,
            options.ContainerLogPath(pod.Metadata.NamespaceProperty, pod.Metadata.Name, function.Name));

        // localhost inside a pod is the pod's own address here.
        shimEnv["PILOTLIGHT_LISTEN_ADDRESS"] = ip;
        shimEnv["PILOTLIGHT_UPSTREAM"] = $"http://{ip}:{userPort}";
        shimEnv["PILOTLIGHT_GPU_SIMULATE"] = "true";
        var shimProcess = ManagedProcess.Start("dotnet", [options.ShimDll], Path.Combine(options.LogDirectory, $"{name}.shim.log"), shimEnv,
            options.ContainerLogPath(pod.Metadata.NamespaceProperty, pod.Metadata.Name, shim.Name));
        return new PodProcessPair(server, shimProcess, new Uri($"http://{ip}:{shimPort}/ready"))
        {
            Startup = function.StartupProbe is { HttpGet: { } get } probe && HttpGetUri(pod, get, ip) is { } uri
                ? (uri, TimeSpan.FromSeconds((probe.PeriodSeconds ?? 10) * (probe.FailureThreshold ?? 3)))
                : null,
        };
    }

    /// <summary>Label of sandbox pods, which run the shim alone, in sandbox mode.</summary>
    public const string SandboxLabel = "pilotlight.dev/sandbox";

    /// <summary>Label of warm sandbox pods, which run the agent too (it must be up when a sandbox claims them).</summary>
    public const string SandboxPoolLabel = "pilotlight.dev/sandbox-pool";

    /// <summary>True for sandbox pods, claimed or warm.</summary>
    public static bool IsSandbox(V1Pod pod) =>
        pod.Metadata.Labels?.ContainsKey(SandboxLabel) == true || pod.Metadata.Labels?.ContainsKey(SandboxPoolLabel) == true;

    /// <summary>
    /// A sandbox pod: the agent (the shim with PILOTLIGHT_MODE=sandbox, as the
    /// pod spec sets) on the pod IP, with a directory of its own as the workspace.
    /// </summary>
    private static PodProcessPair StartSandbox(V1Pod pod, string ip, FunctionProcessOptions options)
    {
        var container = pod.Spec.Containers[0];
        var env = Env(container, pod);
        var name = $"{pod.Metadata.NamespaceProperty}_{pod.Metadata.Name}";
        var workspace = Path.Combine(options.LogDirectory, $"{name}.workspace");
        Directory.CreateDirectory(workspace);
        env["PILOTLIGHT_LISTEN_ADDRESS"] = ip;
        env["PILOTLIGHT_WORKSPACE"] = workspace;
        env["HOME"] = workspace;
        env.Remove("TMPDIR");
        var port = env.GetValueOrDefault("PILOTLIGHT_LISTEN_PORT", "8099");
        var scheme = container.ReadinessProbe?.HttpGet?.Scheme is "HTTPS" ? "https" : "http";
        var agent = ManagedProcess.Start("dotnet", [options.ShimDll], Path.Combine(options.LogDirectory, $"{name}.agent.log"), env);
        return new PodProcessPair(null, agent, new Uri($"{scheme}://{ip}:{port}/ready"));
    }

    /// <summary>True once either process has exited.</summary>
    public bool Crashed => Shim.HasExited || Server?.HasExited == true;

    /// <summary>The exit code of the process that ended first, once one has.</summary>
    public int? ExitCode => Shim.HasExited ? Shim.ExitCode : Server?.HasExited == true ? Server.ExitCode : null;

    /// <summary>Kills both processes at once, as an out-of-memory kill or a node fault would.</summary>
    public void Crash()
    {
        Shim.Kill();
        Server?.Kill();
        // Dead when this returns, as a container is once its runtime reports it exited: a request sent after a crash
        // must not reach a process that is still on its way out (on a loaded machine that takes a moment).
        Shim.WaitForExit(TimeSpan.FromSeconds(10));
        Server?.WaitForExit(TimeSpan.FromSeconds(10));
    }

    /// <summary>The process that stands for a container of the pod: the shim for "runtime-shim" (or a sandbox's only container), the server for "function".</summary>
    public ManagedProcess? ProcessOf(string container) => container switch
    {
        "function" => Server,
        "runtime-shim" => Shim,
        _ => Server is null ? Shim : null,
    };

    /// <summary>
    /// Stops the pod as a kubelet does on deletion, all containers at once: a container with a preStop httpGet hook
    /// gets it (against the pod IP, waited for at most the grace period) and only then SIGTERM; one without gets
    /// SIGTERM at once (the shim starts draining). Whatever still runs when <paramref name="grace"/> is over from the
    /// start gets SIGKILL. Exec hooks and containers the simulator does not run (metering) are skipped.
    /// </summary>
    public async Task TerminateAsync(V1Pod pod, string ip, TimeSpan grace, HttpClient hooks)
    {
        using var deadline = new CancellationTokenSource(grace);
        var containers = pod.Spec.Containers.Select(c => (Container: c, Process: ProcessOf(c.Name))).Where(c => c.Process is not null).ToList();
        await Task.WhenAll(containers.Select(async c =>
        {
            if (c.Container.Lifecycle?.PreStop?.HttpGet is { } get && HttpGetUri(pod, get, ip) is { } uri)
            {
                try
                {
                    using var _ = await hooks.GetAsync(uri, deadline.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                {
                    // A kubelet goes on to SIGTERM when the hook fails or runs out of time too.
                }
            }

            c.Process!.Terminate();
        })).ConfigureAwait(false);
        await StopAsync(deadline.Token).ConfigureAwait(false);
    }

    private static Uri? HttpGetUri(V1Pod pod, V1HTTPGetAction get, string ip)
    {
        var port = int.TryParse(get.Port?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
            ? number
            : pod.Spec.Containers.SelectMany(c => c.Ports ?? []).FirstOrDefault(p => p.Name == get.Port?.Value)?.ContainerPort;
        return port is { } p ? new Uri($"http://{ip}:{p}{get.Path ?? "/"}") : null;
    }

    /// <summary>SIGTERM to both (the shim drains), then SIGKILL after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        Shim.Terminate();
        Server?.Terminate();
        using var timeout = new CancellationTokenSource(grace);
        await StopAsync(timeout.Token).ConfigureAwait(false);
    }

    /// <summary>Waits for both processes to exit until <paramref name="deadline"/>, then SIGKILLs what is left.</summary>
    private async Task StopAsync(CancellationToken deadline)
    {
        while (!(Shim.HasExited && Server?.HasExited != false) && !deadline.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(100, deadline).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        await Shim.StopAsync().ConfigureAwait(false);
        if (Server is not null)
        {
            await Server.StopAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A container's environment as a kubelet gives it: values, and the downward API's pod fields.</summary>
    private static Dictionary<string, string> Env(V1Container container, V1Pod pod)
    {
        var env = new Dictionary<string, string>();
        foreach (var e in container.Env ?? [])
        {
            var value = e.Value ?? e.ValueFrom?.FieldRef?.FieldPath switch
            {
                "metadata.uid" => pod.Metadata.Uid,
                "metadata.namespace" => pod.Metadata.NamespaceProperty,
                "metadata.name" => pod.Metadata.Name,
                _ => null,
            };
            if (value is not null)
            {
                env[e.Name] = value;
            }
        }

        return env;
    }
}
