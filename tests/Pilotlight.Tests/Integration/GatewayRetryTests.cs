using System.Diagnostics;
using System.Globalization;
using System.Net;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Regex = System.Text.RegularExpressions.Regex;
using RegexOptions = System.Text.RegularExpressions.RegexOptions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The request lifecycle at the gateway, end to end on the shared operator and gateway: the hold bounded by
/// startupTimeout and the timeout from dispatch, spec.retries on another pod, the replay limit, and the
/// start header. Pods run the real shim and the sample model server (?failOn=pod makes that pod answer 500).
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class GatewayRetryTests() : ServingFixture(13, "rt")
{
    /// <summary>The gateway's default replay limit (GatewayOptions.DefaultReplayLimit), spelt out so these tests also build against a gateway without it.</summary>
    private const int ReplayLimit = 1024 * 1024;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly List<string> _namespaces = [];

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4.WithGpus(8));
    }

    private string Manifest(string name, int minReplicas = 0, int loadSeconds = 1, string timeout = "30s", string startupTimeout = "1m",
        string retries = "", string prewarm = "") => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata: {name: {{name}}}
        spec:
          image: example/model-server:1
          env:
            - {name: LOAD_SECONDS, value: "{{loadSeconds}}"}
            - {name: COMPUTE_MS, value: "10"}
          gpu: {type: L4}
          scaling: {minReplicas: {{minReplicas}}, maxReplicas: 2, maxConcurrency: 4, scaledownWindow: 30s}
          timeout: {{timeout}}
          startupTimeout: {{startupTimeout}}
          nodeSelector: {{{PoolLabel}}: {{Pool}}}
        {{(retries == "" ? "" : "  retries: " + retries)}}
        {{(prewarm == "" ? "" : "  prewarm: " + prewarm)}}
        """;

    private async Task<string> DeployAsync(string name, string manifest)
    {
        var ns = await Plane.CreateNamespaceAsync(name);
        _namespaces.Add(ns);
        (await Kubectl.ApplyAsync(manifest, ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.Conditions?.Any(c => c.Type == "Ready") == true,
            Timeout, $"{name} has status");
        return ns;
    }

    /// <summary>A function with two ready pods, by name: the gateway breaks ties between idle pods by name order.</summary>
    private async Task<(string Ns, string First, string Second)> DeployTwoPodsAsync(string name, string retries)
    {
        var ns = await DeployAsync(name, Manifest(name, minReplicas: 2, retries: retries));
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.ReadyReplicas == 2, Timeout, "two ready pods");
        var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items
            .Select(p => p.Metadata.Name).Order(StringComparer.Ordinal).ToList();
        Assert.That(pods, Has.Count.EqualTo(2));

        // Both reach the gateway's routes: two concurrent requests land on both pods.
        await Eventually.HoldsAsync(async () =>
        {
            var both = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Http.GetStringAsync($"{GatewayUrl}/{ns}/{name}/predict?ms=300")));
            return pods.All(p => both.Any(b => b.Contains(p, StringComparison.Ordinal)));
        }, Timeout, "the gateway routes to both pods");
        return (ns, pods[0], pods[1]);
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<double> MetricAsync(string metric, string ns, string fn, string label, string value)
    {
        var text = await Http.GetStringAsync($"{GatewayUrl}/metrics");
        var line = Regex.Match(text, $"^{metric}\\{{namespace=\"{Regex.Escape(ns)}\",function=\"{Regex.Escape(fn)}\",{label}=\"{value}\"\\}} (\\S+)$",
            RegexOptions.Multiline);
        return line.Success ? double.Parse(line.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : "(none)";

    [Test]
    public async Task A_model_that_loads_longer_than_the_timeout_is_answered_from_zero()
    {
        // 8 s of model load, timeout 3s: the hold is bounded by startupTimeout (1m) alone; 3 s start at dispatch.
        var ns = await DeployAsync("slowload", Manifest("slowload", loadSeconds: 8, timeout: "3s"));
        var sent = Stopwatch.StartNew();
        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/slowload/predict", new StringContent("wake"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(sent.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(8)), "it waited for the model load");
        Assert.That(Header(response, "X-Pilotlight-Start"), Is.EqualTo("cold"));
        Assert.That(Header(response, "X-Pilotlight-Cold-Start"), Is.EqualTo("true"));

        // The timeout still bounds the run itself, from dispatch.
        using var slow = await Http.PostAsync($"{GatewayUrl}/{ns}/slowload/predict?ms=6000", new StringContent("long"));
        Assert.That(slow.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        // The gateway's bound (from dispatch) and the pod's shim's (from its receipt, a moment later) are the same 3 s;
        // on a loaded machine either may answer first, and both answers name it.
        Assert.That(await slow.Content.ReadAsStringAsync(), Does.Contain("timeout 3s (the bound on each attempt").Or.Contain("upstream did not answer within 3s"));
    }

    [Test]
    public async Task A_failed_attempt_is_retried_on_the_other_pod()
    {
        var (ns, first, second) = await DeployTwoPodsAsync("retry", "{maxRetries: 2, initialDelay: 100ms}");
        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/retry/predict?failOn={first}", new StringContent("again please"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(body, Does.Contain(second).And.Contain("again please"), "the other pod answered, with the whole body");
        Assert.That(Header(response, "X-Pilotlight-Start"), Is.EqualTo("ready"));
        Assert.That(Header(response, "X-Pilotlight-Cold-Start"), Is.EqualTo("false"));
        Assert.That(await MetricAsync("pilotlight_gateway_retries_total", ns, "retry", "reason", "server_error"), Is.EqualTo(1));
    }

    [Test]
    public async Task A_request_that_fails_everywhere_is_retried_max_retries_times_then_answered_with_the_last_5xx()
    {
        // maxRetries 3 over two pods, 200 ms then 400 ms then 800 ms apart.
        var (ns, first, second) = await DeployTwoPodsAsync("failing", "{maxRetries: 3, initialDelay: 200ms, backoffCoefficient: 2, maxDelay: 10s}");
        var sent = Stopwatch.StartNew();
        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/failing/predict?failOn={first},{second}", new StringContent("x"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError), body);
        Assert.That(body, Does.Contain("fails on purpose"), "the user's own answer, not the gateway's");
        Assert.That(sent.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(1400)), "backed off 200 + 400 + 800 ms");
        Assert.That(await MetricAsync("pilotlight_gateway_retries_total", ns, "failing", "reason", "server_error"), Is.EqualTo(3));
        Assert.That(await MetricAsync("pilotlight_gateway_retries_given_up_total", ns, "failing", "reason", "exhausted"), Is.EqualTo(1));
    }

    [Test]
    public async Task A_body_above_the_replay_limit_is_sent_once()
    {
        var (ns, first, _) = await DeployTwoPodsAsync("bigbody", "{maxRetries: 2, initialDelay: 100ms}");
        var big = new ByteArrayContent(new byte[ReplayLimit + 1]);
        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/bigbody/predict?failOn={first}", big);
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError), body);
        Assert.That(body, Does.Contain(first));
        Assert.That(await MetricAsync("pilotlight_gateway_retries_total", ns, "bigbody", "reason", "server_error"), Is.Zero);
        Assert.That(await MetricAsync("pilotlight_gateway_retries_given_up_total", ns, "bigbody", "reason", "body_not_replayable"), Is.EqualTo(1));

        // At the limit it is kept and retried.
        using var fits = await Http.PostAsync($"{GatewayUrl}/{ns}/bigbody/predict?failOn={first}",
            new ByteArrayContent(new byte[ReplayLimit]));
        Assert.That(fits.StatusCode, Is.EqualTo(HttpStatusCode.OK), await fits.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task A_warm_standby_claimed_for_a_request_is_a_warm_start()
    {
        var ns = await DeployAsync("standby", Manifest("standby", prewarm: "{warmReplicas: 1, keepWarmFor: 0s}"));
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, "standby")).Status?.WarmReplicas == 1, Timeout, "one warm pod");

        // Ready in the API for longer than its one-second resolution before the request arrives.
        await Eventually.HoldsAsync(async () =>
        {
            var pods = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=standby")).Items;
            var ready = pods.SingleOrDefault()?.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready" && c.Status == "True")?.LastTransitionTime;
            return ready is { } at && DateTime.UtcNow - at.ToUniversalTime() > TimeSpan.FromSeconds(2);
        }, Timeout, "the warm pod has been ready for two seconds");

        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/standby/predict", new StringContent("hi"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        Assert.That(Header(response, "X-Pilotlight-Start"), Is.EqualTo("warm"));
        Assert.That(Header(response, "X-Pilotlight-Cold-Start"), Is.EqualTo("false"));
        Assert.That(await MetricAsync("pilotlight_gateway_starts_total", ns, "standby", "start", "warm"), Is.EqualTo(1));
    }

    [Test]
    public async Task The_image_gen_samples_retry_policy_retries_a_failed_request_on_another_pod()
    {
        // The sample as shipped (its comment: "a retry policy for the occasional CUDA out-of-memory"), pinned to
        // this fixture's node and kept at two replicas so that there is another pod to retry on.
        var sample = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot.Path, "samples", "functions", "image-gen-l4.yaml"));
        Assert.That(sample, Does.Contain("retries:"));
        // A node of its own: the other tests' functions may still hold the shared node's GPUs.
        var pool = $"{Pool}-img";
        await Sim.AddNodeAsync(pool, GpuNodePreset.L4, new Dictionary<string, string> { [PoolLabel] = pool });
        var manifest = sample
            .Replace("\nspec:\n", $"\nspec:\n  nodeSelector: {{{PoolLabel}: {pool}}}\n", StringComparison.Ordinal)
            .Replace("\n  scaling:\n", "\n  scaling:\n    minReplicas: 2\n", StringComparison.Ordinal);
        var ns = await DeployAsync("image-gen", manifest);
        var pods = await Eventually.GetAsync(async () =>
        {
            var ready = (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}=image-gen")).Items
                .Where(PodReadiness.IsReady).Select(p => p.Metadata.Name).Order(StringComparer.Ordinal).ToList();
            return ready.Count >= 2 ? ready : null;
        }, Timeout, "two ready pods");

        using var response = await Http.PostAsync($"{GatewayUrl}/{ns}/image-gen/generate?failOn={pods[0]}", new StringContent("a lighthouse"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(body, Does.Not.Contain(pods[0]));
        Assert.That(await MetricAsync("pilotlight_gateway_retries_total", ns, "image-gen", "reason", "server_error"), Is.EqualTo(1));
    }
}
