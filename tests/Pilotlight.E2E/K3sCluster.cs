using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using DotNet.Testcontainers.Configurations;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Testcontainers.K3s;

namespace Pilotlight.E2E;

/// <summary>
/// A one-node K3s cluster in a Docker container with Pilotlight installed as a
/// platform team would: the images built from docker/ (docker/build.sh, plus the
/// sample model server), loaded into the node's containerd (nothing is pushed or
/// pulled from a registry), and the chart charts/pilotlight installed with helm as
/// release "pilotlight" in "pilotlight-system". The gateway is published through a
/// NodePort that the K3s container maps to a host port.
/// </summary>
/// <remarks>
/// Environment: DOTNET_IMAGES (required, as for docker/build.sh), DOCKER (the
/// docker CLI, default docker), HELM (default: the copy tests/chart/check.sh caches,
/// else helm on PATH), PILOTLIGHT_K3S_IMAGE (default <see cref="DefaultK3sImage"/>).
/// The cluster still pulls K3s' own images (pause, CoreDNS) and the K3s and
/// Testcontainers images from their registries, so the Docker host needs network.
/// </remarks>
public sealed class K3sCluster : E2ECluster
{
    /// <summary>Tag of every image this suite builds, so none is mistaken for a published one.</summary>
    public const string Tag = "e2e";

    /// <summary>The sample model server (docker/model-server.Dockerfile), the function the scenarios run.</summary>
    public const string ModelServerImageName = "pilotlight/sample-model-server:" + Tag;

    /// <summary>K3s release the cluster runs, unless PILOTLIGHT_K3S_IMAGE names another.</summary>
    public const string DefaultK3sImage = "rancher/k3s:v1.32.3-k3s1";

    /// <summary>The message every test is skipped with where no Docker engine answers.</summary>
    public const string NoDocker =
        "no Docker engine: the K3s end-to-end suite needs one (set DOCKER_HOST or start dockerd); the same scenarios run on the local control plane in Pilotlight.Tests";

    /// <summary>NodePort of the extra Service in front of the gateway; the K3s container publishes it.</summary>
    private const int GatewayNodePort = 30080;

    /// <summary>What docker/build.sh builds (its components) and the images they become, all tagged <see cref="Tag"/>.</summary>
    private static readonly string[] BuildComponents = ["operator", "gateway", "runtime-shim", "metering"];

    private static readonly string[] Images =
        ["pilotlight/operator", "pilotlight/gateway", "pilotlight/runtime-shim", "pilotlight/meter", "pilotlight/sample-model-server"];

    /// <summary>The chart values of this install: the local images, never pulled, and sandboxes on the node's own runtime.</summary>
    private const string ChartValues = $$"""
        image:
          # The images were imported into the node's containerd: a missing one should fail, not be looked for on Docker Hub.
          pullPolicy: Never
        operator:
          image:
            tag: {{Tag}}
        gateway:
          image:
            tag: {{Tag}}
        shim:
          image:
            tag: {{Tag}}
        meter:
          image:
            tag: {{Tag}}
        sandbox:
          runtimeClasses:
            # K3s has no gVisor or Kata. An empty default leaves runtimeClassName unset on sandbox
            # pods (the node's default runtime, runc); an empty allowlist refuses any a Sandbox names.
            allowed: []
            default: ""
        """;

    private readonly K3sContainer _container;
    private readonly string _workDirectory;

    private K3sCluster(K3sContainer container, string workDirectory, IKubernetes client, Uri gateway)
    {
        _container = container;
        _workDirectory = workDirectory;
        Client = client;
        Gateway = gateway;
    }

    /// <summary>A client with the cluster's admin credentials.</summary>
    public override IKubernetes Client { get; }

    /// <summary>The gateway as seen from the test: the NodePort's host port, e.g. http://127.0.0.1:49153.</summary>
    public override Uri Gateway { get; }

    /// <inheritdoc />
    public override string ModelServerImage => ModelServerImageName;

    /// <inheritdoc />
    public override string ShellImage => ModelServerImageName;

    private static string Docker => Environment.GetEnvironmentVariable("DOCKER") is { Length: > 0 } docker ? docker : "docker";

