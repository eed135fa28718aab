namespace Pilotlight.Tests.Integration;

/// <summary>The generated CRDs on the real API server: valid objects are accepted, invalid ones rejected naming the field.</summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class AdmissionTests
{
    private Kubectl _kubectl = null!;
    private string _ns = "";

    private const string ValidFunction = """
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: NAME
        spec:
          image: ghcr.io/example/llm:1.0
          gpu:
            type: H100
            count: 1
            fallbacks: [A100-80GB]
          scaling:
            minReplicas: 0
            maxReplicas: 4
            scaledownWindow: 90s
          timeout: 5m
        """;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        var plane = await SharedControlPlane.GetAsync();
        _kubectl = new Kubectl(plane.KubeconfigPath);
        _ns = await plane.CreateNamespaceAsync("admission");
    }

    [Test]
    public async Task A_valid_function_is_accepted_and_defaulted()
    {
        var apply = await _kubectl.ApplyAsync(ValidFunction.Replace("NAME", "valid"), _ns);
        apply.EnsureSuccess();

        var get = await _kubectl.RunAsync(["get", "gfn", "valid", "-n", _ns, "-o", "jsonpath={.spec.port} {.spec.healthPath} {.spec.scaling.maxConcurrency} {.spec.startupTimeout}"]);
        Assert.That(get.EnsureSuccess().StandardOutput, Is.EqualTo("8080 /healthz 1 5m"));
    }

    [Test]
    public async Task Every_sample_applies_cleanly()
    {
        var samples = Directory.GetFiles(Path.Combine(RepositoryRoot.Path, "samples"), "*.yaml", SearchOption.AllDirectories);
        Assert.That(samples, Is.Not.Empty);
        foreach (var sample in samples)
        {
            var apply = await _kubectl.RunAsync(["apply", "-n", _ns, "-f", sample]);
            Assert.That(apply.ExitCode, Is.Zero, $"{Path.GetFileName(sample)}: {apply.StandardError}");
        }
    }

    [Test]
    public async Task A_valid_sandbox_is_accepted()
    {
        var apply = await _kubectl.ApplyAsync("""
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: scratch
            spec:
              image: python:3.12-slim
              command: [python, -c, "print(1)"]
              timeout: 10m
              network:
                allowCidrs: [10.0.0.0/8]
            """, _ns);
        apply.EnsureSuccess();
        var get = await _kubectl.RunAsync(["get", "sbx", "scratch", "-n", _ns, "-o", "jsonpath={.spec.expiryPolicy}"]);
        Assert.That(get.EnsureSuccess().StandardOutput, Is.EqualTo("Retain"), "the sandbox object outlives its pod by default");
    }

    [TestCase("image: ghcr.io/example/llm:1.0", "image: \"\"", "spec.image", TestName = "Empty image")]
    [TestCase("count: 1", "count: 9", "spec.gpu.count", TestName = "gpu.count 9")]
    [TestCase("type: H100", "type: H100 PCIe", "spec.gpu.type", TestName = "GPU type that is no label value")]
    [TestCase("fallbacks: [A100-80GB]", "fallbacks: [a100/80]", "spec.gpu.fallbacks", TestName = "Fallback type that is no label value")]
    [TestCase("scaledownWindow: 90s", "scaledownWindow: 5 minutes", "spec.scaling.scaledownWindow", TestName = "Bad duration")]
    [TestCase("timeout: 5m", "timeout: 5", "spec.timeout", TestName = "Duration without unit")]
    [TestCase("minReplicas: 0", "minReplicas: -1", "spec.scaling.minReplicas", TestName = "Negative replicas")]
    [TestCase("timeout: 5m", "timeout: 5m\n  port: 70000", "spec.port", TestName = "Port out of range")]
    [TestCase("    type: H100\n", "", "spec.gpu.type", TestName = "Missing GPU type")]
    public async Task An_invalid_function_is_rejected_naming_the_field(string from, string to, string field)
    {
        var yaml = ValidFunction.Replace("NAME", "invalid").Replace(from, to);
        Assert.That(yaml, Is.Not.EqualTo(ValidFunction.Replace("NAME", "invalid")), "the case must change the manifest");

        var apply = await _kubectl.ApplyAsync(yaml, _ns);

        Assert.That(apply.ExitCode, Is.Not.Zero, apply.StandardOutput);
        Assert.That(apply.StandardError, Does.Contain(field));
        var get = await _kubectl.RunAsync(["get", "gfn", "invalid", "-n", _ns]);
        Assert.That(get.ExitCode, Is.Not.Zero, "nothing was stored");
    }

    [TestCase("timeout: 10m", "timeout: forever", "spec.timeout", TestName = "Sandbox bad duration")]
    [TestCase("allowCidrs: [10.0.0.0/8]", "allowCidrs: [not-a-cidr]", "spec.network.allowCidrs", TestName = "Sandbox bad CIDR")]
    [TestCase("image: python:3.12-slim", "image: \"\"", "spec.image", TestName = "Sandbox empty image")]
    public async Task An_invalid_sandbox_is_rejected_naming_the_field(string from, string to, string field)
    {
        const string valid = """
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: bad
            spec:
              image: python:3.12-slim
              timeout: 10m
              network:
                allowCidrs: [10.0.0.0/8]
            """;
        var apply = await _kubectl.ApplyAsync(valid.Replace(from, to), _ns);
        Assert.That(apply.ExitCode, Is.Not.Zero, apply.StandardOutput);
        Assert.That(apply.StandardError, Does.Contain(field));
    }
}
