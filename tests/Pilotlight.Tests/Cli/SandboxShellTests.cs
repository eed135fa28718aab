using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Pilotlight.Tests.RuntimeShim;

namespace Pilotlight.Tests.Cli;

/// <summary>
/// <c>pilotlight shell</c> run on a real pseudo-terminal (util-linux <c>script</c>) against a sandbox agent, behind a
/// stand-in gateway that checks the bearer token and relays the socket (the real gateway's part is in SandboxTests).
/// </summary>
public sealed class SandboxShellTests
{
    private const string Token = "shell-test-token";

    [Test]
    public async Task TheShellGetsATerminalOfTheLocalSizeAndReturnsTheExitCode()
    {
        await using var agent = await ExecSocketTests.SocketAgent.StartAsync();
        await using var gateway = await RelayGateway.StartAsync(agent.BaseAddress);

        var (output, exit) = await RunOnTerminalAsync(gateway.Url, Token, "stty rows 33 cols 111", "-- /bin/sh -c 'tty; stty size; exit 4'");
        Assert.That(output, Does.Contain("/dev/pts/"), output);
        Assert.That(output, Does.Contain("33 111"), output);
        Assert.That(exit, Is.EqualTo(4), output);
    }

    [Test]
    public async Task ARefusedTokenIsAnErrorNotAHang()
    {
        await using var agent = await ExecSocketTests.SocketAgent.StartAsync();
        await using var gateway = await RelayGateway.StartAsync(agent.BaseAddress);

        var (output, exit) = await RunOnTerminalAsync(gateway.Url, "wrong", "true", "-- true");
        Assert.That(output, Does.Contain("did not accept the token"), output);
        Assert.That(exit, Is.EqualTo(1));
    }

    /// <summary>Runs <c>pilotlight shell box ARGS</c> inside <c>script</c>, after <paramref name="setup"/> on that terminal.</summary>
    private static async Task<(string Output, int Exit)> RunOnTerminalAsync(Uri gateway, string token, string setup, string args)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "pilotlight.dll");
        var inner = $"{setup}; dotnet {cli} sandbox shell box --gateway {gateway} --token {token} {args}";
        var start = new ProcessStartInfo("script", ["-qfec", inner, "/dev/null"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (await output + await error, process.ExitCode);
    }

    /// <summary>Accepts <c>/_sandbox/{ns}/{name}/exec/ws</c> with the test token and relays frames to the agent's <c>/exec/ws</c>.</summary>
    private sealed class RelayGateway : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private RelayGateway(WebApplication app) => _app = app;

        public Uri Url => new(_app.Urls.Single());

        public static async Task<RelayGateway> StartAsync(Uri agent)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            app.UseWebSockets();
            app.Map("/_sandbox/{ns}/{name}/exec/ws", async (HttpContext context) =>
            {
                if (context.Request.Headers.Authorization.ToString() != $"Bearer {Token}")
                {
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    return;
                }

                using var client = await context.WebSockets.AcceptWebSocketAsync();
                using var upstream = new ClientWebSocket();
                await upstream.ConnectAsync(new Uri($"ws://{agent.Authority}/exec/ws"), context.RequestAborted);
                await Task.WhenAny(CopyAsync(client, upstream), CopyAsync(upstream, client));
            });
            await app.StartAsync();
            return new RelayGateway(app);
        }

        private static async Task CopyAsync(WebSocket from, WebSocket to)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var result = await from.ReceiveAsync(buffer, CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        await to.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                        return;
                    }

                    await to.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
                // One side went away.
            }
        }

        public async ValueTask DisposeAsync()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _app.StopAsync(cts.Token);
            await _app.DisposeAsync();
        }
    }
}
