using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Pilotlight.E2E;

/// <summary>
/// A real Kubernetes cluster with Pilotlight installed by its chart, as a platform team would,
/// from images built from docker/. Which cluster: PILOTLIGHT_E2E_CLUSTER =
/// <c>real-node</c> (the default: the one-node cluster of tests/real-node on this machine, see
/// <see cref="RealNodeCluster"/>), <c>k3s</c> (K3s in Docker through Testcontainers,
/// <see cref="K3sCluster"/>) or <c>kubeconfig</c> (any cluster: KUBECONFIG, images from
/// PILOTLIGHT_E2E_REGISTRY; <see cref="RealNodeCluster.FromKubeconfig"/>).
/// </summary>
public abstract class E2ECluster : IAsyncDisposable
{
    /// <summary>The helm release; the chart names everything after it (pilotlight-operator, pilotlight-sandbox-user, ...).</summary>
    public const string Release = "pilotlight";

    /// <summary>The release namespace; sandbox NetworkPolicies admit the gateway from this namespace only.</summary>
    public const string ReleaseNamespace = "pilotlight-system";

    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private readonly List<string> _namespaces = [];

    /// <summary>A client with the cluster's admin credentials.</summary>
    public abstract IKubernetes Client { get; }

    /// <summary>Where the test reaches the gateway's Service.</summary>
    public abstract Uri Gateway { get; }

    /// <summary>The sample model server's image, as pods name it.</summary>
    public abstract string ModelServerImage { get; }

    /// <summary>An image with a POSIX shell, for sandboxes (the model server's image may have none).</summary>
    public abstract string ShellImage { get; }

    /// <summary>The GPU type the node claims through its nvidia.com/gpu.product label.</summary>
    public virtual string GpuType => "L4";

    /// <summary>How many nvidia.com/gpu devices the node advertises through a device plugin; 0 where none runs.</summary>
    public virtual int Gpus => 0;

    /// <summary>The repository root (the Docker build context, the chart, the samples).</summary>
    public static string RepositoryRoot => Pilotlight.Testing.RepositoryRoot.Path;

    /// <summary>
    /// The cluster PILOTLIGHT_E2E_CLUSTER names, ready (Pilotlight installed), or null and why not when
    /// a prerequisite is missing; with PILOTLIGHT_E2E_REQUIRED=1 a missing prerequisite is an error instead.
    /// </summary>
    public static async Task<(E2ECluster? Cluster, string? Missing)> StartAsync()
    {
        var kind = Environment.GetEnvironmentVariable("PILOTLIGHT_E2E_CLUSTER") is { Length: > 0 } k ? k : "real-node";
        var missing = kind switch
        {
            "real-node" => await RealNodeCluster.MissingPrerequisiteAsync(),
            "kubeconfig" => RealNodeCluster.MissingKubeconfigPrerequisite(),
            "k3s" => await K3sCluster.MissingPrerequisiteAsync(),
            _ => $"PILOTLIGHT_E2E_CLUSTER={kind} is not one of real-node, k3s, kubeconfig",
        };
        if (missing is not null)
        {
            if (Environment.GetEnvironmentVariable("PILOTLIGHT_E2E_REQUIRED") == "1")
            {
                throw new InvalidOperationException($"the end-to-end suite must run here (PILOTLIGHT_E2E_REQUIRED=1) but cannot: {missing}");
            }

            return (null, missing);
        }

        E2ECluster cluster = kind switch
        {
            "real-node" => await RealNodeCluster.StartAsync(),
            "kubeconfig" => await RealNodeCluster.FromKubeconfig(),
            _ => await K3sCluster.StartAsync(),
        };
        return (cluster, null);
    }

    /// <summary>Runs kubectl with admin credentials; its standard output, or a failed assertion.</summary>
    public abstract Task<string> KubectlAsync(params string[] args);

    /// <summary><c>kubectl apply -f</c> of <paramref name="yaml"/> in <paramref name="ns"/>.</summary>
    public abstract Task ApplyAsync(string ns, string yaml);

    /// <summary>A directory holding <c>samples/&lt;folder&gt;/*.yaml</c> of each folder, as kubectl sees it (for <c>kubectl apply -f DIR</c>).</summary>
    public abstract Task<string> CopySamplesAsync(params string[] folders);

