using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using Pilotlight.Testing;

namespace Pilotlight.E2E;

/// <summary>
/// A cluster reached through a kubeconfig, with Pilotlight installed by helm from images in a
/// registry. By default the real one-node cluster of tests/real-node on this machine: a real
/// kubelet with its own Docker engine, kube-proxy, the registry on 127.0.0.1:5000 that
/// tests/real-node/images.sh filled from docker/*.Dockerfile, and the simulated GPU device
/// plugin (tests/Pilotlight.DevicePluginSim) that this class starts, so GPU pods are admitted
/// and counted by the kubelet. The gateway is reached at its Service's cluster IP (kube-proxy
/// on this machine routes it).
/// </summary>
/// <remarks>
/// PILOTLIGHT_E2E_CLUSTER=kubeconfig takes any cluster instead: KUBECONFIG, images from
/// PILOTLIGHT_E2E_REGISTRY (pushed there by docker/build.sh), the gateway through
/// <c>kubectl port-forward</c>; no device plugin is started (GPU tests run where the nodes
/// advertise nvidia.com/gpu).
/// </remarks>
public sealed partial class RealNodeCluster : E2ECluster
{
    /// <summary>The local registry of the real node.</summary>
    public const string LocalRegistry = "127.0.0.1:5000";

    /// <summary>The taint key of GPU nodes (NVIDIA's convention), put on the real node while the suite runs.</summary>
    public const string GpuTaint = "nvidia.com/gpu";

    /// <summary>Where kubelet 1.20 serves its device-plugin registration socket: fixed, whatever its --root-dir.</summary>
    public const string DevicePluginDirectory = "/var/lib/kubelet/device-plugins";

    /// <summary>Simulated GPUs the device plugin advertises.</summary>
    public const int SimulatedGpus = 2;

    private readonly string _work;
    private readonly string _registry;
    private readonly ManagedProcess? _devicePlugin;
    private readonly ManagedProcess? _portForward;
    private readonly Kubectl _kubectl;

    private RealNodeCluster(string kubeconfig, string registry, string work, IKubernetes client, Uri gateway, ManagedProcess? devicePlugin,
        ManagedProcess? portForward, string? dockerHost, string node)
    {
        Kubeconfig = kubeconfig;
        _registry = registry;
        _work = work;
        Client = client;
        Gateway = gateway;
        _devicePlugin = devicePlugin;
        _portForward = portForward;
        DockerHost = dockerHost;
        Node = node;
        _kubectl = new Kubectl(kubeconfig);
    }

    /// <summary>The real node's state directory (tests/real-node/lib.sh's RN_DIR).</summary>
    public static string RealNodeDirectory => Environment.GetEnvironmentVariable("RN_DIR") is { Length: > 0 } dir ? dir : "/tmp/pilotlight-real-node";

    /// <summary>The image tag the chart installs: its appVersion, what docker/build.sh tags by default.</summary>
    public static string Tag { get; } = AppVersion();

    /// <summary>The admin kubeconfig.</summary>
    public string Kubeconfig { get; }

    /// <summary>The node's Docker engine (unix socket URL), or null on a cluster that is not the local real node.</summary>
    public string? DockerHost { get; }

    /// <summary>The node's name (the real node has one).</summary>
    public string Node { get; }

    /// <inheritdoc />
    public override IKubernetes Client { get; }

    /// <inheritdoc />
    public override Uri Gateway { get; }

    /// <inheritdoc />
    public override string ModelServerImage => $"{_registry}/pilotlight/sample-model-server:{Tag}";

    /// <summary>The local runtime-deps stand-in (Debian bookworm minbase): a shell and coreutils, nothing else.</summary>
    public override string ShellImage => $"{_registry}/dotnet/runtime-deps:10.0";

    /// <inheritdoc />
    public override int Gpus => _devicePlugin is null ? 0 : SimulatedGpus;

