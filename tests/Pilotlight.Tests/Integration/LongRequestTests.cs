using System.Net;
using System.Text.Json;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Long requests against short scaledown windows, through the shared operator and gateway and the
/// real shim and sample model server: a request in flight keeps its pod, and the window counts from
/// the moment the last request finished.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class LongRequestTests() : ServingFixture(21, "long", TimeSpan.FromMinutes(3))
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
    }

    private string Manifest(string name, string scaledownWindow) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          env:
            - {"{"}name: LOAD_SECONDS, value: "1"{"}"}
          gpu: {"{"}type: L4{"}"}
          scaling:
            minReplicas: 0
            maxReplicas: 2
            maxConcurrency: 1
            scaledownWindow: {scaledownWindow}
          timeout: 2m
          startupTimeout: 1m
          nodeSelector:
            {PoolLabel}: {Pool}
        """;

    private async Task<string> DeployAsync(string name, string scaledownWindow)
    {
        var ns = await Plane.CreateNamespaceAsync(name);
        (await Kubectl.ApplyAsync(Manifest(name, scaledownWindow), ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.Conditions?.Any(c => c.Type == "Ready") == true,
            Timeout, $"{name} has status");
        return ns;
    }

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    private async Task<bool> AtZeroAsync(string ns, string name) =>
        (await GetAsync(ns, name)).Status?.DesiredReplicas == 0
        && (await Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{FunctionLabels.Function}={name}")).Items
            .All(p => p.Metadata.DeletionTimestamp is not null);

    /// <summary>
    /// Sends one request computing <paramref name="ms"/> ms to a function at zero; once its pod is ready
    /// a watch records scale-downs until the answer. Returns the serving pod.
    /// </summary>
    private async Task<string> ServeOneLongRequestAsync(string ns, string name, int ms, ServingWatch watch)
    {
        var sent = Http.PostAsync($"{GatewayUrl}/{ns}/{name}/predict?ms={ms}", new StringContent("long"));
        await Eventually.HoldsAsync(async () => (await GetAsync(ns, name)).Status?.ReadyReplicas >= 1, Timeout, $"{name} woke");
        watch.Reset();
        using var response = await sent;
        Assert.That(watch.Polls, Is.GreaterThan(10), "the watch looked all along");
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        var pod = JsonDocument.Parse(body).RootElement.GetProperty("pod").GetString()!;
        Assert.That(watch.Deleted, Does.Not.Contain(pod), "the pod serving the request was deleted while it ran");
        Assert.That(watch.MinDesired, Is.GreaterThanOrEqualTo(1), "desired fell to zero while the request ran");
        return pod;
    }

    [Test]
    public async Task A_request_several_times_longer_than_the_scaledown_window_is_answered_and_keeps_its_pod()
    {
        // scaledownWindow 3 s, a 12 s request: four windows long, and the panic hold (the test
        // operator's 6 s stable window) is long over before it ends.
        var ns = await DeployAsync("long", "3s");
        await using var watch = new ServingWatch(Client, ns, "long");
        await ServeOneLongRequestAsync(ns, "long", 12_000, watch);

        // Once it finished, the 3 s window runs and the function goes.
        await Eventually.HoldsAsync(() => AtZeroAsync(ns, "long"), Timeout, "back to zero after the request finished");
    }

    [Test]
    public async Task A_function_with_a_10s_scaledown_window_reaches_zero_within_15s_of_its_last_request_finishing()
    {
        // The request (12 s) outlasts the window (10 s): counted from its arrival, the function would
        // go while it runs; counted from its end, it goes 10 s after the answer.
        var ns = await DeployAsync("window", "10s");
        await using var watch = new ServingWatch(Client, ns, "window");
        await ServeOneLongRequestAsync(ns, "window", 12_000, watch);
        var finished = DateTime.UtcNow;

        await Eventually.HoldsAsync(() => AtZeroAsync(ns, "window"), TimeSpan.FromSeconds(15) - (DateTime.UtcNow - finished),
            "at zero within 15 s of the last request finishing");
        Assert.That((await GetAsync(ns, "window")).Status!.LastRequestTime, Is.Not.Null);
    }
}