    /// <summary>Why this suite cannot run here, or null when it can: no Docker engine, no DOTNET_IMAGES, no helm.</summary>
    public static async Task<string?> MissingPrerequisiteAsync()
    {
        if (await DockerProblemAsync() is { } problem)
        {
            TestContext.Progress.WriteLine($"K3s end-to-end suite skipped: {problem}");
            return NoDocker;
        }

        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("DOTNET_IMAGES")))
        {
            return "DOTNET_IMAGES is not set: the K3s end-to-end suite builds the Pilotlight images from docker/*.Dockerfile, "
                + "which take their sdk, aspnet and runtime-deps base images from that repository (Microsoft's .NET images or a mirror; see docker/README.md)";
        }

        return HelmProblem();
    }

    /// <summary>Builds the images, starts K3s, loads the images, installs the chart and waits until operator and gateway are available.</summary>
    public static async Task<K3sCluster> StartAsync(CancellationToken ct = default)
    {
        await BuildImagesAsync(ct);

        var k3sImage = Environment.GetEnvironmentVariable("PILOTLIGHT_K3S_IMAGE") is { Length: > 0 } image ? image : DefaultK3sImage;
        Log($"starting {k3sImage}");
        var container = new K3sBuilder(k3sImage).WithPortBinding(GatewayNodePort, assignRandomHostPort: true).Build();
        var work = Directory.CreateTempSubdirectory("pilotlight-e2e-").FullName;
        K3sCluster? cluster = null;
        try
        {
            using (var startup = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                startup.CancelAfter(TimeSpan.FromMinutes(10));
                await container.StartAsync(startup.Token);
            }

            await ImportImagesAsync(container, work, ct);

            var kubeconfig = Path.Combine(work, "kubeconfig");
            await File.WriteAllTextAsync(kubeconfig, await container.GetKubeconfigAsync(), ct);
            var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
            var gateway = new Uri($"http://{container.Hostname}:{container.GetMappedPublicPort(GatewayNodePort)}");
            cluster = new K3sCluster(container, work, client, gateway);
            await cluster.InstallAsync(kubeconfig, ct);
            return cluster;
        }
        catch
        {
            if (cluster is not null)
            {
                await cluster.LogDiagnosticsAsync(TestContext.Progress);
                await cluster.DisposeAsync();
            }
            else
            {
                await container.DisposeAsync();
                Directory.Delete(work, recursive: true);
            }

            throw;
        }
    }

    /// <summary><c>kubectl apply -f</c> of <paramref name="yaml"/> in <paramref name="ns"/>, with the K3s node's own kubectl.</summary>
    public override async Task ApplyAsync(string ns, string yaml)
    {
        var path = $"/var/lib/rancher/k3s/pilotlight-e2e/manifests/{Guid.NewGuid():N}.yaml";
        await _container.CopyAsync(Encoding.UTF8.GetBytes(yaml), path);
        await KubectlAsync("apply", "-n", ns, "-f", path);
    }

    /// <summary>
    /// Copies <c>samples/&lt;folder&gt;/*.yaml</c> of each folder into the K3s container, all into one
    /// directory, and returns that directory (for <c>kubectl apply -f DIR</c>).
    /// </summary>
    public override async Task<string> CopySamplesAsync(params string[] folders)
    {
        var target = $"/var/lib/rancher/k3s/pilotlight-e2e/samples-{Guid.NewGuid():N}";
        foreach (var folder in folders)
        {
            foreach (var file in Directory.GetFiles(Path.Combine(RepositoryRoot, "samples", folder), "*.yaml"))
            {
                await _container.CopyAsync(await File.ReadAllBytesAsync(file), $"{target}/{folder}-{Path.GetFileName(file)}");
            }
        }

        return target;
    }

    /// <summary>Runs kubectl on the K3s node (the server's own version, admin credentials); its standard output, or a failed assertion.</summary>
    public override async Task<string> KubectlAsync(params string[] args)
    {
        var result = await _container.ExecAsync(["kubectl", .. args]);
        Assert.That(result.ExitCode, Is.Zero, $"kubectl {string.Join(' ', args)}:\n{result.Stderr}{result.Stdout}");
        return result.Stdout;
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _container.DisposeAsync();
        Directory.Delete(_workDirectory, recursive: true);
    }

    /// <summary>
    /// Null when a Docker engine answers both Testcontainers (which starts K3s) and the docker
    /// CLI (which builds and saves the images); otherwise what is wrong, for the log.
    /// </summary>
    private static async Task<string?> DockerProblemAsync()
    {
        // Testcontainers looks where it will start containers (DOCKER_HOST, ~/.testcontainers.properties,
        // the Docker context, /var/run/docker.sock, ...) and pings each candidate: null means none answered.
        try
        {
            if (TestcontainersSettings.OS.DockerEndpointAuthConfig is null)
            {
                return "Testcontainers found no Docker endpoint that answers";
            }
        }
        catch (Exception e)
        {
            return $"Testcontainers could not look for a Docker endpoint: {e.Message}";
        }

        try
        {
            var version = await RunAsync(Docker, ["version", "--format", "{{.Server.Version}}"], TimeSpan.FromMinutes(1), check: false);
            return version.ExitCode == 0 ? null : $"'{Docker} version' cannot reach the engine: {version.Output.Trim()}";
        }
        catch (Win32Exception)
        {
            return $"no '{Docker}' command (the images are built with the docker CLI; DOCKER names another)";
        }
    }

    private static async Task BuildImagesAsync(CancellationToken ct)
    {
        var timeout = TimeSpan.FromMinutes(45);
        // BuildKit, or a clear error where the CLI lacks buildx: the legacy builder ignores the
        // per-Dockerfile .dockerignore files (host bin/ and obj/ would be copied into the build) and TARGETARCH.
        var environment = new Dictionary<string, string?> { ["DOCKER_BUILDKIT"] = "1", ["TAG"] = Tag, ["REGISTRY"] = null, ["PUSH"] = null, ["DOCKER"] = Docker };
        Log($"building {string.Join(", ", BuildComponents)} with docker/build.sh (slow the first time: two NativeAOT builds)");
        await RunAsync("bash", [Path.Combine(RepositoryRoot, "docker", "build.sh"), .. BuildComponents], timeout, echo: true, environment: environment, ct: ct);
        Log($"building {ModelServerImageName}");
        await RunAsync(Docker,
            ["build", "-f", Path.Combine(RepositoryRoot, "docker", "model-server.Dockerfile"),
             "--build-arg", $"DOTNET_IMAGES={Environment.GetEnvironmentVariable("DOTNET_IMAGES")}", "-t", ModelServerImageName, RepositoryRoot],
            timeout, echo: true, environment: environment, ct: ct);
    }

    /// <summary><c>docker save</c> of the images, copied into the node and imported into its containerd (namespace k8s.io, where the kubelet looks).</summary>
    private static async Task ImportImagesAsync(K3sContainer container, string work, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMinutes(10);
        var archive = Path.Combine(work, "images.tar");
        const string inNode = "/var/lib/rancher/k3s/pilotlight-e2e-images.tar";
        Log("loading the images into the K3s node");
        await RunAsync(Docker, ["save", "-o", archive, .. Images.Select(i => $"{i}:{Tag}")], timeout, ct: ct);
        await RunAsync(Docker, ["cp", archive, $"{container.Id}:{inNode}"], timeout, ct: ct);
        File.Delete(archive);
        var import = await container.ExecAsync(["k3s", "ctr", "--namespace", "k8s.io", "images", "import", inNode], ct);
        Assert.That(import.ExitCode, Is.Zero, $"k3s ctr images import:\n{import.Stderr}{import.Stdout}");
        await container.ExecAsync(["rm", "-f", inNode], ct);
    }

    /// <summary>helm install, a NodePort for the gateway, a GPU label on the node; then waits for operator and gateway.</summary>
    private async Task InstallAsync(string kubeconfig, CancellationToken ct)
    {
        var values = Path.Combine(_workDirectory, "values.yaml");
        await File.WriteAllTextAsync(values, ChartValues, ct);
        Log($"helm install {Release} charts/pilotlight -n {ReleaseNamespace}");
        await RunAsync(FindHelm()!,
            ["install", Release, Path.Combine(RepositoryRoot, "charts", "pilotlight"), "--namespace", ReleaseNamespace, "--create-namespace",
             "--kubeconfig", kubeconfig, "--values", values, "--timeout", "10m"],
            TimeSpan.FromMinutes(10), ct: ct);

        // The chart's gateway Service is a ClusterIP (gateway.service has no nodePort value); this one beside it
        // reaches the same pods on a fixed NodePort, which the K3s container publishes on a host port.
        await Client.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = $"{Release}-gateway-e2e" },
            Spec = new V1ServiceSpec
            {
                Type = "NodePort",
                Selector = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "pilotlight-gateway", ["app.kubernetes.io/instance"] = Release },
                Ports = [new V1ServicePort { Name = "http", Port = 80, TargetPort = "http", NodePort = GatewayNodePort, Protocol = "TCP" }],
            },
        }, ReleaseNamespace, cancellationToken: ct);

        // Functions are placed by GPU type (node affinity on nvidia.com/gpu.product) even with gpu.count 0:
        // the node says it is an L4 node, as GPU Feature Discovery would, without having a GPU.
        var node = (await Client.CoreV1.ListNodeAsync(cancellationToken: ct)).Items.Single();
        await Client.CoreV1.PatchNodeAsync(new V1Patch("""{"metadata":{"labels":{"nvidia.com/gpu.product":"NVIDIA-L4"}}}""", V1Patch.PatchType.MergePatch),
            node.Metadata.Name, cancellationToken: ct);

        await UntilInstalledAsync(ct);
        Log($"Pilotlight is up; gateway at {Gateway}");
    }

}
