using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Models;

namespace Pilotlight.Testing;

/// <summary>
/// A real Kubernetes control plane on loopback: etcd, kube-apiserver,
/// kube-controller-manager and kube-scheduler as child processes, with
/// self-signed certificates and a static admin token. No kubelets: pair it
/// with <see cref="NodeSimulator"/>. The API server records the requests of
/// <see cref="AuditedUsers"/> in an audit log. Disposing stops everything and
/// deletes its directory.
/// </summary>
public sealed class ControlPlane : IAsyncDisposable
{
    private readonly string _bin;
    private readonly List<ManagedProcess> _processes = [];
    private ManagedProcess? _apiServer;
    private string[] _apiServerArgs = [];

    private ControlPlane(string bin, string dir, int apiPort, string token)
    {
        _bin = bin;
        Directory = dir;
        ApiPort = apiPort;
        AdminToken = token;
        KubeconfigPath = Path.Combine(dir, "kubeconfig");
    }

    /// <summary>Working directory holding certificates, kubeconfig, data and logs.</summary>
    public string Directory { get; }

    /// <summary>The API server's secure port on 127.0.0.1.</summary>
    public int ApiPort { get; }

    /// <summary>The API server's URL.</summary>
    public string Host => $"https://127.0.0.1:{ApiPort}";

    /// <summary>A kubeconfig for the admin user (system:masters).</summary>
    public string KubeconfigPath { get; }

    /// <summary>The admin bearer token.</summary>
    internal string AdminToken { get; }

    /// <summary>Client configuration for the admin user.</summary>
    public KubernetesClientConfiguration Configuration =>
        KubernetesClientConfiguration.BuildConfigFromConfigFile(KubeconfigPath);

    /// <summary>A new admin client; the caller disposes it.</summary>
    public Kubernetes CreateClient() => new(Configuration);

    /// <summary>
    /// Users the API server knows by bearer token besides the admin, with no
    /// rights until RBAC grants them some: for tests of authorisation and of
    /// least-privilege roles.
    /// </summary>
    public static IReadOnlyList<string> TestUsers { get; } =
    [
        "alice",
        "bob",
        ChartRbac.OperatorUser,
        ChartRbac.GatewayUser,
    ];

    /// <summary>
    /// The users whose every request the API server records in <see cref="AuditLogPath"/>
    /// (level Metadata): the operator's and the gateway's service accounts, so that
    /// tests can compare what they do with what the chart grants them.
    /// </summary>
    public static IReadOnlyList<string> AuditedUsers { get; } = [ChartRbac.OperatorUser, ChartRbac.GatewayUser];

    /// <summary>The API server's audit log (JSON lines; see <see cref="AuditLog"/>).</summary>
    public string AuditLogPath => Path.Combine(Directory, "audit.log");

    /// <summary>The audit log's events so far.</summary>
    public IReadOnlyList<AuditEvent> AuditEvents() => AuditLog.Read(AuditLogPath);

    private readonly Dictionary<string, string> _userTokens = TestUsers.ToDictionary(u => u, _ => Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant());

    /// <summary>The bearer token of one of <see cref="TestUsers"/>.</summary>
    public string UserToken(string user) => _userTokens[user];

    /// <summary>A client acting as one of <see cref="TestUsers"/>; the caller disposes it.</summary>
    public Kubernetes CreateClient(string user)
    {
        var config = Configuration;
        config.AccessToken = UserToken(user);
        config.ClientCertificateData = null;
        config.ClientCertificateKeyData = null;
        config.Username = null;
        config.Password = null;
        return new Kubernetes(config);
    }

    /// <summary>The Service ClusterIP range by default: 10.0.0.0/16 (the operator makes a Service per function, and the shared control plane holds every test's; no traffic goes to these addresses).</summary>
    public const string DefaultServiceClusterIpRange = "10.0.0.0/16";

    private string _serviceClusterIpRange = DefaultServiceClusterIpRange;
    private bool _priorityAndFairness;

    /// <summary>
    /// Finds the binaries (KUBEBUILDER_ASSETS, the build cache, PATH, else
    /// builds them with tests/control-plane/build.sh) and starts everything.
    /// </summary>
    public static Task<ControlPlane> StartAsync(CancellationToken cancellationToken = default) =>
        StartAsync(DefaultServiceClusterIpRange, cancellationToken);

    /// <summary>
    /// As <see cref="StartAsync(CancellationToken)"/>, with the Service ClusterIP range <paramref name="serviceClusterIpRange"/>
    /// (e.g. 10.0.0.0/16 for benches whose operator creates a Service per function, thousands of them).
    /// </summary>
    public static Task<ControlPlane> StartAsync(string serviceClusterIpRange, CancellationToken cancellationToken = default) =>
        StartAsync(serviceClusterIpRange, priorityAndFairness: false, cancellationToken);