    /// <summary>Why the real node cannot be used, or null: not root, node not up, images not in its registry, no helm.</summary>
    public static async Task<string?> MissingPrerequisiteAsync()
    {
        var env = Path.Combine(RealNodeDirectory, "env");
        if (!File.Exists(env))
        {
            return $"the real node is not up (no {env}): make real-node-up real-node-images (tests/real-node/README.md), or make test-real-node";
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        foreach (var image in new[] { "operator", "gateway", "runtime-shim", "meter", "sample-model-server" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Head, $"http://{LocalRegistry}/v2/pilotlight/{image}/manifests/{Tag}");
            request.Headers.Accept.ParseAdd("application/vnd.docker.distribution.manifest.v2+json");
            try
            {
                using var response = await http.SendAsync(request);
                if (!response.IsSuccessStatusCode)
                {
                    return $"pilotlight/{image}:{Tag} is not in the real node's registry ({(int)response.StatusCode}): make real-node-images";
                }
            }
            catch (HttpRequestException e)
            {
                return $"the real node's registry at {LocalRegistry} does not answer ({e.Message}): make real-node-up";
            }
        }

        return HelmProblem();
    }

    /// <summary>Why PILOTLIGHT_E2E_CLUSTER=kubeconfig cannot run, or null.</summary>
    public static string? MissingKubeconfigPrerequisite() =>
        Environment.GetEnvironmentVariable("KUBECONFIG") is not { Length: > 0 }
            ? "PILOTLIGHT_E2E_CLUSTER=kubeconfig needs KUBECONFIG"
            : Environment.GetEnvironmentVariable("PILOTLIGHT_E2E_REGISTRY") is not { Length: > 0 }
                ? "PILOTLIGHT_E2E_CLUSTER=kubeconfig needs PILOTLIGHT_E2E_REGISTRY, the registry docker/build.sh pushed the images to (REGISTRY=... PUSH=1)"
                : HelmProblem();

    /// <summary>The local real node: its kubeconfig, the device plugin, Pilotlight installed, the gateway's cluster IP.</summary>
    public static async Task<RealNodeCluster> StartAsync(CancellationToken ct = default)
    {
        var env = ReadEnv(Path.Combine(RealNodeDirectory, "env"));
        var kubeconfig = env["KUBECONFIG"];
        var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
        var work = Directory.CreateTempSubdirectory("pilotlight-e2e-").FullName;
        var node = (await client.CoreV1.ListNodeAsync(cancellationToken: ct)).Items.Single().Metadata.Name;

        // Simulated GPUs, registered with the real kubelet through its device-plugin socket.
        Log($"starting the simulated GPU device plugin ({SimulatedGpus} x NVIDIA-L4) for node {node}");
        var plugin = ManagedProcess.Start("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "Pilotlight.DevicePluginSim.dll"),
            "--plugin-dir", DevicePluginDirectory, "--node", node, "--kubeconfig", kubeconfig,
            "--count", SimulatedGpus.ToString(System.Globalization.CultureInfo.InvariantCulture), "--product", "NVIDIA-L4",
        ], Path.Combine(work, "device-plugin.log"));
        await UntilAsync("the node to advertise the simulated GPUs (allocatable nvidia.com/gpu)", TimeSpan.FromMinutes(1), async () =>
        {
            var n = await client.CoreV1.ReadNodeAsync(node, cancellationToken: ct);
            var gpus = n.Status?.Allocatable?.TryGetValue("nvidia.com/gpu", out var q) == true ? q.ToString() : "none";
            return (gpus == SimulatedGpus.ToString(System.Globalization.CultureInfo.InvariantCulture), $"allocatable nvidia.com/gpu: {gpus}; plugin: {plugin.LogTail(5)}");
        });

        // A GPU node as platforms taint them: only pods that tolerate the taint land here, so the chart's own pods,
        // functions and sandboxes must each tolerate it (the cluster is all GPU nodes, as many are).
        await client.CoreV1.PatchNodeAsync(new V1Patch(new { spec = new { taints = new[] { new { key = GpuTaint, value = "present", effect = "NoSchedule" } } } },
            V1Patch.PatchType.StrategicMergePatch), node, cancellationToken: ct);
        var cluster = await InstallAsync(kubeconfig, LocalRegistry, work, client, plugin, gatewayByPortForward: false, env["DOCKER_HOST"], node, ct);
        return cluster;
    }

    /// <summary>The cluster KUBECONFIG names, images from PILOTLIGHT_E2E_REGISTRY.</summary>
    public static async Task<RealNodeCluster> FromKubeconfig(CancellationToken ct = default)
    {
        var kubeconfig = Environment.GetEnvironmentVariable("KUBECONFIG")!.Split(Path.PathSeparator)[0];
        var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
        var work = Directory.CreateTempSubdirectory("pilotlight-e2e-").FullName;
        var node = (await client.CoreV1.ListNodeAsync(cancellationToken: ct)).Items.First().Metadata.Name;
        return await InstallAsync(kubeconfig, Environment.GetEnvironmentVariable("PILOTLIGHT_E2E_REGISTRY")!.TrimEnd('/'), work, client, null,
            gatewayByPortForward: true, null, node, ct);
    }

    /// <inheritdoc />
    public override async Task<string> KubectlAsync(params string[] args)
    {
        var result = await _kubectl.RunAsync(args);
        Assert.That(result.ExitCode, Is.Zero, $"kubectl {string.Join(' ', args)}:\n{result.StandardError}{result.StandardOutput}");
        return result.StandardOutput;
    }

