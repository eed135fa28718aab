using Pilotlight.Nvml;
using System.Collections;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.RuntimeShim;

namespace Pilotlight.Tests.RuntimeShim;

public sealed class RuntimeShimTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Test]
    public async Task ForwardsMethodPathQueryHeadersAndBody()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        string? seen = null;
        upstream.Handler = async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            seen = $"{context.Request.Method} {context.Request.Path}{context.Request.QueryString} " +
                   $"x-test={context.Request.Headers["X-Test"]} ct={context.Request.ContentType} body={body} " +
                   $"xff={context.Request.Headers["X-Forwarded-For"]}";
            context.Response.StatusCode = StatusCodes.Status201Created;
            context.Response.Headers["X-Reply"] = "yes";
            await context.Response.WriteAsync("made it");
        };
        await using var shim = await Shim.StartAsync(upstream);

        using var request = new HttpRequestMessage(HttpMethod.Put, "/v1/things/a%20b?x=1&y=two")
        {
            Content = new StringContent("payload", Encoding.UTF8, "text/plain"),
        };
        request.Headers.Add("X-Test", "abc");
        request.Headers.Connection.Add("X-Secret");
        request.Headers.Add("X-Secret", "connection-scoped");
        using var response = await shim.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created));
        Assert.That(response.Headers.GetValues("X-Reply"), Is.EqualTo(new[] { "yes" }));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("made it"));
        Assert.That(seen, Is.EqualTo("PUT /v1/things/a%20b?x=1&y=two x-test=abc ct=text/plain; charset=utf-8 body=payload xff=127.0.0.1"));
        Assert.That((await shim.StatsAsync()).Served, Is.EqualTo(1));
    }

    [Test]
    public async Task StreamsTheResponseBeforeTheUpstreamFinishes()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var finish = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Handler = async context =>
        {
            await context.Response.WriteAsync("first;");
            await context.Response.Body.FlushAsync();
            await finish.Task;
            await context.Response.WriteAsync("second");
        };
        await using var shim = await Shim.StartAsync(upstream);

        using var response = await shim.Client.GetAsync("/stream", HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        var read = await body.ReadAsync(buffer).AsTask().WaitAsync(Patience);
        Assert.That(Encoding.UTF8.GetString(buffer, 0, read), Is.EqualTo("first;"));

        finish.SetResult();
        using var reader = new StreamReader(body);
        Assert.That(await reader.ReadToEndAsync().WaitAsync(Patience), Is.EqualTo("second"));
    }

    [Test]
    public async Task AnHttp2RequestGoesToTheUpstreamOverH2cAndItsTrailersComeBack()
    {
        // An upstream that speaks only HTTP/2 over cleartext, as a gRPC server may.
        await using var upstream = await FakeUpstream.StartAsync(HttpProtocols.Http2);
        upstream.Handler = async context =>
        {
            context.Response.DeclareTrailer("x-done");
            await context.Response.WriteAsync($"{context.Request.Protocol};");
            await context.Response.Body.FlushAsync();
            context.Response.AppendTrailer("x-done", "yes");
        };
        await using var shim = await Shim.StartAsync(upstream);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/h2") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await shim.Client.SendAsync(request).WaitAsync(Patience);

        Assert.That(response.Version, Is.EqualTo(HttpVersion.Version20), "the shim's port takes h2c");
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("HTTP/2;"));
        Assert.That(response.TrailingHeaders.TryGetValues("x-done", out var done) ? done.Single() : "(none)", Is.EqualTo("yes"));

        // HTTP/1.1 on the same port still works.
        using var plain = await shim.Client.GetAsync("/health-of-h1").WaitAsync(Patience);
        Assert.That(plain.Version, Is.EqualTo(HttpVersion.Version11));
    }

    [Test]
    public async Task AWebSocketUpgradePassesThroughAndCountsAsInFlightUntilItCloses()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Handler = async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[1024];
            var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            await socket.SendAsync(buffer.AsMemory(0, received.Count), WebSocketMessageType.Text, true, CancellationToken.None);
            received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        };
        await using var shim = await Shim.StartAsync(upstream);

        using var client = new ClientWebSocket();
        var url = new Uri(new Uri(shim.Client.BaseAddress!.ToString().Replace("http://", "ws://", StringComparison.Ordinal)), "/ws");
        await client.ConnectAsync(url, CancellationToken.None).WaitAsync(Patience);
        await client.SendAsync(Encoding.UTF8.GetBytes("ping"), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[1024];
        var echo = await client.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(Patience);
        Assert.That(Encoding.UTF8.GetString(buffer, 0, echo.Count), Is.EqualTo("ping"));
        Assert.That((await shim.StatsAsync()).InFlight, Is.EqualTo(1), "an open WebSocket holds its slot");

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None).WaitAsync(Patience);
        await WaitUntilAsync(async () => (await shim.StatsAsync()).InFlight == 0);
    }

    [Test]
    public async Task ReadyFollowsTheUpstreamHealthCheck()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.HealthStatus = StatusCodes.Status503ServiceUnavailable;
        await using var shim = await Shim.StartAsync(upstream);

        var (status, text) = await shim.GetTextAsync("/ready");
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(text, Does.Contain("upstream /healthz: HTTP 503"));

        upstream.HealthStatus = StatusCodes.Status200OK;
        (status, text) = await shim.GetTextAsync("/ready");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(text.Trim(), Is.EqualTo("ready"));
    }

    [Test]
    public async Task UnreachableUpstreamIsNotReadyAndGets502()
    {
        var closed = new Uri($"http://127.0.0.1:{ControlPlane.FreePort()}");
        await using var shim = await Shim.StartAsync(closed);

        var (status, text) = await shim.GetTextAsync("/ready");
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(text, Does.Contain("upstream /healthz: connection refused"));

        (status, text) = await shim.GetTextAsync("/predict");
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadGateway));
        Assert.That(text, Does.Contain("connection refused"));
    }

    [Test]
    public async Task RealGpusAreCheckedThroughNvml()
    {
        var nvml = NvmlLibrary.Probe();
        if (nvml.Available && nvml.DeviceCount >= 1)
        {
            Assert.Ignore($"this machine has {nvml.DeviceCount} GPU(s); the test wants one without an NVIDIA driver");
        }

        await using var upstream = await FakeUpstream.StartAsync();
        await using var shim = await Shim.StartAsync(upstream, o => o with { GpuCount = 1 });

        var (status, text) = await shim.GetTextAsync("/ready");
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(text, Does.Contain("NVML"));
        Assert.That(text, Does.Contain("1 GPU(s)").Or.Contain("1 requested"));
    }

    [Test]
    public async Task GpusAreReadFromTheFunctionContainersReportWhenOneIsNamed()
    {
        var dir = Directory.CreateTempSubdirectory("pilotlight-shim-").FullName;
        try
        {
            var report = Path.Combine(dir, "gpus.json");
            await using var upstream = await FakeUpstream.StartAsync();
            await using var shim = await Shim.StartAsync(upstream, o => o with { GpuCount = 2, GpuReportPath = report });

            var (status, text) = await shim.GetTextAsync("/ready");
            Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(text, Does.Contain("no fresh GPU report"));

            GpuReports.Write(report, new GpuReport { At = DateTimeOffset.UtcNow, Available = true, Gpus = [new GpuReading { Uuid = "GPU-a" }] });
            (status, text) = await shim.GetTextAsync("/ready");
            Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(text, Does.Contain("sees 1 GPU(s), 2 requested"));

            GpuReports.Write(report, new GpuReport
            {
                At = DateTimeOffset.UtcNow, Available = true, Gpus = [new GpuReading { Uuid = "GPU-a" }, new GpuReading { Uuid = "GPU-b" }],
            });
            (status, _) = await shim.GetTextAsync("/ready");
            Assert.That(status, Is.EqualTo(HttpStatusCode.OK));

            GpuReports.Write(report, new GpuReport { At = DateTimeOffset.UtcNow.AddMinutes(-1), Available = true, Gpus = [new GpuReading(), new GpuReading()] });
            (status, text) = await shim.GetTextAsync("/ready");
            Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable), "a stale report is no report");
            Assert.That(text, Does.Contain("no fresh GPU report"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task SimulatedGpusAreReady()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        await using var shim = await Shim.StartAsync(upstream, o => o with { GpuCount = 4, GpuSimulate = true });

        var (status, _) = await shim.GetTextAsync("/ready");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task ConcurrencyIsLimitedAndTheQueueIsBounded()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        upstream.Handler = async context =>
        {
            Interlocked.Increment(ref arrived);
            await release.Task;
            await context.Response.WriteAsync("done");
        };
        await using var shim = await Shim.StartAsync(upstream, o => o with { MaxConcurrency = 1, QueueLength = 1 });

        var first = shim.Client.GetAsync("/work/1");
        await WaitUntilAsync(() => Volatile.Read(ref arrived) == 1);
        var second = shim.Client.GetAsync("/work/2");
        await WaitUntilAsync(async () => (await shim.StatsAsync()).Queued == 1);

        using (var third = await shim.Client.GetAsync("/work/3"))
        {
            Assert.That(third.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(third.Headers.GetValues("Retry-After"), Is.EqualTo(new[] { "1" }));
        }

        var stats = await shim.StatsAsync();
        Assert.That(stats.InFlight, Is.EqualTo(1));
        Assert.That(stats.Queued, Is.EqualTo(1));
        Assert.That(stats.Rejected, Is.EqualTo(1));
        Assert.That(stats.MaxConcurrency, Is.EqualTo(1));
        Assert.That(Volatile.Read(ref arrived), Is.EqualTo(1), "the queued request must not reach the upstream yet");

        release.SetResult();
        using var one = await first.WaitAsync(Patience);
        using var two = await second.WaitAsync(Patience);
        Assert.That(one.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(two.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await WaitUntilAsync(async () => (await shim.StatsAsync()) is { Served: 2, InFlight: 0, Queued: 0 });
    }

    [Test]
    public async Task RequestTimeoutAnswers504()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var upstreamCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                upstreamCancelled.TrySetResult();
            }
        };
        var time = new FakeTimeProvider();
        await using var shim = await Shim.StartAsync(upstream, o => o with { RequestTimeout = TimeSpan.FromSeconds(30) }, time);

        var pending = shim.Client.GetAsync("/slow");
        await arrived.Task.WaitAsync(Patience);
        time.Advance(TimeSpan.FromSeconds(30));

        using var response = await pending.WaitAsync(Patience);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("30s"));
        await upstreamCancelled.Task.WaitAsync(Patience);
        await WaitUntilAsync(async () => (await shim.StatsAsync()).InFlight == 0);
    }

    [Test]
    public async Task QueuedRequestsTimeOutAndCancelledOnesLeaveTheQueue()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = HangUntilAborted(upstream);
        var time = new FakeTimeProvider();
        await using var shim = await Shim.StartAsync(upstream, o => o with { MaxConcurrency = 1, QueueLength = 2, RequestTimeout = TimeSpan.FromSeconds(10) }, time);

        var held = shim.Client.GetAsync("/held");
        await arrived.Task.WaitAsync(Patience);

        using var giveUp = new CancellationTokenSource();
        var abandoned = shim.Client.GetAsync("/abandoned", giveUp.Token);
        await WaitUntilAsync(async () => (await shim.StatsAsync()).Queued == 1);
        await giveUp.CancelAsync();
        Assert.That(async () => await abandoned, Throws.InstanceOf<OperationCanceledException>());
        await WaitUntilAsync(async () => (await shim.StatsAsync()).Queued == 0);

        var queued = shim.Client.GetAsync("/queued");
        await WaitUntilAsync(async () => (await shim.StatsAsync()).Queued == 1);
        time.Advance(TimeSpan.FromSeconds(10));

        using var timedOut = await queued.WaitAsync(Patience);
        Assert.That(timedOut.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        Assert.That(await timedOut.Content.ReadAsStringAsync(), Does.Contain("free slot"));
        using var heldResponse = await held.WaitAsync(Patience);
        Assert.That(heldResponse.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        await WaitUntilAsync(async () => (await shim.StatsAsync()) is { InFlight: 0, Queued: 0 });
    }

    [Test]
    public async Task DrainingFailsReadinessAndNewRequestsButFinishesInFlightOnes()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("finished");
        };
        await using var shim = await Shim.StartAsync(upstream, o => o with { MaxConcurrency = 2 });
        var runtime = shim.App.Services.GetRequiredService<ShimRuntime>();

        var inFlight = shim.Client.GetAsync("/long");
        await arrived.Task.WaitAsync(Patience);

        var drained = runtime.DrainAsync();
        Assert.That(runtime.IsDraining, Is.True);

        var (status, text) = await shim.GetTextAsync("/ready");
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(text, Does.Contain("draining"));

        using (var rejected = await shim.Client.GetAsync("/new"))
        {
            Assert.That(rejected.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(rejected.Headers.GetValues("Retry-After"), Is.EqualTo(new[] { "1" }));
        }

        Assert.That((await shim.StatsAsync()).Draining, Is.True);
        Assert.That(drained.IsCompleted, Is.False, "drain must wait for the in-flight request");

        release.SetResult();
        using var response = await inFlight.WaitAsync(Patience);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("finished"));
        Assert.That(await drained.WaitAsync(Patience), Is.True);
    }

    [Test]
    public async Task ThePreStopHookWaitsForTheRequestsInFlightAndNewOnesAreRefused()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        string? upstreamSaw = null;
        upstream.Handler = async context =>
        {
            if (context.Request.Path != "/long")
            {
                upstreamSaw = context.Request.Path;
                await context.Response.WriteAsync("upstream");
                return;
            }

            arrived.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("finished");
        };
        var adminPort = FreePort();
        await using var shim = await Shim.StartAsync(upstream, o => o with { MaxConcurrency = 2, AdminPort = adminPort });
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}"), Timeout = TimeSpan.FromSeconds(30) };

        // The invocation port forwards the path like any other: no request through the gateway can drain a pod.
        using (var forwarded = await shim.Client.GetAsync("/wait-for-drain"))
        {
            Assert.That(await forwarded.Content.ReadAsStringAsync(), Is.EqualTo("upstream"));
            Assert.That(upstreamSaw, Is.EqualTo("/wait-for-drain"));
        }

        using (var other = await admin.GetAsync("/stats"))
        {
            Assert.That(other.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "the admin port serves the preStop hook only");
        }

        var inFlight = shim.Client.GetAsync("/long");
        await arrived.Task.WaitAsync(Patience);
        var preStop = admin.GetAsync("/wait-for-drain");
        await WaitUntilAsync(async () => (await shim.StatsAsync()).Draining);

        var (readyStatus, readyText) = await shim.GetTextAsync("/ready");
        Assert.That((readyStatus, readyText.Trim()), Is.EqualTo((HttpStatusCode.ServiceUnavailable, "draining")), "readiness fails at once");
        using (var refused = await shim.Client.GetAsync("/new"))
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(refused.Headers.GetValues("X-Pilotlight-Refused"), Is.EqualTo(new[] { "draining" }), "the gateway retries it on another pod");
        }

        Assert.That(preStop.IsCompleted, Is.False, "the hook answers only once the request in flight has finished");

        release.SetResult();
        using var response = await inFlight.WaitAsync(Patience);
        Assert.That((response.StatusCode, await response.Content.ReadAsStringAsync()), Is.EqualTo((HttpStatusCode.OK, "finished")));
        using var hook = await preStop.WaitAsync(Patience);
        Assert.That((hook.StatusCode, (await hook.Content.ReadAsStringAsync()).Trim()), Is.EqualTo((HttpStatusCode.OK, "drained")));
    }

    [Test]
    public async Task LivenessIsAnsweredByTheShimAliveWhileBusyAndFromTheHealthPathWhenIdle()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Handler = async context =>
        {
            // A single-threaded model server: while it computes, its health path does not answer 2xx.
            upstream.HealthStatus = StatusCodes.Status503ServiceUnavailable;
            arrived.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("finished");
        };
        var adminPort = FreePort();
        await using var shim = await Shim.StartAsync(upstream, o => o with { AdminPort = adminPort });
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}"), Timeout = TimeSpan.FromSeconds(30) };

        using (var idle = await admin.GetAsync("/live"))
        {
            Assert.That(idle.StatusCode, Is.EqualTo(HttpStatusCode.OK), "idle and its health path answers");
        }

        var inFlight = shim.Client.GetAsync("/long");
        await arrived.Task.WaitAsync(Patience);
        using (var busy = await admin.GetAsync("/live"))
        {
            Assert.That((busy.StatusCode, (await busy.Content.ReadAsStringAsync()).Trim()), Is.EqualTo((HttpStatusCode.OK, "alive: 1 in flight")),
                "a server mid-inference is alive although its health path fails");
        }

        release.SetResult();
        (await inFlight.WaitAsync(Patience)).Dispose();
        await WaitUntilAsync(async () => (await shim.StatsAsync()).InFlight == 0);
        using var hung = await admin.GetAsync("/live");
        Assert.That(hung.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), "idle and its health path fails: the kubelet restarts it");
    }

    [Test]
    public void TheAdminPortIsOptionalAndNeverTheListenPort()
    {
        var none = ShimOptions.FromEnvironment(new Hashtable { ["PILOTLIGHT_UPSTREAM"] = "http://127.0.0.1:8080" });
        var some = ShimOptions.FromEnvironment(new Hashtable { ["PILOTLIGHT_UPSTREAM"] = "http://127.0.0.1:8080", ["PILOTLIGHT_ADMIN_PORT"] = "8022", ["PILOTLIGHT_DRAIN_SECONDS"] = "600" });
        var same = ShimOptions.FromEnvironment(new Hashtable { ["PILOTLIGHT_UPSTREAM"] = "http://127.0.0.1:8080", ["PILOTLIGHT_ADMIN_PORT"] = "8099" });

        Assert.That(none.Options!.AdminPort, Is.Null);
        Assert.That((some.Options!.AdminPort, some.Options.DrainTimeout), Is.EqualTo(((int?)8022, TimeSpan.FromMinutes(10))));
        Assert.That(same.Error, Does.StartWith("PILOTLIGHT_ADMIN_PORT=8099:"));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Test]
    public async Task DrainGivesUpAfterTheDrainTime()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = HangUntilAborted(upstream);
        var time = new FakeTimeProvider();
        await using var shim = await Shim.StartAsync(upstream, o => o with { DrainTimeout = TimeSpan.FromSeconds(15) }, time);
        var runtime = shim.App.Services.GetRequiredService<ShimRuntime>();

        var stuck = shim.Client.GetAsync("/stuck");
        await arrived.Task.WaitAsync(Patience);
        var drained = runtime.DrainAsync();
        Assert.That(drained.IsCompleted, Is.False);

        time.Advance(TimeSpan.FromSeconds(15));
        Assert.That(await drained.WaitAsync(Patience), Is.False);
        _ = stuck.ContinueWith(t => t.Exception, TaskScheduler.Default);
    }

    [Test]
    public void EnvironmentDefaultsAndDurations()
    {
        var result = ShimOptions.FromEnvironment(new Hashtable
        {
            ["PILOTLIGHT_UPSTREAM"] = "http://127.0.0.1:8080",
            ["PILOTLIGHT_MAX_CONCURRENCY"] = "3",
            ["PILOTLIGHT_REQUEST_TIMEOUT"] = "5m",
        });

        Assert.That(result.Error, Is.Null);
        var options = result.Options!;
        Assert.That(options.ListenPort, Is.EqualTo(8099));
        Assert.That(options.ListenAddress, Is.EqualTo(IPAddress.Any));
        Assert.That(options.HealthPath, Is.EqualTo("/healthz"));
        Assert.That(options.MaxConcurrency, Is.EqualTo(3));
        Assert.That(options.QueueLength, Is.EqualTo(6));
        Assert.That(options.RequestTimeout, Is.EqualTo(TimeSpan.FromMinutes(5)));
        Assert.That(options.GpuCount, Is.Zero);
        Assert.That(options.GpuSimulate, Is.False);
        Assert.That(options.DrainTimeout, Is.EqualTo(TimeSpan.FromSeconds(15)));

        Assert.That(ShimOptions.TryParseDuration("250ms", out var ms) && ms == TimeSpan.FromMilliseconds(250), Is.True);
        Assert.That(ShimOptions.TryParseDuration("1h", out var h) && h == TimeSpan.FromHours(1), Is.True);
        Assert.That(ShimOptions.TryParseDuration("1m30s", out var ms90) && ms90 == TimeSpan.FromSeconds(90), Is.True);
        Assert.That(ShimOptions.TryParseDuration("300s", out var s) && s == TimeSpan.FromSeconds(300), Is.True);
    }

    [TestCase("PILOTLIGHT_LISTEN_PORT", "http")]
    [TestCase("PILOTLIGHT_LISTEN_PORT", "70000")]
    [TestCase("PILOTLIGHT_LISTEN_ADDRESS", "not-an-ip")]
    [TestCase("PILOTLIGHT_UPSTREAM", "127.0.0.1:8080")]
    [TestCase("PILOTLIGHT_HEALTH_PATH", "healthz")]
    [TestCase("PILOTLIGHT_MAX_CONCURRENCY", "0")]
    [TestCase("PILOTLIGHT_MAX_CONCURRENCY", "-1")]
    [TestCase("PILOTLIGHT_REQUEST_TIMEOUT", "soon")]
    [TestCase("PILOTLIGHT_REQUEST_TIMEOUT", "5x")]
    [TestCase("PILOTLIGHT_REQUEST_TIMEOUT", "0s")]
    [TestCase("PILOTLIGHT_GPU_COUNT", "two")]
    [TestCase("PILOTLIGHT_GPU_SIMULATE", "maybe")]
    [TestCase("PILOTLIGHT_QUEUE_LENGTH", "-3")]
    [TestCase("PILOTLIGHT_DRAIN_SECONDS", "1.5")]
    public void InvalidEnvironmentNamesTheVariable(string name, string value)
    {
        var result = ShimOptions.FromEnvironment(new Hashtable
        {
            ["PILOTLIGHT_UPSTREAM"] = "http://127.0.0.1:8080",
            [name] = value,
        });

        Assert.That(result.Options, Is.Null);
        Assert.That(result.Error, Does.StartWith($"{name}={value}:"));
        Assert.That(result.Error, Does.Not.Contain('\n'));
    }

    [Test]
    public async Task TheProgramExitsWithCode2OnInvalidEnvironment()
    {
        var (exitCode, stderr) = await ShimProcess.RunAsync(new() { ["PILOTLIGHT_MAX_CONCURRENCY"] = "lots" });

        Assert.That(exitCode, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("PILOTLIGHT_MAX_CONCURRENCY"));
        Assert.That(stderr, Does.Not.Contain("Exception"));
    }

    [Test]
    public async Task SigtermDrainsThenExitsZero()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            Assert.Ignore("needs POSIX signals");
        }

        await using var upstream = await FakeUpstream.StartAsync();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            await context.Response.WriteAsync("finished");
        };

        var port = ControlPlane.FreePort();
        using var process = ShimProcess.Start(new()
        {
            ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
            ["PILOTLIGHT_LISTEN_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["PILOTLIGHT_UPSTREAM"] = upstream.Address.ToString(),
            ["PILOTLIGHT_DRAIN_SECONDS"] = "30",
        });
        try
        {
            using var client = await ShimProcess.ReadyClientAsync(port);

            var inFlight = client.GetAsync("/long");
            await arrived.Task.WaitAsync(Patience);

            Assert.That(NativeSignals.Kill(process.Id, NativeSignals.SigTerm), Is.Zero);
            await WaitUntilAsync(async () =>
            {
                using var ready = await client.GetAsync("/ready");
                return ready.StatusCode == HttpStatusCode.ServiceUnavailable;
            });
            Assert.That(process.HasExited, Is.False, "the shim must wait for the in-flight request");

            release.SetResult();
            using var response = await inFlight.WaitAsync(Patience);
            Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("finished"));

            await process.WaitForExitAsync().WaitAsync(Patience);
            Assert.That(process.ExitCode, Is.Zero);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    /// <summary>Makes the upstream hold every request until the client goes away; completes when one arrives.</summary>
    private static TaskCompletionSource HangUntilAborted(FakeUpstream upstream)
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        };
        return arrived;
    }

    private static Task WaitUntilAsync(Func<bool> condition) => WaitUntilAsync(() => Task.FromResult(condition()));

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? patience = null)
    {
        var deadline = Stopwatch.StartNew();
        var limit = patience ?? Patience;
        while (!await condition())
        {
            if (deadline.Elapsed > limit)
            {
                Assert.Fail($"condition not met within {limit}");
            }

            await Task.Delay(10);
        }
    }

    private static class NativeSignals
    {
        public const int SigTerm = 15;

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static extern int Kill(int pid, int signal);
    }

    /// <summary>An in-process HTTP server on 127.0.0.1 whose health status and handler a test controls.</summary>
    private sealed class FakeUpstream : IAsyncDisposable
    {
        private WebApplication _app = null!;

        public volatile int HealthStatus = StatusCodes.Status200OK;

        public Func<HttpContext, Task> Handler { get; set; } = context => context.Response.WriteAsync("ok");

        public Uri Address { get; private set; } = null!;

        public static async Task<FakeUpstream> StartAsync(HttpProtocols protocols = HttpProtocols.Http1)
        {
            var upstream = new FakeUpstream();
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = protocols));
            var app = builder.Build();
            app.UseWebSockets();
            app.Run(context => context.Request.Path == "/healthz"
                ? WriteHealth(context, upstream.HealthStatus)
                : upstream.Handler(context));
            await app.StartAsync();
            upstream._app = app;
            upstream.Address = new Uri(app.Urls.Single());
            return upstream;
        }

        private static Task WriteHealth(HttpContext context, int status)
        {
            context.Response.StatusCode = status;
            return context.Response.WriteAsync(status == 200 ? "ok" : "not yet");
        }

        public async ValueTask DisposeAsync()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await _app.StopAsync(cts.Token);
            await _app.DisposeAsync();
        }
    }

    /// <summary>The shim under test, started in-process on 127.0.0.1 and a free port.</summary>
    private sealed class Shim : IAsyncDisposable
    {
        private Shim(WebApplication app, HttpClient client)
        {
            App = app;
            Client = client;
        }

        public WebApplication App { get; }

        public HttpClient Client { get; }

        public static Task<Shim> StartAsync(FakeUpstream upstream, Func<ShimOptions, ShimOptions>? configure = null, TimeProvider? time = null) =>
            StartAsync(upstream.Address, configure, time);

        public static async Task<Shim> StartAsync(Uri upstream, Func<ShimOptions, ShimOptions>? configure = null, TimeProvider? time = null)
        {
            var options = ShimOptions.Default(upstream) with { ListenAddress = IPAddress.Loopback, ListenPort = 0 };
            options = configure?.Invoke(options) ?? options;
            var app = ShimApp.Build(options, [], time);
            await app.StartAsync();
            var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single(u => (options.AdminPort is not { } admin || !u.EndsWith($":{admin}", StringComparison.Ordinal)) && !u.Contains("h2c-handoff", StringComparison.Ordinal))), Timeout = TimeSpan.FromSeconds(30) };
            return new Shim(app, client);
        }

        public async Task<(HttpStatusCode Status, string Text)> GetTextAsync(string path)
        {
            using var response = await Client.GetAsync(path);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        public async Task<ShimStats> StatsAsync() =>
            (await Client.GetFromJsonAsync<ShimStats>("/stats"))!;

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await App.StopAsync(cts.Token);
            await App.DisposeAsync();
        }
    }
}