    /// <summary>
    /// As <see cref="StartAsync(string, CancellationToken)"/>; with <paramref name="priorityAndFairness"/> the API server
    /// does API Priority and Fairness, as clusters do by default since 1.20 (the tests' control plane leaves it off and
    /// raises the in-flight limits instead: many tests' clients share it).
    /// </summary>
    public static async Task<ControlPlane> StartAsync(string serviceClusterIpRange, bool priorityAndFairness, CancellationToken cancellationToken = default)
    {
        var bin = await ControlPlaneBinaries.LocateAsync(cancellationToken).ConfigureAwait(false);
        var dir = System.IO.Directory.CreateTempSubdirectory("pilotlight-cp-").FullName;
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        var plane = new ControlPlane(bin, dir, FreePort(), token) { _serviceClusterIpRange = serviceClusterIpRange, _priorityAndFairness = priorityAndFairness };
        try
        {
            await plane.StartAllAsync(cancellationToken).ConfigureAwait(false);
            return plane;
        }
        catch
        {
            await plane.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartAllAsync(CancellationToken ct)
    {
        await WriteCertificatesAsync(ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(Directory, "tokens.csv"),
            $"{AdminToken},admin,admin,system:masters\n" + string.Concat(TestUsers.Select((u, i) => $"{_userTokens[u]},{u},test-{i}\n")), ct).ConfigureAwait(false);
        WriteKubeconfig();
        var auditPolicy = Path.Combine(Directory, "audit-policy.yaml");
        await File.WriteAllTextAsync(auditPolicy, AuditLog.Policy(AuditedUsers), ct).ConfigureAwait(false);

        int etcdPort = FreePort(), etcdPeer = FreePort();
        var etcd = Start("etcd",
            "--data-dir", Path.Combine(Directory, "etcd"),
            "--listen-client-urls", $"http://127.0.0.1:{etcdPort}",
            "--advertise-client-urls", $"http://127.0.0.1:{etcdPort}",
            "--listen-peer-urls", $"http://127.0.0.1:{etcdPeer}",
            "--initial-advertise-peer-urls", $"http://127.0.0.1:{etcdPeer}",
            "--initial-cluster", $"default=http://127.0.0.1:{etcdPeer}",
            "--log-level", "warn");
        await WaitForAsync(async () =>
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, etcdPort, ct).ConfigureAwait(false);
            return true;
        }, etcd, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);

        _apiServerArgs =
        [
            $"--etcd-servers=http://127.0.0.1:{etcdPort}",
            "--bind-address=127.0.0.1",
            $"--secure-port={ApiPort}",
            "--insecure-port=0",
            $"--tls-cert-file={Path.Combine(Directory, "serving.crt")}",
            $"--tls-private-key-file={Path.Combine(Directory, "serving.key")}",
            $"--service-account-key-file={Path.Combine(Directory, "sa.pub")}",
            $"--service-account-signing-key-file={Path.Combine(Directory, "sa.key")}",
            "--service-account-issuer=https://localhost",
            $"--token-auth-file={Path.Combine(Directory, "tokens.csv")}",
            "--authorization-mode=RBAC",
            $"--service-cluster-ip-range={_serviceClusterIpRange}",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            // As on clusters that enforce it (OpenShift, for one): setting blockOwnerDeletion on an
            // ownerReference needs update on the owner's finalizers, which the chart must grant.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            $"--audit-policy-file={auditPolicy}",
            $"--audit-log-path={AuditLogPath}",
            "--audit-log-format=json",
            "--audit-log-maxsize=1024",
            $"--enable-priority-and-fairness={(_priorityAndFairness ? "true" : "false")}",
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            // Simulated nodes' kubelets (their log endpoint) listen on 127.0.0.1, their InternalIP; their Hostname does not resolve.
            "--kubelet-preferred-address-types=InternalIP",
        ];
        await StartApiServerAsync(ct).ConfigureAwait(false);

        Start("kube-controller-manager",
            $"--kubeconfig={KubeconfigPath}",
            "--leader-elect=false",
            "--controllers=*,-serviceaccount-token",
            "--port=0",
            "--secure-port=0",
            "--use-service-account-credentials=false",
            "--concurrent-gc-syncs=5");
        Start("kube-scheduler",
            $"--kubeconfig={KubeconfigPath}",
            "--leader-elect=false",
            "--port=0",
            "--secure-port=0");
    }

    /// <summary>Stops the API server and starts it again on the same port and etcd; returns once it is ready.</summary>
    public async Task RestartApiServerAsync(CancellationToken cancellationToken = default)
    {
        if (_apiServer is not null)
        {
            await _apiServer.StopAsync().ConfigureAwait(false);
            _processes.Remove(_apiServer);
        }

        await StartApiServerAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task StartApiServerAsync(CancellationToken ct)
    {
        _apiServer = Start("kube-apiserver", _apiServerArgs);
        using var http = new HttpClient(new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, _, _, _) => true,
        });
        http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        await WaitForAsync(async () =>
        {
            using var response = await http.GetAsync($"{Host}/readyz", ct).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }, _apiServer, TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
    }

