using System.Net.WebSockets;
using System.Runtime.InteropServices;

namespace Pilotlight.Client;

/// <summary>
/// An interactive command in a sandbox, through the gateway's <c>/_sandbox/{namespace}/{name}/exec/ws</c> with a
/// Kubernetes bearer token: standard input goes to the command, its output comes back, and (on a terminal) the
/// local window size follows the remote one (SIGWINCH, else a poll every half second).
/// </summary>
public sealed class SandboxShell(Uri gateway, string token)
{
    /// <summary>The WebSocket address of <paramref name="ns"/>/<paramref name="name"/>'s interactive exec behind <paramref name="gateway"/>.</summary>
    public static Uri ExecSocketUri(Uri gateway, string ns, string name)
    {
        var builder = new UriBuilder(gateway) { Scheme = gateway.Scheme == Uri.UriSchemeHttps ? "wss" : "ws" };
        builder.Path = $"{builder.Path.TrimEnd('/')}/_sandbox/{Uri.EscapeDataString(ns)}/{Uri.EscapeDataString(name)}/exec/ws";
        return builder.Uri;
    }

    /// <summary>Opens the socket; the gateway's refusal (401, 403, 404, 409) becomes a <see cref="PilotlightClientException"/>.</summary>
    public async Task<ClientWebSocket> ConnectAsync(string ns, string name, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        socket.Options.CollectHttpResponseDetails = true;
        try
        {
            await socket.ConnectAsync(ExecSocketUri(gateway, ns, name), cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch (WebSocketException e)
        {
            var status = (int)socket.HttpStatusCode;
            socket.Dispose();
            throw new PilotlightClientException(status switch
            {
                401 => $"the gateway did not accept the token for sandbox {ns}/{name} (401)",
                403 => $"not allowed to exec in sandbox {ns}/{name} (403): you need create on sandboxes/exec",
                404 => $"sandbox {ns}/{name} not found (404)",
                409 => $"sandbox {ns}/{name} is not ready yet (409); try again",
                410 => $"sandbox {ns}/{name} has finished (410)",
                0 => $"cannot reach the gateway at {gateway}: {e.Message}",
                _ => $"the gateway refused the shell ({status}): {e.Message}",
            }, inner: e);
        }
    }

    /// <summary>
    /// Runs <paramref name="command"/> in the sandbox, copying <paramref name="input"/> to it and its output to
    /// <paramref name="output"/> and <paramref name="error"/>, and returns its exit code. With <paramref name="tty"/>
    /// the command gets a terminal sized like the local one, which should be in raw mode (<see cref="LocalTerminal"/>).
    /// </summary>
    public async Task<int> RunAsync(string ns, string name, IReadOnlyList<string> command, bool tty, Stream input, Stream output, Stream error,
        CancellationToken cancellationToken)
    {
        using var socket = await ConnectAsync(ns, name, cancellationToken).ConfigureAwait(false);
        var size = LocalTerminal.Size() ?? (24, 80);
        var env = new Dictionary<string, string>();
        if (tty)
        {
            env["TERM"] = Environment.GetEnvironmentVariable("TERM") is { Length: > 0 } term ? term : "xterm-256color";
        }

        using var sending = new SemaphoreSlim(1, 1);
        async Task SendAsync(byte[] frame, WebSocketMessageType type)
        {
            await sending.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await socket.SendAsync(frame, type, true, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                sending.Release();
            }
        }

        await SendAsync(ExecSocketProtocol.Start(command, tty, size.Rows, size.Cols, env), WebSocketMessageType.Text).ConfigureAwait(false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var resizing = tty ? FollowSizeAsync(size, s => SendAsync(ExecSocketProtocol.Resize(s.Rows, s.Cols), WebSocketMessageType.Text), stop.Token) : Task.CompletedTask;
        _ = Task.Run(() => PumpInputAsync(input, tty, SendAsync, stop.Token), CancellationToken.None);
        try
        {
            while (true)
            {
                var frame = await ExecSocketProtocol.ReceiveAsync(socket, cancellationToken).ConfigureAwait(false)
                    ?? throw new PilotlightClientException($"the connection to sandbox {ns}/{name} closed before the command ended");
                switch (frame.Kind)
                {
                    case ExecSocketEventKind.Data:
                        var target = frame.Stream == ExecSocketProtocol.Stderr ? error : output;
                        await target.WriteAsync(frame.Data, cancellationToken).ConfigureAwait(false);
                        await target.FlushAsync(cancellationToken).ConfigureAwait(false);
                        break;
                    case ExecSocketEventKind.Exit:
                        await CloseAsync(socket).ConfigureAwait(false);
                        return frame.Code;
                    default:
                        throw new PilotlightClientException($"cannot run {string.Join(' ', command)} in sandbox {ns}/{name}: {frame.Message}");
                }
            }
        }
        catch (WebSocketException e)
        {
            throw new PilotlightClientException($"the connection to sandbox {ns}/{name} broke: {e.Message}", inner: e);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await resizing.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private static async Task CloseAsync(ClientWebSocket socket)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
            // The exit code is in; how the socket ends does not matter.
        }
    }

    private static async Task PumpInputAsync(Stream input, bool tty, Func<byte[], WebSocketMessageType, Task> send, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    // On a terminal the remote side gets ^D when the user types it; end of a piped input is passed on.
                    if (!tty)
                    {
                        await send(ExecSocketProtocol.Eof(), WebSocketMessageType.Text).ConfigureAwait(false);
                    }

                    return;
                }

                await send(ExecSocketProtocol.Data(ExecSocketProtocol.Stdin, buffer.AsSpan(0, read)), WebSocketMessageType.Binary).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            // The session is over.
        }
    }

    /// <summary>Sends the local size whenever it changes: on SIGWINCH where there is one, and on a half-second poll as well.</summary>
    private static async Task FollowSizeAsync((int Rows, int Cols) last, Func<(int Rows, int Cols), Task> send, CancellationToken cancellationToken)
    {
        using var changed = new SemaphoreSlim(0);
        using var winch = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGWINCH, context =>
        {
            context.Cancel = true;
            changed.Release();
        });
        try
        {
            while (true)
            {
                await changed.WaitAsync(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
                if (LocalTerminal.Size() is { } size && size != last)
                {
                    last = size;
                    await send(size).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // The session is over.
        }
    }
}
