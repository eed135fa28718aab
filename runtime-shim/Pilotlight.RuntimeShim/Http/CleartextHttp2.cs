using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Pilotlight.Http;

/// <summary>
/// HTTP/1.1 and prior-knowledge HTTP/2 (h2c) on one cleartext port. Kestrel picks a connection's protocol by
/// ALPN, which needs TLS: a cleartext endpoint set to <c>Http1AndHttp2</c> speaks HTTP/1.1 only, and a gRPC
/// client's h2c connection fails. So the port listens as HTTP/1.1 behind a connection middleware that reads the
/// first bytes without consuming them; a connection that opens with the HTTP/2 client preface (RFC 9113 §3.4)
/// is handed, as it is, to a second, HTTP/2-only Kestrel endpoint whose transport is an in-process queue.
/// </summary>
/// <remarks>
/// Shared by the gateway, the runtime shim and the sample model server (linked into each). Everything else
/// about the connection (its addresses, so X-Forwarded-For, its limits, its lifetime) stays Kestrel's.
/// </remarks>
internal sealed class CleartextHttp2 : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    /// <summary>"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": no HTTP/1 request line starts like it.</summary>
    internal static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    private readonly Channel<ConnectionContext> _handedOver = Channel.CreateUnbounded<ConnectionContext>();

    /// <summary>
    /// Registers the in-process transport with <paramref name="services"/>; call once, then
    /// <see cref="Listen"/> for each port that serves both protocols.
    /// </summary>
    public static CleartextHttp2 AddTo(IServiceCollection services)
    {
        var transport = new CleartextHttp2();
        // Appended: Kestrel asks each transport whether it binds an endpoint, so sockets keep serving IP endpoints.
        services.AddSingleton<IConnectionListenerFactory>(transport);
        return transport;
    }

    /// <summary>Listens on <paramref name="endpoint"/> for HTTP/1.1 and h2c; <paramref name="configure"/> applies to both.</summary>
    public void Listen(KestrelServerOptions kestrel, IPEndPoint endpoint, Action<ListenOptions>? configure = null)
    {
        kestrel.Listen(endpoint, h1 =>
        {
            h1.Protocols = HttpProtocols.Http1;
            configure?.Invoke(h1);
            h1.Use(next => async connection =>
            {
                bool http2;
                try
                {
                    http2 = await OpensWithPrefaceAsync(connection.Transport.Input, connection.ConnectionClosed).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return; // Closed before it said anything.
                }

                if (!http2)
                {
                    await next(connection).ConfigureAwait(false);
                    return;
                }

                var handed = new HandedConnection(connection);
                await _handedOver.Writer.WriteAsync(handed, connection.ConnectionClosed).ConfigureAwait(false);
                // The HTTP/2 endpoint owns the connection now; returning would close it under that endpoint.
                await handed.Released.ConfigureAwait(false);
            });
        });

        // Bound second, so the server's first address stays the port itself; this one is listed as h2c-handoff:{port}.
        kestrel.Listen(new HandoffEndPoint(endpoint), h2 =>
        {
            h2.Protocols = HttpProtocols.Http2;
            configure?.Invoke(h2);
        });
    }

    /// <summary>
    /// Whether the bytes waiting on <paramref name="input"/> open with the HTTP/2 preface; reads until that is
    /// decided and leaves every byte unconsumed for whoever reads next.
    /// </summary>
    internal static async ValueTask<bool> OpensWithPrefaceAsync(PipeReader input, CancellationToken cancellationToken)
    {
        var length = Preface.Length;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var seen = (int)Math.Min(buffer.Length, length);
            var head = buffer.Slice(0, seen).ToArray();
            var matches = Preface[..seen].SequenceEqual(head);
            if (!matches || seen == length || result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.Start);
                return matches && seen == length;
            }

            // A prefix of the preface so far: wait for more without consuming anything.
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <inheritdoc/>
    public bool CanBind(EndPoint endpoint) => endpoint is HandoffEndPoint;

    /// <inheritdoc/>
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IConnectionListener>(new HandoffListener(endpoint, _handedOver.Reader));

    /// <summary>Names the HTTP/2 side of a port in Kestrel's logs.</summary>
    private sealed class HandoffEndPoint(IPEndPoint port) : EndPoint
    {
        public override string ToString() => $"h2c-handoff:{port}";
    }

    private sealed class HandoffListener(EndPoint endpoint, ChannelReader<ConnectionContext> handed) : IConnectionListener
    {
        // Kestrel stops a listener by unbinding it and waits for its pending accept to return null.
        private readonly CancellationTokenSource _unbound = new();

        public EndPoint EndPoint { get; } = endpoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
                return await handed.ReadAsync(stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException or ObjectDisposedException)
            {
                return null; // Kestrel reads null as "this listener is done".
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _unbound.Cancel();
            return default;
        }

        public ValueTask DisposeAsync()
        {
            _unbound.Cancel();
            _unbound.Dispose();
            return default;
        }
    }

    /// <summary>
    /// The accepted connection as the HTTP/2 endpoint sees it: the same transport, features and addresses;
    /// its disposal only tells the HTTP/1 side, which owns the socket, that the HTTP/2 side is done.
    /// </summary>
    private sealed class HandedConnection(ConnectionContext inner) : ConnectionContext
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Released => _released.Task;

        public override string ConnectionId
        {
            get => inner.ConnectionId;
            set => inner.ConnectionId = value;
        }

        public override IFeatureCollection Features => inner.Features;

        public override IDictionary<object, object?> Items
        {
            get => inner.Items;
            set => inner.Items = value;
        }

        public override IDuplexPipe Transport
        {
            get => inner.Transport;
            set => inner.Transport = value;
        }

        public override EndPoint? LocalEndPoint
        {
            get => inner.LocalEndPoint;
            set => inner.LocalEndPoint = value;
        }

        public override EndPoint? RemoteEndPoint
        {
            get => inner.RemoteEndPoint;
            set => inner.RemoteEndPoint = value;
        }

        public override CancellationToken ConnectionClosed
        {
            get => inner.ConnectionClosed;
            set => inner.ConnectionClosed = value;
        }

        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);

        public override void Abort() => inner.Abort();

        public override ValueTask DisposeAsync()
        {
            _released.TrySetResult();
            return default;
        }
    }
}
