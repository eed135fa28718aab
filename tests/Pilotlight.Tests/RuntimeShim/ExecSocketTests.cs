using System.Net;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Pilotlight.Client;
using Pilotlight.RuntimeShim;
using Pilotlight.RuntimeShim.Sandbox;

namespace Pilotlight.Tests.RuntimeShim;

/// <summary>The sandbox agent's interactive exec, <c>GET /exec/ws</c>, against the agent run in process.</summary>
public sealed class ExecSocketTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [Test]
    public async Task TtyRunsOnAPseudoTerminal()
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["tty"], tty: true));

        var (output, exit) = await session.ReadToExitAsync();
        Assert.That(output, Does.StartWith("/dev/pts/"));
        Assert.That(exit.Code, Is.Zero);
    }

    [Test]
    public async Task SttySizeShowsTheStartSizeThenTheResizedOne()
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["/bin/sh", "-c", "stty size; read x; stty size"], tty: true, rows: 30, cols: 100));

        await session.ReadUntilAsync("30 100");
        await session.SendTextAsync(ExecSocketProtocol.Resize(40, 120));
        await session.SendInputAsync("go\r");
        var (output, exit) = await session.ReadToExitAsync();
        Assert.That(output, Does.Contain("40 120"));
        Assert.That(exit.Code, Is.Zero);
    }

    [Test]
    public async Task CtrlCOnTheTerminalInterruptsTheCommand()
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["/bin/sh", "-c", "echo ready; exec sleep 100"], tty: true));

        await session.ReadUntilAsync("ready");
        await session.SendInputAsync("\u0003");
        var (_, exit) = await session.ReadToExitAsync();
        Assert.That(exit.Code, Is.EqualTo(128 + 2), "SIGINT from the terminal's ^C");
    }

    [TestCase("SIGTERM", 15)]
    [TestCase("SIGINT", 2)]
    [TestCase("SIGKILL", 9)]
    public async Task SignalFramesReachTheCommand(string name, int signal)
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["/bin/sh", "-c", "echo ready; exec sleep 100"], tty: true));

        await session.ReadUntilAsync("ready");
        await session.SendTextAsync(ExecSocketProtocol.Signal(name));
        var (_, exit) = await session.ReadToExitAsync();
        Assert.That(exit.Code, Is.EqualTo(128 + signal));
    }

    [Test]
    public async Task PipesModeSeparatesStdoutAndStderrAndPassesTheExitCode()
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], tty: false));

        var (output, exit) = await session.ReadToExitAsync();
        Assert.That(output, Is.EqualTo("out\n"));
        Assert.That(session.Stderr, Is.EqualTo("err\n"));
        Assert.That(exit.Code, Is.EqualTo(3));
    }

    [Test]
    public async Task PipesModeFeedsStdinUntilEof()
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["cat"], tty: false));

        await session.SendInputAsync("hello\n");
        await session.SendTextAsync(ExecSocketProtocol.Eof());
        var (output, exit) = await session.ReadToExitAsync();
        Assert.That(output, Is.EqualTo("hello\n"));
        Assert.That(exit.Code, Is.Zero);
    }

    [Test]
    public async Task TheExitCodeOfATerminalCommandComesBack()
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(["/bin/sh", "-c", "exit 7"], tty: true));

        var (_, exit) = await session.ReadToExitAsync();
        Assert.That(exit.Code, Is.EqualTo(7));
    }

    [TestCase("{\"type\":\"resize\",\"rows\":3,\"cols\":4}", "first frame must be")]
    [TestCase("not json", "invalid start frame")]
    [TestCase("{\"type\":\"start\",\"command\":[]}", "argv must name a program")]
    [TestCase("{\"type\":\"start\",\"command\":[\"no-such-program-here\"]}", "not found on PATH")]
    [TestCase("{\"type\":\"start\",\"command\":[\"pwd\"],\"cwd\":\"../..\"}", "outside the workspace")]
    public async Task ABadStartFrameGetsAnErrorFrame(string start, string expected)
    {
        await using var agent = await SocketAgent.StartAsync();
        await using var session = await agent.OpenAsync(Encoding.UTF8.GetBytes(start));

        var error = await session.ReadErrorAsync();
        Assert.That(error.Message, Does.Contain(expected).IgnoreCase);
    }

    [Test]
    public async Task TheSameRulesAsExecApply()
    {
        const string canary = "PILOTLIGHT_EXEC_SOCKET_CANARY";
        await using var agent = await SocketAgent.StartAsync();
        Directory.CreateDirectory(Path.Combine(agent.Workspace, "sub"));
        Environment.SetEnvironmentVariable(canary, "secret");
        try
        {
            await using var session = await agent.OpenAsync(ExecSocketProtocol.Start(
                ["/bin/sh", "-c", "echo \"$GREETING\"; pwd; env | grep -c '^PILOTLIGHT_' || true; echo \"marker=${SANDBOX_EXEC_ID:+set}\""],
                tty: false, env: new Dictionary<string, string> { ["GREETING"] = "hi" }, cwd: "sub"));

            var (output, exit) = await session.ReadToExitAsync();
            var lines = output.Split('\n');
            Assert.That(lines[0], Is.EqualTo("hi"));
            Assert.That(lines[1], Does.EndWith("/sub"));
            Assert.That(lines[2], Is.EqualTo("0"), "no PILOTLIGHT_* variable may reach the command");
            Assert.That(lines[3], Is.EqualTo("marker=set"), "the exec marker is set, so a kill finds what the command started");
            Assert.That(exit.Code, Is.Zero);
        }
        finally
        {
            Environment.SetEnvironmentVariable(canary, null);
        }
    }

    [Test]
    public async Task ClosingTheSocketKillsTheCommandAndWhatItStarted()
    {
        await using var agent = await SocketAgent.StartAsync();
        var pidFile = Path.Combine(agent.Workspace, "pid");
        var session = await agent.OpenAsync(ExecSocketProtocol.Start(["/bin/sh", "-c", "sleep 100 & echo $! > pid; echo ready; wait"], tty: true));
        await session.ReadUntilAsync("ready");
        var pid = int.Parse((await File.ReadAllTextAsync(pidFile)).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        await session.DisposeAsync();
        var deadline = DateTime.UtcNow + Patience;
        while (Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.That(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal), Is.False,
            "the background sleep is killed with the exec");
    }

    [Test]
    public async Task APlainGetIsRefused()
    {
        await using var agent = await SocketAgent.StartAsync();
        using var client = new HttpClient { BaseAddress = agent.BaseAddress };
        using var response = await client.GetAsync("/exec/ws");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    /// <summary>The shim in sandbox mode, in process on 127.0.0.1 with a fresh workspace.</summary>
    internal sealed class SocketAgent : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private SocketAgent(WebApplication app, string workspace)
        {
            _app = app;
            Workspace = workspace;
            BaseAddress = new Uri(app.Urls.Single());
        }

        public string Workspace { get; }

        public Uri BaseAddress { get; }

        public static async Task<SocketAgent> StartAsync()
        {
            var workspace = Directory.CreateTempSubdirectory("pilotlight-execws-").FullName;
            var options = ShimOptions.Default(new Uri("http://127.0.0.1:1")) with
            {
                ListenAddress = IPAddress.Loopback,
                ListenPort = 0,
                Sandbox = new SandboxOptions(workspace),
            };
            var app = ShimApp.Build(options, [], null);
            await app.StartAsync();
            return new SocketAgent(app, workspace);
        }

        public async Task<SocketSession> OpenAsync(byte[] start)
        {
            var socket = new ClientWebSocket();
            await socket.ConnectAsync(new Uri($"ws://{BaseAddress.Authority}/exec/ws"), CancellationToken.None);
            await socket.SendAsync(start, WebSocketMessageType.Text, true, CancellationToken.None);
            return new SocketSession(socket);
        }

        public async ValueTask DisposeAsync()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _app.StopAsync(cts.Token);
            await _app.DisposeAsync();
            Directory.Delete(Workspace, recursive: true);
        }
    }

    /// <summary>One open interactive exec: what came back so far, by stream.</summary>
    internal sealed class SocketSession(WebSocket socket) : IAsyncDisposable
    {
        private readonly StringBuilder _stdout = new();
        private readonly StringBuilder _stderr = new();

        public string Stderr => _stderr.ToString();

        public Task SendTextAsync(byte[] frame) => socket.SendAsync(frame, WebSocketMessageType.Text, true, CancellationToken.None);

        public Task SendInputAsync(string text) =>
            socket.SendAsync(ExecSocketProtocol.Data(ExecSocketProtocol.Stdin, Encoding.UTF8.GetBytes(text)), WebSocketMessageType.Binary, true, CancellationToken.None);

        /// <summary>Reads until standard output contains <paramref name="text"/>.</summary>
        public async Task ReadUntilAsync(string text)
        {
            using var timeout = new CancellationTokenSource(Patience);
            while (!_stdout.ToString().Contains(text, StringComparison.Ordinal))
            {
                var frame = await ExecSocketProtocol.ReceiveAsync(socket, timeout.Token);
                Assert.That(frame, Is.Not.Null, $"closed before '{text}' came; got '{_stdout}'");
                Assert.That(frame!.Kind, Is.EqualTo(ExecSocketEventKind.Data), $"ended before '{text}' came: {frame}; got '{_stdout}'");
                Take(frame);
            }
        }

        /// <summary>Reads to the exit frame: standard output (all output on a terminal) and the exit.</summary>
        public async Task<(string Stdout, ExecSocketEvent Exit)> ReadToExitAsync()
        {
            using var timeout = new CancellationTokenSource(Patience);
            while (true)
            {
                var frame = await ExecSocketProtocol.ReceiveAsync(socket, timeout.Token);
                Assert.That(frame, Is.Not.Null, "closed without an exit frame");
                if (frame!.Kind == ExecSocketEventKind.Data)
                {
                    Take(frame);
                    continue;
                }

                Assert.That(frame.Kind, Is.EqualTo(ExecSocketEventKind.Exit), $"error: {frame.Message}");
                var closed = await ExecSocketProtocol.ReceiveAsync(socket, timeout.Token);
                Assert.That(closed, Is.Null, "the exit frame is the last");
                return (_stdout.ToString(), frame);
            }
        }

        public async Task<ExecSocketEvent> ReadErrorAsync()
        {
            using var timeout = new CancellationTokenSource(Patience);
            var frame = await ExecSocketProtocol.ReceiveAsync(socket, timeout.Token);
            Assert.That(frame?.Kind, Is.EqualTo(ExecSocketEventKind.Error));
            return frame!;
        }

        private void Take(ExecSocketEvent frame) =>
            (frame.Stream == ExecSocketProtocol.Stderr ? _stderr : _stdout).Append(Encoding.UTF8.GetString(frame.Data!));

        public ValueTask DisposeAsync()
        {
            socket.Abort();
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
