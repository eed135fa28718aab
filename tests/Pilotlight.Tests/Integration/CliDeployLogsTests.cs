using System.CommandLine;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Cli;
using Pilotlight.Contracts;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// `pilotlight deploy` and `pilotlight logs`, run in process against the real control plane with the shared
/// operator and gateway and simulated nodes whose kubelet serves container logs.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class CliDeployLogsTests() : ServingFixture(61, "cli")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [OneTimeSetUp]
    public async Task SetUpNodeAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
        // The scheduler must know the node before the first pod comes, else that pod is Unschedulable for a moment.
        await Eventually.HoldsAsync(async () =>
            (await Client.CoreV1.ListNodeAsync(labelSelector: $"{PoolLabel}={Pool}")).Items.Any(n => n.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true),
            Timeout, "the pool's node Ready");
    }

    /// <summary>Output written from several threads, readable while the command runs.</summary>
    private sealed class Captured : TextWriter
    {
        private readonly StringBuilder _text = new();
        private readonly Lock _gate = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            lock (_gate)
            {
                _text.Append(value);
            }
        }

        public override void Write(string? value)
        {
            lock (_gate)
            {
                _text.Append(value);
            }
        }

        public override void WriteLine(string? value) => Write(value + "\n");

        public string Text
        {
            get
            {
                lock (_gate)
                {
                    return _text.ToString();
                }
            }
        }

        public override string ToString() => Text;
    }

    private (Task<int> Run, Captured Out, Captured Err) Start(string ns, CancellationToken ct, params string[] args)
    {
        var output = new Captured();
        var error = new Captured();
        var run = Pilotlight.Cli.Program.Parse([.. args, "--kubeconfig", Plane.KubeconfigPath, "-n", ns])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, ct);
        return (run, output, error);
    }

    private async Task<(int Code, string Out, string Err)> RunAsync(string ns, params string[] args)
    {
        var (run, output, error) = Start(ns, CancellationToken.None, args);
        var code = await run.WaitAsync(TimeSpan.FromMinutes(3));
        TestContext.Out.WriteLine($"pilotlight {string.Join(' ', args)} -> {code}\n{output.Text}{error.Text}");
        return (code, output.Text, error.Text);
    }

    /// <summary>The demo sample, on the class's pool, with the replica count asked for.</summary>
    private string Sample(string name, int minReplicas, string gpu = "L4")
    {
        var text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "samples", "demo", "echo-l4.yaml"))
            .Replace("name: echo", $"name: {name}", StringComparison.Ordinal)
            .Replace("minReplicas: 0", $"minReplicas: {minReplicas}", StringComparison.Ordinal)
            .Replace("type: L4", $"type: {gpu}", StringComparison.Ordinal);
        Assert.That(text, Does.Contain($"minReplicas: {minReplicas}").And.Contain($"type: {gpu}"));
        var dir = Directory.CreateTempSubdirectory("cli-deploy-").FullName;
        File.WriteAllText(Path.Combine(dir, $"{name}.yaml"), text + $"  nodeSelector:\n    {PoolLabel}: {Pool}\n");
        return dir;
    }

    [Test]
    public async Task Deploy_applies_a_sample_shows_its_progress_and_exits_0_when_ready()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-deploy");

        var (code, output, error) = await RunAsync(ns, "deploy", "-f", Sample("echo", minReplicas: 1), "--timeout", "2m");

        Assert.That(code, Is.EqualTo(0), error);
        Assert.That(output, Does.Contain("gpufunction.pilotlight.dev/echo serverside-applied"));
        Assert.That(output, Does.Contain("gpufunction.pilotlight.dev/echo: starting"), "progress on the way (the sample loads for 3 s)");
        Assert.That(output, Does.Contain("gpufunction.pilotlight.dev/echo is Ready"));
        var pods = await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=echo");
        Assert.That(pods.Items.Count(PodReadiness.IsReady), Is.EqualTo(1));

        // The field manager is the CLI's; applying again changes nothing and is Ready at once.
        var function = await Client.CustomObjects.GetNamespacedCustomObjectAsync<System.Text.Json.JsonElement>("pilotlight.dev", "v1alpha1", ns, "gpufunctions", "echo");
        Assert.That(function.GetProperty("metadata").GetProperty("managedFields").EnumerateArray().Select(m => m.GetProperty("manager").GetString()), Does.Contain("pilotlight-cli"));
        var again = await RunAsync(ns, "deploy", "-f", Sample("echo", minReplicas: 1));
        Assert.That(again.Code, Is.EqualTo(0), again.Err);
    }

    [Test]
    public async Task Deploy_of_a_function_no_node_can_take_exits_non_zero_with_the_scheduler_reason()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-unsched");

        var (code, _, error) = await RunAsync(ns, "deploy", "-f", Sample("big", minReplicas: 1, gpu: "H100"), "--timeout", "90s");

        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(error, Does.Contain("gpufunction.pilotlight.dev/big is Stalled: Unschedulable"));
        Assert.That(error, Does.Contain("hint:"));
    }

    [Test]
    public async Task Deploy_refuses_an_unknown_kind_and_bad_yaml_with_a_hint()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-bad");
        var dir = Directory.CreateTempSubdirectory("cli-bad-").FullName;
        File.WriteAllText(Path.Combine(dir, "typo.yaml"), "apiVersion: pilotlight.dev/v1alpha1\nkind: GpuFunctoin\nmetadata: {name: x}\n");
        File.WriteAllText(Path.Combine(dir, "broken.yaml"), "apiVersion: v1\nkind: [\n");

        var unknown = await RunAsync(ns, "deploy", "-f", Path.Combine(dir, "typo.yaml"));
        var broken = await RunAsync(ns, "deploy", "-f", Path.Combine(dir, "broken.yaml"));

        Assert.That(unknown.Code, Is.EqualTo(1));
        Assert.That(unknown.Err, Does.Contain("Unknown kind GpuFunctoin in pilotlight.dev/v1alpha1").And.Contain("hint:").And.Contain("GpuFunction"));
        Assert.That(broken.Code, Is.EqualTo(1));
        Assert.That(broken.Err, Does.Contain("broken.yaml: not valid YAML").And.Contain("hint:"));
    }

    [Test]
    public async Task Logs_follow_attaches_a_pod_started_after_the_command_began()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-logs");
        var deployed = await RunAsync(ns, "deploy", "-f", Sample("woken", minReplicas: 0));
        Assert.That(deployed.Code, Is.EqualTo(0), deployed.Err);
        Assert.That(deployed.Out, Does.Contain("scaled to zero"));

        using var stop = new CancellationTokenSource();
        var (follow, output, error) = Start(ns, stop.Token, "logs", "woken", "-f");
        await Eventually.HoldsAsync(() => error.Text.Contains("waiting for pods of woken", StringComparison.Ordinal), Timeout, $"logs waiting ({error.Text})");

        // A request wakes the function from zero: its pod starts after the command began.
        using (var response = await Http.PostAsync($"{GatewayUrl}/{ns}/woken/predict", new StringContent("hello")))
        {
            Assert.That(response.IsSuccessStatusCode, Is.True, await response.Content.ReadAsStringAsync());
        }

        var pod = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=woken")).Items.Single(PodReadiness.IsReady).Metadata.Name;
        await Eventually.HoldsAsync(() => output.Text.Contains($"[{pod}] sample-model-server {pod} listening", StringComparison.Ordinal), Timeout,
            $"the new pod's lines, prefixed with its name (out: {output.Text}; err: {error.Text})");
        Assert.That(error.Text, Does.Contain($"+ {pod} (function)"));

        await stop.CancelAsync();
        Assert.That(await follow.WaitAsync(Timeout), Is.EqualTo(0), "Ctrl-C ends a follow cleanly");

        // Without -f: the current logs, then exit; the shim's container on request.
        var current = await RunAsync(ns, "logs", "woken");
        Assert.That(current.Code, Is.EqualTo(0), current.Err);
        Assert.That(current.Out, Does.Contain($"[{pod}] sample-model-server {pod} listening"));
        var shim = await RunAsync(ns, "logs", "woken", "-c", "runtime-shim", "--since", "1h");
        Assert.That(shim.Code, Is.EqualTo(0), shim.Err);
        Assert.That(shim.Out, Does.Contain($"[{pod}]"));
        Assert.That(shim.Out, Does.Not.Contain("sample-model-server"));
    }

    [Test]
    public async Task Logs_of_a_function_that_does_not_exist_is_an_error_with_a_hint()
    {
        var ns = await Plane.CreateNamespaceAsync("cli-nologs");

        var (code, _, error) = await RunAsync(ns, "logs", "nothing");

        Assert.That(code, Is.EqualTo(1));
        Assert.That(error, Does.Contain("No GpuFunction nothing in namespace").And.Contain("hint:"));
    }
}