    /// <inheritdoc />
    public override async Task ApplyAsync(string ns, string yaml)
    {
        var result = await _kubectl.ApplyAsync(yaml, ns);
        Assert.That(result.ExitCode, Is.Zero, $"kubectl apply:\n{result.StandardError}{result.StandardOutput}");
    }

    /// <inheritdoc />
    public override Task<string> CopySamplesAsync(params string[] folders)
    {
        var target = Directory.CreateDirectory(Path.Combine(_work, $"samples-{Guid.NewGuid():N}")).FullName;
        foreach (var folder in folders)
        {
            // The samples name public images (vLLM, python, ...). Pulling them would send the node's traffic off this
            // machine, which the suite never does: every image becomes one in the node's own registry, the rest stays.
            var local = folder == "sandboxes" ? ShellImage : ModelServerImage;
            foreach (var file in Directory.GetFiles(Path.Combine(RepositoryRoot, "samples", folder), "*.yaml"))
            {
                File.WriteAllText(Path.Combine(target, $"{folder}-{Path.GetFileName(file)}"),
                    ImageLine().Replace(File.ReadAllText(file), m => $"{m.Groups[1].Value}image: {local}"));
            }
        }

        return Task.FromResult(target);
    }

    /// <summary><c>helm</c> with this cluster's kubeconfig.</summary>
    public async Task<string> HelmAsync(params string[] args) =>
        (await RunAsync(FindHelm()!, [.. args, "--kubeconfig", Kubeconfig], TimeSpan.FromMinutes(10))).Output;

    /// <summary>The chart's values for this cluster, with <paramref name="tag"/> as every Pilotlight image's tag.</summary>
    public string ValuesFile(string tag)
    {
        var path = Path.Combine(_work, $"values-{tag}.yaml");
        File.WriteAllText(path, $$"""
            image:
              registry: {{_registry}}
              # Pulled from the registry on every start: what a node that has never seen them does.
              pullPolicy: Always
            operator:
              image:
                tag: "{{tag}}"
            gateway:
              image:
                tag: "{{tag}}"
            shim:
              image:
                tag: "{{tag}}"
            meter:
              image:
                tag: "{{tag}}"
            sandbox:
              runtimeClasses:
                # No gVisor or Kata on this node: sandboxes run on the node's default runtime (runc). The samples
                # name kata (one of them), so the platform allows it; such a sandbox gets no pod here.
                allowed: [kata]
                default: ""
            admission:
              # The samples' transcriber runs as its own ServiceAccount, which the platform must allow.
              allowedServiceAccounts: [transcriber]
            """);
        return path;
    }

    /// <summary>Runs a docker command against the real node's engine; its output.</summary>
    public async Task<string> DockerAsync(params string[] args)
    {
        Assert.That(DockerHost, Is.Not.Null, "only the local real node has a Docker engine the test can reach");
        return (await RunAsync("/usr/bin/docker", args, TimeSpan.FromMinutes(5), environment: new Dictionary<string, string?> { ["DOCKER_HOST"] = DockerHost })).Output;
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        try
        {
            await RunAsync(FindHelm()!, ["uninstall", Release, "--namespace", ReleaseNamespace, "--kubeconfig", Kubeconfig, "--wait", "--timeout", "3m"],
                TimeSpan.FromMinutes(4), check: false);
        }
        finally
        {
            if (_portForward is not null)
            {
                await _portForward.StopAsync();
            }

            if (_devicePlugin is not null)
            {
                await _devicePlugin.StopAsync();
                var n = await Client.CoreV1.ReadNodeAsync(Node);
                if (n.Spec.Taints?.Any(t => t.Key == GpuTaint) == true)
                {
                    n.Spec.Taints = [.. n.Spec.Taints.Where(t => t.Key != GpuTaint)];
                    await Client.CoreV1.ReplaceNodeAsync(n, Node);
                }
            }

            Client.Dispose();
            Directory.Delete(_work, recursive: true);
        }
    }