    /// <summary>Creates a namespace with a unique name starting with <paramref name="prefix"/>.</summary>
    public async Task<string> CreateNamespaceAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var name = $"{prefix}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant()}";
        using var client = CreateClient();
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = name } },
            cancellationToken: cancellationToken).ConfigureAwait(false);
        return name;
    }

    /// <summary>Applies every CRD in <paramref name="crdDirectory"/> and waits until each is Established.</summary>
    public async Task InstallCrdsAsync(string crdDirectory, CancellationToken cancellationToken = default)
    {
        var kubectl = new Kubectl(KubeconfigPath);
        var apply = await kubectl.RunAsync(["apply", "-o", "name", "-f", crdDirectory], cancellationToken: cancellationToken).ConfigureAwait(false);
        apply.EnsureSuccess();

        // Polled here rather than with `kubectl wait`, which fails outright on a CRD the API server has not yet given
        // any condition (".status.conditions accessor error"), as happens just after a create.
        var names = apply.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line[(line.IndexOf('/', StringComparison.Ordinal) + 1)..]).ToList();
        using var client = CreateClient();
        var deadline = Stopwatch.StartNew();
        foreach (var name in names)
        {
            while (true)
            {
                var crd = await client.ApiextensionsV1.ReadCustomResourceDefinitionAsync(name, cancellationToken: cancellationToken)
                    .ConfigureAwait(false);
                if (crd.Status?.Conditions?.Any(c => c.Type == "Established" && c.Status == "True") == true)
                {
                    break;
                }

                if (deadline.Elapsed > TimeSpan.FromSeconds(60))
                {
                    throw new TimeoutException($"CRD {name} not Established after 60 s");
                }

                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The last lines of a component's log, for failure messages.</summary>
    public string LogTail(string component, int lines = 40)
    {
        var path = Path.Combine(Directory, $"{component}.log");
        return File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(lines)) : "";
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        for (var i = _processes.Count - 1; i >= 0; i--)
        {
            await _processes[i].StopAsync().ConfigureAwait(false);
        }

        _processes.Clear();
        if (Environment.GetEnvironmentVariable("PILOTLIGHT_KEEP_CONTROL_PLANE") is null)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>The processes running now: etcd, kube-apiserver, kube-controller-manager and kube-scheduler (named by binary).</summary>
    public IReadOnlyList<ManagedProcess> Processes => [.. _processes.Where(p => !p.HasExited)];

    private ManagedProcess Start(string binary, params string[] args)
    {
        var path = Path.Combine(_bin, binary);
        if (!File.Exists(path))
        {
            path = binary;
        }

        var process = ManagedProcess.Start(path, args, Path.Combine(Directory, $"{binary}.log"));
        _processes.Add(process);
        return process;
    }

    private static async Task WaitForAsync(Func<Task<bool>> probe, ManagedProcess process, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException(
                    $"{process.Name} exited with {process.ExitCode}:\n{process.LogTail()}");
            }

            try
            {
                if (await probe().ConfigureAwait(false))
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or SocketException or IOException)
            {
            }

            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"{process.Name} not ready after {timeout}:\n{process.LogTail()}");
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    private async Task WriteCertificatesAsync(CancellationToken ct)
    {
        // Serving certificate for 127.0.0.1/localhost (self-signed, so it is
        // its own CA) and the service-account signing key pair.
        await RunOpenSslAsync(ct, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
            "-keyout", "serving.key", "-out", "serving.crt", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost").ConfigureAwait(false);
        await RunOpenSslAsync(ct, "genrsa", "-out", "sa.key", "2048").ConfigureAwait(false);
        await RunOpenSslAsync(ct, "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub").ConfigureAwait(false);
    }

    private async Task RunOpenSslAsync(CancellationToken ct, params string[] args)
    {
        var result = await ProcessRunner.RunAsync("openssl", args, Directory, cancellationToken: ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"openssl {args[0]} failed: {result.StandardError}");
        }
    }

    private void WriteKubeconfig()
    {
        var ca = Convert.ToBase64String(File.ReadAllBytes(Path.Combine(Directory, "serving.crt")));
        var config = new StringBuilder()
            .AppendLine("apiVersion: v1")
            .AppendLine("kind: Config")
            .AppendLine("clusters:")
            .AppendLine("- name: pilotlight")
            .AppendLine("  cluster:")
            .AppendLine($"    server: {Host}")
            .AppendLine($"    certificate-authority-data: {ca}")
            .AppendLine("users:")
            .AppendLine("- name: admin")
            .AppendLine("  user:")
            .AppendLine($"    token: {AdminToken}")
            .AppendLine("contexts:")
            .AppendLine("- name: pilotlight")
            .AppendLine("  context:")
            .AppendLine("    cluster: pilotlight")
            .AppendLine("    user: admin")
            .AppendLine("current-context: pilotlight");
        File.WriteAllText(KubeconfigPath, config.ToString());
    }

    /// <summary>A port free on loopback right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