    /// <summary>A fresh namespace named <paramref name="prefix"/>-&lt;random&gt;.</summary>
    public async Task<string> CreateNamespaceAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 7)];
        await Client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = name } });
        lock (_namespaces)
        {
            _namespaces.Add(name);
        }

        return name;
    }

    /// <summary>Deletes every namespace <see cref="CreateNamespaceAsync"/> made that is still there (a failed test leaves its own).</summary>
    public async Task DeleteCreatedNamespacesAsync()
    {
        List<string> names;
        lock (_namespaces)
        {
            names = [.. _namespaces];
        }

        foreach (var name in names)
        {
            try
            {
                await Client.CoreV1.DeleteNamespaceAsync(name);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
                // Deleted by the test itself.
            }
        }
    }

    /// <summary>Deletes a namespace and what is in it (not waiting for it to be gone).</summary>
    public Task DeleteNamespaceAsync(string name) => Client.CoreV1.DeleteNamespaceAsync(name);

    /// <summary>
    /// Polls <paramref name="probe"/> every second until it reports done; fails after
    /// <paramref name="timeout"/>, saying what it last saw. API and HTTP errors count as "not yet".
    /// </summary>
    public static async Task UntilAsync(string what, TimeSpan timeout, Func<Task<(bool Done, string Seen)>> probe)
    {
        var clock = Stopwatch.StartNew();
        var seen = "nothing yet";
        while (true)
        {
            try
            {
                var (done, now) = await probe();
                if (done)
                {
                    return;
                }

                seen = now;
            }
            catch (Exception e) when (e is HttpOperationException or HttpRequestException or TaskCanceledException)
            {
                seen = e.Message;
            }

            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"timed out after {timeout} waiting for {what}; last seen: {seen}");
            }

            await Task.Delay(PollInterval);
        }
    }

    /// <summary>Writes what a failure needs explained: objects, events and the operator's and gateway's logs.</summary>
    public async Task LogDiagnosticsAsync(TextWriter writer)
    {
        string[][] commands =
        [
            ["get", "nodes,pods", "-A", "-o", "wide"],
            ["get", "gpufunctions,sandboxes", "-A", "-o", "wide"],
            ["get", "events", "-A", "--sort-by=.lastTimestamp"],
            ["logs", "-n", ReleaseNamespace, "-l", "app.kubernetes.io/name=pilotlight-operator", "--prefix", "--tail=200"],
            ["logs", "-n", ReleaseNamespace, "-l", "app.kubernetes.io/name=pilotlight-gateway", "--prefix", "--tail=200"],
        ];
        foreach (var args in commands)
        {
            await writer.WriteLineAsync($"$ kubectl {string.Join(' ', args)}");
            try
            {
                await writer.WriteLineAsync(await KubectlAsync(args));
            }
            catch (Exception e)
            {
                await writer.WriteLineAsync($"(not available: {e.Message})");
            }
        }
    }

    /// <inheritdoc />
    public abstract ValueTask DisposeAsync();

    /// <summary>Waits until the operator and gateway Deployments are Available and the gateway answers /readyz.</summary>
    protected async Task UntilInstalledAsync(CancellationToken ct)
    {
        foreach (var deployment in new[] { $"{Release}-operator", $"{Release}-gateway" })
        {
            await UntilAsync($"Deployment {deployment} to be Available", TimeSpan.FromMinutes(10), async () =>
            {
                var d = await Client.AppsV1.ReadNamespacedDeploymentAsync(deployment, ReleaseNamespace, cancellationToken: ct);
                var available = d.Status?.Conditions?.FirstOrDefault(c => c.Type == "Available");
                return (available?.Status == "True" && d.Status?.ReadyReplicas == d.Spec.Replicas && d.Status?.UpdatedReplicas == d.Spec.Replicas,
                    $"ready {d.Status?.ReadyReplicas ?? 0}/{d.Spec.Replicas}, updated {d.Status?.UpdatedReplicas ?? 0}, Available={available?.Status} {available?.Message}");
            });
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await UntilAsync($"the gateway to answer /readyz at {Gateway}", TimeSpan.FromMinutes(2), async () =>
        {
            using var response = await http.GetAsync(new Uri(Gateway, "/readyz"), ct);
            return (response.IsSuccessStatusCode, $"HTTP {(int)response.StatusCode}");
        });
    }

    /// <summary>The output of a command that ran to its end.</summary>
    protected sealed record ProcessResult(int ExitCode, string Output);

    /// <summary>Runs a command to its end (killed after <paramref name="timeout"/>); fails the test on a non-zero exit unless <paramref name="check"/> is false.</summary>
    protected static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, bool check = true, bool echo = false,
        IReadOnlyDictionary<string, string?>? environment = null, string? stdin = null, CancellationToken ct = default)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, WorkingDirectory = RepositoryRoot,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        var output = new StringBuilder();
        void OnLine(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (echo)
            {
                TestContext.Progress.WriteLine(e.Data);
            }
        }

        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"cannot run {file}: {e.Message}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', start.ArgumentList)} did not finish within {timeout}:\n{Tail(output)}");
        }

        process.WaitForExit();
        var result = new ProcessResult(process.ExitCode, Tail(output));
        if (check && result.ExitCode != 0)
        {
            Assert.Fail($"{file} {string.Join(' ', start.ArgumentList)} failed with exit code {result.ExitCode}:\n{result.Output}");
        }

        return result;
    }

    /// <summary>Where helm is: HELM, else where tests/chart/check.sh caches it, else PATH.</summary>
    protected static string? FindHelm()
    {
        if (Environment.GetEnvironmentVariable("HELM") is { Length: > 0 } helm)
        {
            return helm.Contains('/', StringComparison.Ordinal) ? helm : OnPath(helm) ?? helm;
        }

        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        var cached = Path.Combine(cache, "pilotlight", "helm", "helm");
        return File.Exists(cached) ? cached : OnPath("helm");
    }

    /// <summary>The first <paramref name="command"/> on PATH, or null.</summary>
    protected static string? OnPath(string command) => (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, command))
        .FirstOrDefault(File.Exists);

    /// <summary>Why helm cannot be run, or null.</summary>
    protected static string? HelmProblem() => FindHelm() switch
    {
        null => "no helm: run tests/chart/check.sh once (it caches helm in ${XDG_CACHE_HOME:-$HOME/.cache}/pilotlight/helm) or set HELM",
        var helm when !File.Exists(helm) => $"no helm at HELM={helm}",
        _ => null,
    };

    /// <summary>A line of the suite's progress.</summary>
    protected static void Log(string message) => TestContext.Progress.WriteLine($"[e2e {DateTime.Now:HH:mm:ss}] {message}");

    private static string Tail(StringBuilder output)
    {
        lock (output)
        {
            var text = output.ToString();
            return text.Length <= 8000 ? text : "...\n" + text[^8000..];
        }
    }
}