    /// <summary>
    /// CRDs already on a node kept between runs (an older chart installed them from its crds/ directory, or another
    /// release did) are handed to this release, as UPGRADING.md tells an operator to do: Helm refuses to take over an
    /// object without its ownership metadata.
    /// </summary>
    private static async Task AdoptCrdsAsync(IKubernetes client, CancellationToken ct)
    {
        foreach (var plural in new[] { "gpufunctions", "sandboxes", "sandboxwarmpools" })
        {
            var name = $"{plural}.pilotlight.dev";
            var crds = await client.ApiextensionsV1.ListCustomResourceDefinitionAsync(fieldSelector: $"metadata.name={name}", cancellationToken: ct);
            if (crds.Items.Count == 0)
            {
                continue;
            }

            Log($"adopting the existing CRD {name} into release {Release}");
            var patch = new
            {
                metadata = new
                {
                    labels = new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "Helm" },
                    annotations = new Dictionary<string, string>
                    {
                        ["meta.helm.sh/release-name"] = Release, ["meta.helm.sh/release-namespace"] = ReleaseNamespace,
                    },
                },
            };
            await client.ApiextensionsV1.PatchCustomResourceDefinitionAsync(new V1Patch(patch, V1Patch.PatchType.MergePatch), name, cancellationToken: ct);
        }
    }

    private static async Task<RealNodeCluster> InstallAsync(string kubeconfig, string registry, string work, IKubernetes client, ManagedProcess? plugin,
        bool gatewayByPortForward, string? dockerHost, string node, CancellationToken ct)
    {
        // A release left by an interrupted run goes first, so this install is a fresh one.
        await RunAsync(FindHelm()!, ["uninstall", Release, "--namespace", ReleaseNamespace, "--kubeconfig", kubeconfig, "--wait", "--timeout", "3m"],
            TimeSpan.FromMinutes(4), check: false, ct: ct);
        await AdoptCrdsAsync(client, ct);
        var seed = new RealNodeCluster(kubeconfig, registry, work, client, new Uri("http://unused"), plugin, null, dockerHost, node);
        Log($"helm install {Release} charts/pilotlight -n {ReleaseNamespace} (images {registry}/pilotlight/*:{Tag})");
        await RunAsync(FindHelm()!,
            ["install", Release, Path.Combine(RepositoryRoot, "charts", "pilotlight"), "--namespace", ReleaseNamespace, "--create-namespace",
             "--kubeconfig", kubeconfig, "--values", seed.ValuesFile(Tag), "--timeout", "10m",
             // Kubernetes before 1.23 refuses the CRDs' x-kubernetes-validations in a server-side apply (Helm 4's
             // default) and drops them in a client-side one: the README's install line for such clusters.
             "--server-side=false"],
            TimeSpan.FromMinutes(10), ct: ct);

        Uri gateway;
        ManagedProcess? forward = null;
        if (gatewayByPortForward)
        {
            forward = ManagedProcess.Start("kubectl",
                [$"--kubeconfig={kubeconfig}", "port-forward", "-n", ReleaseNamespace, $"service/{Release}-gateway", "0:80"], Path.Combine(work, "port-forward.log"));
            var port = "";
            await UntilAsync("kubectl port-forward to the gateway", TimeSpan.FromMinutes(2), () =>
            {
                port = ForwardedPort().Match(forward.LogTail(20)).Groups[1].Value;
                return Task.FromResult((port.Length > 0, forward.LogTail(5)));
            });
            gateway = new Uri($"http://127.0.0.1:{port}");
        }
        else
        {
            // This machine is the node: kube-proxy's rules route the Service's cluster IP from here.
            var service = await client.CoreV1.ReadNamespacedServiceAsync($"{Release}-gateway", ReleaseNamespace, cancellationToken: ct);
            gateway = new Uri($"http://{service.Spec.ClusterIP}:{service.Spec.Ports[0].Port}");
        }

        var cluster = new RealNodeCluster(kubeconfig, registry, work, client, gateway, plugin, forward, dockerHost, node);
        await cluster.UntilInstalledAsync(ct);
        Log($"Pilotlight is up; gateway at {gateway}");
        return cluster;
    }

    private static Dictionary<string, string> ReadEnv(string path)
    {
        // up.sh writes one line: export KUBECONFIG=... DOCKER_HOST=... PATH=...
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match m in EnvAssignment().Matches(File.ReadAllText(path)))
        {
            values[m.Groups[1].Value] = m.Groups[2].Value;
        }

        return values;
    }

    private static string AppVersion()
    {
        var chart = File.ReadAllText(Path.Combine(RepositoryRoot, "charts", "pilotlight", "Chart.yaml"));
        return AppVersionLine().Match(chart).Groups[1].Value;
    }

    [GeneratedRegex(@"([A-Z_]+)=(\S+)")]
    private static partial Regex EnvAssignment();

    [GeneratedRegex("""(?m)^appVersion:\s*"?([^"\s]+)"?""")]
    private static partial Regex AppVersionLine();

    [GeneratedRegex(@"(?m)^(\s*)image:\s*\S+\s*$")]
    private static partial Regex ImageLine();

    [GeneratedRegex(@"Forwarding from 127\.0\.0\.1:(\d+)")]
    private static partial Regex ForwardedPort();
}
