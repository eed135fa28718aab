using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Pilotlight.Cli;
using CliProgram = Pilotlight.Cli.Program;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The `pilotlight` CLI run in process against the real control plane, the shared operator and gateway and
/// simulated nodes: what it prints, what it streams and how it exits.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class CliTests() : ServingFixture(23, "cli")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private Task<(string Namespace, string Name)>? _sandbox;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
        // Sandboxes without GPUs need a node without the GPU taint.
        await Sim.AddNodeAsync($"cli-{Guid.NewGuid():N}"[..12], GpuNodePreset.CpuOnly);
    }

    private sealed record Run(int Exit, string Stdout, string Stderr, byte[] StdoutBytes);

    /// <summary>Runs the CLI with this cluster's kubeconfig and gateway, capturing its output.</summary>
    private async Task<Run> RunAsync(params string[] args)
    {
        using var stdout = new MemoryStream();
        using var stderr = new MemoryStream();
        await using var output = new StreamWriter(stdout, new UTF8Encoding(false)) { AutoFlush = true };
        await using var error = new StreamWriter(stderr, new UTF8Encoding(false)) { AutoFlush = true };
        string[] all = ["--kubeconfig", Plane.KubeconfigPath, "--gateway", GatewayUrl, .. args];
        var exit = await CliProgram.Parse(all).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        await output.FlushAsync();
        await error.FlushAsync();
        return new Run(exit, Encoding.UTF8.GetString(stdout.ToArray()), Encoding.UTF8.GetString(stderr.ToArray()), stdout.ToArray());
    }

    private string FunctionManifest(string name) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          env:
            - {"{"}name: LOAD_SECONDS, value: "1"{"}"}
            - {"{"}name: COMPUTE_MS, value: "10"{"}"}
          gpu: {"{"}type: L4{"}"}
          scaling:
            minReplicas: 0
            maxReplicas: 1
            maxConcurrency: 2
            scaledownWindow: 30s
          timeout: 30s
          startupTimeout: 1m
          nodeSelector:
            {PoolLabel}: {Pool}
        """;

    /// <summary>One sandbox for the exec and copy tests, created through the CLI.</summary>
    private Task<(string Namespace, string Name)> SandboxAsync() => _sandbox ??= CreateSandboxAsync();

    private async Task<(string, string)> CreateSandboxAsync()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-sbx");
        var created = await RunAsync("sandbox", "create", "work", "-n", ns, "--image", "python:3.12-slim", "--timeout", "10m", "--wait", "90s");
        Assert.That(created.Exit, Is.Zero, created.Stderr);
        Assert.That(created.Stdout, Does.Contain($"sandbox {ns}/work ready"));
        return (ns, "work");
    }

    [Test]
    public async Task Invoke_of_a_function_at_zero_returns_its_body_and_get_lists_it_as_json()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-fn");
        (await Kubectl.ApplyAsync(FunctionManifest("echo"), ns)).EnsureSuccess();

        var listed = await Eventually.GetAsync(async () =>
        {
            var run = await RunAsync("get", "functions", "-n", ns, "-o", "json");
            return run.Exit == 0 && JsonNode.Parse(run.Stdout)?["items"] is JsonArray { Count: 1 } items ? items : null;
        }, Timeout, "get -o json lists the function");
        Assert.That(listed[0]?["metadata"]?["name"]?.GetValue<string>(), Is.EqualTo("echo"));

        var invoked = await RunAsync("invoke", $"{ns}/echo", "/predict", "-d", "ping from the cli", "--token", InvokerToken, "-v");
        Assert.That(invoked.Exit, Is.Zero, invoked.Stderr);
        Assert.That(invoked.Stdout, Does.Contain("ping from the cli"), "the function's body on stdout");
        Assert.That(invoked.Stderr, Does.Contain("< HTTP 200"));
        Assert.That(invoked.Stderr, Does.Contain("cold start: true"), "the gateway's cold-start header, shown by -v");

        var table = await RunAsync("get", "functions", "-n", ns);
        Assert.That(table.Exit, Is.Zero, table.Stderr);
        Assert.That(table.Stdout, Does.Contain("echo").And.Contain("ENDPOINT"));
    }

    [Test]
    public async Task Sandbox_exec_streams_stdout_and_stderr_apart_and_exits_with_the_remote_code()
    {
        var (ns, name) = await SandboxAsync();
        var run = await RunAsync("sandbox", "exec", name, "-n", ns, "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3");
        Assert.That((run.Exit, run.Stdout, run.Stderr), Is.EqualTo((3, "out\n", "err\n")));
    }

    [Test]
    public async Task A_403_from_the_gateway_shows_a_hint()
    {
        var (ns, name) = await SandboxAsync();
        // bob has no RoleBinding in the namespace: the gateway's SubjectAccessReview refuses him.
        var run = await RunAsync("sandbox", "exec", name, "-n", ns, "--token", Plane.UserToken("bob"), "--", "true");
        Assert.That(run.Exit, Is.EqualTo(1));
        Assert.That(run.Stderr, Does.Contain("403").And.Contain("bob may not create sandboxes/exec"));
        Assert.That(run.Stderr, Does.Contain("Hint:").And.Contain("RoleBinding"));
    }

    [Test]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Cp_round_trips_a_directory_byte_identical_with_modes_a_symlink_and_an_empty_dir()
    {
        var (ns, name) = await SandboxAsync();
        var source = Directory.CreateTempSubdirectory("cli-cp-src").FullName;
        var back = Path.Combine(Directory.CreateTempSubdirectory("cli-cp-back").FullName, "tree");
        try
        {
            Directory.CreateDirectory(Path.Combine(source, "nested", "deeper"));
            File.WriteAllBytes(Path.Combine(source, "random.bin"), RandomNumberGenerator.GetBytes(300_000));
            File.WriteAllText(Path.Combine(source, "nested", "text.txt"), "line one\r\nline two\n\0 and a NUL");
            File.WriteAllBytes(Path.Combine(source, "nested", "deeper", "empty"), []);
            File.WriteAllText(Path.Combine(source, "run.sh"), "#!/bin/sh\n");
            File.SetUnixFileMode(Path.Combine(source, "run.sh"), (UnixFileMode)0x1E8); // 0750
            File.SetUnixFileMode(Path.Combine(source, "random.bin"), (UnixFileMode)0x180); // 0600
            File.CreateSymbolicLink(Path.Combine(source, "latest"), "nested/text.txt");
            Directory.CreateDirectory(Path.Combine(source, "empty-dir"));

            var up = await RunAsync("sandbox", "cp", source, $"{ns}/{name}:tree");
            Assert.That(up.Exit, Is.Zero, up.Stderr);
            var down = await RunAsync("sandbox", "cp", $"{ns}/{name}:tree", back);
            Assert.That(down.Exit, Is.Zero, down.Stderr);

            string[] Files(string root) => [.. Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f)).Order(StringComparer.Ordinal)];
            Assert.That(Files(back), Is.EqualTo(Files(source)));
            foreach (var file in Files(source))
            {
                Assert.That(File.ReadAllBytes(Path.Combine(back, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(source, file))), file);
                if (new FileInfo(Path.Combine(source, file)).LinkTarget is null)
                {
                    Assert.That(File.GetUnixFileMode(Path.Combine(back, file)), Is.EqualTo(File.GetUnixFileMode(Path.Combine(source, file))), $"{file}'s mode");
                }
            }

            Assert.That(File.GetUnixFileMode(Path.Combine(back, "run.sh")), Is.EqualTo((UnixFileMode)0x1E8));
            Assert.That(new FileInfo(Path.Combine(back, "latest")).LinkTarget, Is.EqualTo("nested/text.txt"), "the link came back as a link");
            Assert.That(Directory.Exists(Path.Combine(back, "empty-dir")), Is.True, "the empty directory came back");
            Assert.That(Directory.EnumerateFileSystemEntries(Path.Combine(back, "empty-dir")), Is.Empty);
        }
        finally
        {
            Directory.Delete(source, recursive: true);
            Directory.Delete(Path.GetDirectoryName(back)!, recursive: true);
        }
    }

    [Test]
    public async Task The_native_binary_from_make_cli_prints_its_version_and_lists_functions()
    {
        var binary = Path.Combine(RepositoryRoot.Path, "bin", "pilotlight");
        if (!File.Exists(binary))
        {
            Assert.Ignore("./bin/pilotlight is not built (make cli)");
        }

        var ns = await Plane.CreateNamespaceAsync("cli-aot");
        (await Kubectl.ApplyAsync(FunctionManifest("native"), ns)).EnsureSuccess();
        (await ProcessRunner.RunAsync(binary, ["version"], null)).EnsureSuccess();
        var listed = await ProcessRunner.RunAsync(binary, ["get", "functions", "-n", ns, "--kubeconfig", Plane.KubeconfigPath, "-o", "json"], null);
        Assert.That(listed.ExitCode, Is.Zero, listed.StandardError);
        Assert.That(JsonNode.Parse(listed.StandardOutput)?["items"]?[0]?["metadata"]?["name"]?.GetValue<string>(), Is.EqualTo("native"));
        var table = (await ProcessRunner.RunAsync(binary, ["get", "functions", "-n", ns, "--kubeconfig", Plane.KubeconfigPath], null)).EnsureSuccess();
        Assert.That(table.StandardOutput, Does.Contain("native").And.Contain("ENDPOINT"));
    }
}
