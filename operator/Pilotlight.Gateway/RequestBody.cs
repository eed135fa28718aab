using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Pilotlight.Gateway;

/// <summary>
/// A request's body as the attempts send it: read into memory before the first attempt (and so replayable, each
/// attempt sending its own copy) when its declared length is within the replay limit; otherwise streamed once,
/// and sendable again only while none of it has been read. The forwarder reads the body from the request itself,
/// so <see cref="Attach"/> puts the next attempt's copy there.
/// </summary>
internal sealed class RequestBody
{
    private readonly byte[]? _kept;
    private readonly ReadOnceStream? _once;

    private RequestBody(byte[]? kept, ReadOnceStream? once)
    {
        _kept = kept;
        _once = once;
    }

    /// <summary>Another attempt can send the whole body again.</summary>
    public bool CanResend => _once is null || !_once.Touched;

    /// <summary>
    /// Keeps a body of at most <paramref name="replayLimit"/> declared bytes; never a larger one or one of unknown
    /// length. Throws when the client's body ends before its declared length.
    /// </summary>
    public static async Task<RequestBody> ReadAsync(HttpRequest request, long replayLimit, CancellationToken cancellationToken)
    {
        // The server knows (an HTTP/2 request, a gRPC call say, may have a body of no declared length).
        var present = request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody
            ?? (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0);
        if (!present)
        {
            return new RequestBody(null, null);
        }

        if (request.ContentLength is { } length && length <= replayLimit)
        {
            var kept = new byte[length];
            await request.Body.ReadExactlyAsync(kept, cancellationToken).ConfigureAwait(false);
            return new RequestBody(kept, null);
        }

        return new RequestBody(null, new ReadOnceStream(request.Body));
    }

    /// <summary>Makes the request's body the one the next attempt sends: a fresh copy of a kept body, else the stream read once.</summary>
    public void Attach(HttpRequest request)
    {
        if (_kept is not null)
        {
            request.Body = new MemoryStream(_kept, writable: false);
        }
        else if (_once is not null)
        {
            request.Body = _once;
        }
    }

    /// <summary>The request's own stream, noting whether anything read from it; the server owns and closes it.</summary>
    private sealed class ReadOnceStream(Stream inner) : Stream
    {
        private int _touched;

        public bool Touched => Volatile.Read(ref _touched) == 1;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            Volatile.Write(ref _touched, 1);
            return inner.Read(buffer, offset, count);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Volatile.Write(ref _touched, 1);
            return inner.ReadAsync(buffer, cancellationToken);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
