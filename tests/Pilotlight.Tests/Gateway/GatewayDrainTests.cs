using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using System.Net;
using k8s;
using Pilotlight.Gateway;
using Pilotlight.Tests.Integration;

namespace Pilotlight.Tests.Gateway;

/// <summary>When a stopping gateway may exit: idle for the quiet period, or at the bound whatever is left.</summary>
public sealed class GatewayDrainTests
{
    private static readonly DateTimeOffset Began = new(2026, 12, 1, 6, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(300);
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(5);

    [TestCase(0, null, 0, false, TestName = "Idle at the start waits out the quiet period (requests still routed here)")]
    [TestCase(5, null, 0, true, TestName = "Idle for the quiet period since it began is over")]
    [TestCase(60, null, 1, false, TestName = "A request in flight keeps it going")]
    [TestCase(60, 57, 0, false, TestName = "A request that just finished restarts the quiet period")]
    [TestCase(60, 50, 0, true, TestName = "Quiet since the last request finished is over")]
    [TestCase(300, null, 3, true, TestName = "The bound ends it with requests in flight")]
    public void IsOver(int secondsSinceStart, int? finishedAtSecond, int active, bool over)
    {
        var now = Began.AddSeconds(secondsSinceStart);
        DateTimeOffset? finished = finishedAtSecond is { } f ? Began.AddSeconds(f) : null;
        Assert.That(GatewayDrain.IsOver(now, Began, finished, active, Bound, Quiet), Is.EqualTo(over));
    }

    [Test]
    public async Task The_drain_endpoint_answers_on_the_admin_port_only_and_takes_the_gateway_out_of_service()
    {
        // No API server behind it: the drain needs none (its informers just keep retrying).
        using var client = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:9" });
        int port = ControlPlane.FreePort(), admin = ControlPlane.FreePort();
        await using var app = GatewayApp.Build(client, $"http://127.0.0.1:{port}",
            new GatewayOptions { AdminPort = admin, DrainQuietPeriod = TimeSpan.FromMilliseconds(300) },
            registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await app.StartAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            using (var refused = await http.GetAsync($"http://127.0.0.1:{port}/wait-for-drain"))
            {
                Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "callers of the gateway port cannot drain it");
            }

            Assert.That(await (await http.GetAsync($"http://127.0.0.1:{port}/readyz")).Content.ReadAsStringAsync(), Does.Not.Contain("draining"));
            using var drained = await http.GetAsync($"http://127.0.0.1:{admin}/wait-for-drain");
            Assert.That(drained.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            using var ready = await http.GetAsync($"http://127.0.0.1:{port}/readyz");
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(await ready.Content.ReadAsStringAsync(), Is.EqualTo("draining"));
            using var stillServing = await http.GetAsync($"http://127.0.0.1:{port}/healthz");
            Assert.That(stillServing.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a drained gateway still answers until it is stopped");
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Test]
    public async Task A_draining_gateway_asks_kept_alive_clients_to_reconnect_elsewhere()
    {
        // kube-proxy balances connections: a client that keeps its connection would keep reaching a stopping gateway
        // (and keep its drain from ever going quiet) after the Service dropped it.
        using var client = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:9" });
        int port = ControlPlane.FreePort(), admin = ControlPlane.FreePort();
        await using var app = GatewayApp.Build(client, $"http://127.0.0.1:{port}",
            new GatewayOptions { AdminPort = admin, DrainQuietPeriod = TimeSpan.FromSeconds(3) },
            registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await app.StartAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            using (var before = await http.GetAsync($"http://127.0.0.1:{port}/team-a/fn/predict"))
            {
                Assert.That(before.Headers.ConnectionClose, Is.Not.True, "kept alive while serving");
            }

            var draining = http.GetAsync($"http://127.0.0.1:{admin}/wait-for-drain");
            await Eventually.HoldsAsync(async () => (await http.GetAsync($"http://127.0.0.1:{port}/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable,
                TimeSpan.FromSeconds(10), "the drain to begin");
            using var during = await http.GetAsync($"http://127.0.0.1:{port}/team-a/fn/predict");
            Assert.That(during.Headers.ConnectionClose, Is.True, "Connection: close while draining");
            GC.KeepAlive(draining);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Test]
    public async Task A_held_request_keeps_the_gateway_draining_and_not_ready_until_it_ends()
    {
        var time = new FakeTimeProvider(Began);
        var drain = new GatewayDrain(Bound, Quiet, time, NullLogger.Instance);
        var request = drain.Track();
        Assert.That(drain.Draining, Is.False);

        var drained = drain.DrainAsync(CancellationToken.None);
        Assert.That(drain.Draining, Is.True);
        for (var i = 0; i < 300; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(200));
            await Task.Yield();
        }

        Assert.That(drained.IsCompleted, Is.False, "a request is still in flight after a minute");
        Assert.That(drain.Active, Is.EqualTo(1));

        request.Dispose();
        request.Dispose();
        Assert.That(drain.Active, Is.EqualTo(0), "disposing twice counts once");
        var done = Task.Run(async () =>
        {
            while (!drained.IsCompleted)
            {
                time.Advance(TimeSpan.FromMilliseconds(200));
                await Task.Delay(5);
            }
        });
        await done.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(time.GetUtcNow() - Began, Is.LessThan(Bound), "over once idle, before the bound");
        Assert.That(time.GetUtcNow() - Began, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(60) + Quiet), "not before a quiet period after the request");
    }
}
