using System.Net;

namespace Pilotlight.Tests.Testing;

/// <summary>The simulated kubelet's /containerLogs endpoint, over HTTPS as the API server calls it.</summary>
public class ContainerLogServerTests
{
    private string _dir = "";
    private HttpClient _http = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("containerlogs-").FullName;
        _http = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        }) { Timeout = TimeSpan.FromSeconds(30) };
    }

    [TearDown]
    public void TearDown()
    {
        _http.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static string Cri(DateTime time, string text) => $"{time:yyyy-MM-ddTHH:mm:ss.fffffffZ} stdout F {text}\n";

    [Test]
    public async Task Serves_lines_filtered_by_since_with_or_without_timestamps()
    {
        var log = Path.Combine(_dir, "c.log");
        var now = DateTime.UtcNow;
        await File.WriteAllTextAsync(log, Cri(now.AddMinutes(-10), "old") + Cri(now.AddSeconds(-1), "new one") + Cri(now, "new two"));
        await using var server = await ContainerLogServer.StartAsync((ns, pod, c) => ns == "ns" && pod == "p" ? new ContainerLogSource(log, () => false) : null);
        var url = $"https://127.0.0.1:{server.Port}/containerLogs/ns/p/function";

        Assert.That(await _http.GetStringAsync(url), Is.EqualTo("old\nnew one\nnew two\n"));
        Assert.That(await _http.GetStringAsync($"{url}?sinceSeconds=60"), Is.EqualTo("new one\nnew two\n"));
        Assert.That(await _http.GetStringAsync($"{url}?sinceTime={Uri.EscapeDataString(now.AddSeconds(-0.5).ToString("O"))}"), Is.EqualTo("new two\n"));
        Assert.That(await _http.GetStringAsync($"{url}?tailLines=1"), Is.EqualTo("new two\n"));
        Assert.That(await _http.GetStringAsync($"{url}?timestamps=true&tailLines=1"), Is.EqualTo($"{now:yyyy-MM-ddTHH:mm:ss.fffffff}Z new two\n"));
        using var missing = await _http.GetAsync($"https://127.0.0.1:{server.Port}/containerLogs/ns/nope/function");
        Assert.That(missing.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_follow_streams_new_lines_until_the_container_stops()
    {
        var log = Path.Combine(_dir, "c.log");
        await File.WriteAllTextAsync(log, Cri(DateTime.UtcNow, "first"));
        var running = true;
        await using var server = await ContainerLogServer.StartAsync((_, _, _) => new ContainerLogSource(log, () => Volatile.Read(ref running)));

        using var response = await _http.GetAsync($"https://127.0.0.1:{server.Port}/containerLogs/ns/p/c?follow=true", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.That(await reader.ReadLineAsync(), Is.EqualTo("first"));

        await File.AppendAllTextAsync(log, Cri(DateTime.UtcNow, "second"));
        Assert.That(await reader.ReadLineAsync(), Is.EqualTo("second"));

        Volatile.Write(ref running, false);
        Assert.That(await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)), Is.Null, "the stream ends with the container");
    }

    [Test]
    public async Task A_process_started_with_a_container_log_writes_it_in_cri_format()
    {
        var container = Path.Combine(_dir, "containers", "x.log");
        var process = ManagedProcess.Start("/bin/sh", ["-c", "echo out; echo err >&2"], Path.Combine(_dir, "plain.log"), null, container);
        await Eventually(() => process.HasExited && File.Exists(container) && File.ReadAllLines(container).Length == 2);

        var lines = File.ReadAllLines(container).Select(l => l.Split(' ', 4)).ToList();
        Assert.That(lines.Select(l => (l[1], l[2], l[3])), Is.EquivalentTo(new[] { ("stdout", "F", "out"), ("stderr", "F", "err") }));
        Assert.That(lines.All(l => DateTime.TryParse(l[0], out _)));
        Assert.That(process.LogTail(), Does.Contain("out").And.Contain("err"), "the plain log too");
        await process.StopAsync();
    }

    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "timed out");
            await Task.Delay(50);
        }
    }
}
