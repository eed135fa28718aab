using System.Buffers.Binary;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.SampleModelServer;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Protocols other than request-then-answer, end to end through the shared gateway, the real shim and the sample
/// model server: server-sent events streamed as they are written, a WebSocket echo, gRPC over h2c with its
/// trailers, and the forwarding headers the gateway sets. The function keeps one warm replica so every test
/// meets a ready pod.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class StreamingProtocolTests() : ServingFixture(37, "proto")
{
    private const string Function = "streams";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private string _ns = "";

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
        _ns = await Plane.CreateNamespaceAsync(Function);
        (await Kubectl.ApplyAsync($$"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata: {name: {{Function}}}
            spec:
              image: example/model-server:1
              env:
                - {name: LOAD_SECONDS, value: "0"}
              gpu: {type: L4}
              scaling: {minReplicas: 1, maxReplicas: 1, maxConcurrency: 8}
              timeout: 1m
              startupTimeout: 1m
              nodeSelector: {{{PoolLabel}}: {{Pool}}}
            """, _ns)).EnsureSuccess();
        await Eventually.HoldsAsync(async () => (await Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(
            Group.Name, Group.Version, _ns, "gpufunctions", Function)).Status?.ReadyReplicas == 1, Timeout, "one ready pod");
        await Eventually.HoldsAsync(async () =>
        {
            using var response = await Http.GetAsync(Url("/headers"));
            return response.StatusCode == HttpStatusCode.OK && response.Headers.TryGetValues("X-Pilotlight-Start", out var start) && start.Single() == "ready";
        }, Timeout, "the gateway routes to the ready pod");
    }

    private string Url(string path) => $"{GatewayUrl}/{_ns}/{Function}{path}";

    [Test]
    public async Task Server_sent_events_reach_the_client_while_the_function_is_still_writing()
    {
        // The server writes event 0, then waits for a release that only this test sends, after it read event 0:
        // a gateway that buffered the answer would never hand event 0 over.
        var hold = Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(HttpMethod.Get, Url($"/events?n=3&hold={hold}"));
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Patience);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/event-stream"));
        using var events = new StreamReader(await response.Content.ReadAsStreamAsync());

        var first = await NextEventAsync(events).WaitAsync(Patience);
        Assert.That(first, Does.EndWith(" 0"));

        using (var release = await Http.PostAsync(Url($"/release/{hold}"), null).WaitAsync(Patience))
        {
            Assert.That(release.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        var rest = new[] { await NextEventAsync(events).WaitAsync(Patience), await NextEventAsync(events).WaitAsync(Patience) };
        Assert.That(rest, Is.EqualTo(new[] { first[..^1] + "1", first[..^1] + "2" }), "the same pod's events, in order");
        Assert.That(await events.ReadToEndAsync().WaitAsync(Patience), Is.Empty, "the stream ends after the last event");
    }

    /// <summary>The data of the next event on an event stream.</summary>
    private static async Task<string> NextEventAsync(StreamReader events)
    {
        string? data = null;
        while (await events.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line["data: ".Length..];
            }
            else if (line.Length == 0 && data is not null)
            {
                return data;
            }
        }

        throw new EndOfStreamException("the event stream ended");
    }

    [Test]
    public async Task A_websocket_echo_works_through_the_gateway_and_the_shim()
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", $"Bearer {InvokerToken}");
        await socket.ConnectAsync(new Uri(Url("/ws").Replace("http://", "ws://", StringComparison.Ordinal)), CancellationToken.None).WaitAsync(Patience);
        Assert.That(socket.State, Is.EqualTo(WebSocketState.Open));

        var big = new byte[200_000];
        Random.Shared.NextBytes(big);
        foreach (var (payload, type) in new[] { (Encoding.UTF8.GetBytes("hello"), WebSocketMessageType.Text), (big, WebSocketMessageType.Binary) })
        {
            await socket.SendAsync(payload, type, endOfMessage: true, CancellationToken.None).WaitAsync(Patience);
            var (echo, echoType) = await ReceiveMessageAsync(socket).WaitAsync(Patience);
            Assert.That(echoType, Is.EqualTo(type));
            Assert.That(echo, Is.EqualTo(payload));
        }

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None).WaitAsync(Patience);
        Assert.That(socket.State, Is.EqualTo(WebSocketState.Closed));
    }

    private static async Task<(byte[] Message, WebSocketMessageType Type)> ReceiveMessageAsync(WebSocket socket)
    {
        using var message = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            message.Write(buffer, 0, received.Count);
            if (received.EndOfMessage)
            {
                return (message.ToArray(), received.MessageType);
            }
        }
    }

    [Test]
    public async Task A_grpc_unary_call_over_http2_works_end_to_end()
    {
        using var channel = GrpcChannel.ForAddress(GatewayUrl, new GrpcChannelOptions { HttpHandler = new FunctionPrefixHandler($"/{_ns}/{Function}", InvokerToken) });
        using var call = channel.CreateCallInvoker().AsyncUnaryCall(SampleEcho.Say, null, new CallOptions(deadline: DateTime.UtcNow.Add(Patience)), "hello");

        var reply = await call.ResponseAsync;
        var headers = await call.ResponseHeadersAsync;
        Assert.That(reply, Does.StartWith(Function).And.EndWith(": hello"));
        Assert.That(call.GetStatus().StatusCode, Is.EqualTo(StatusCode.OK));
        Assert.That(call.GetTrailers().GetValue(SampleEcho.PodTrailer), Is.EqualTo(reply[..reply.IndexOf(':', StringComparison.Ordinal)]),
            "the server's own trailer came through");
        Assert.That(headers.GetValue("x-pilotlight-start"), Is.EqualTo("ready"));
    }

    [Test]
    public async Task Trailers_arrive_and_http2_is_spoken_to_the_function()
    {
        // A gRPC call by hand: one length-prefixed message, the status in the trailers.
        var message = Encoding.UTF8.GetBytes("trailers please");
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        using var request = new HttpRequestMessage(HttpMethod.Post, Url($"/{SampleEcho.Service}/Say"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(frame),
        };
        request.Content.Headers.ContentType = new("application/grpc");
        request.Headers.TryAddWithoutValidation("TE", "trailers");

        using var response = await Http.SendAsync(request).WaitAsync(Patience);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.That(response.Version, Is.EqualTo(HttpVersion.Version20));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Encoding.UTF8.GetString(body, 5, body.Length - 5), Does.EndWith(": trailers please"));
        Assert.That(response.TrailingHeaders.TryGetValues("grpc-status", out var status) ? status.Single() : "(no grpc-status trailer)", Is.EqualTo("0"));
        Assert.That(response.TrailingHeaders.Contains(SampleEcho.PodTrailer), Is.True);

        // The function saw HTTP/2 too (the gateway and the shim both speak h2c upstream for an HTTP/2 client).
        using var h2 = new HttpRequestMessage(HttpMethod.Get, Url("/headers")) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var echoed = await Http.SendAsync(h2).WaitAsync(Patience);
        Assert.That(JsonDocument.Parse(await echoed.Content.ReadAsStringAsync()).RootElement.GetProperty("protocol").GetString(), Is.EqualTo("HTTP/2"));
    }

    [Test]
    public async Task Forwarding_headers_the_client_sent_are_replaced_by_the_gateways()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Url("/headers"));
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", "6.6.6.6");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", "forged.example");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");
        request.Headers.TryAddWithoutValidation("Forwarded", "for=6.6.6.6");
        using var response = await Http.SendAsync(request).WaitAsync(Patience);
        var echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var headers = echo.GetProperty("headers");
        string Seen(string name) => headers.TryGetProperty(name, out var value) ? value.GetString()! : "(none)";

        Assert.Multiple(() =>
        {
            Assert.That(echo.GetProperty("protocol").GetString(), Is.EqualTo("HTTP/1.1"));
            // The client's address as the gateway saw it, then the gateway's as the shim saw it.
            Assert.That(Seen("X-Forwarded-For"), Does.Not.Contain("6.6.6.6").And.StartWith("127.0.0.1"));
            Assert.That(Seen("X-Forwarded-Host"), Is.EqualTo(new Uri(GatewayUrl).Authority));
            Assert.That(Seen("X-Forwarded-Proto"), Is.EqualTo("http"));
            Assert.That(Seen("X-Forwarded-Prefix"), Is.EqualTo($"/{_ns}/{Function}"));
            Assert.That(Seen("Authorization"), Is.EqualTo("(none)"), "the caller's token was the gateway's, not the function's");
            Assert.That(Seen("Forwarded"), Is.EqualTo("(none)"));
        });
    }

    /// <summary>
    /// gRPC clients call <c>/{service}/{method}</c> at the channel's address and drop any path in it; the
    /// gateway routes by <c>/{namespace}/{function}</c>, so the client puts that in front, with the caller's token
    /// (gRPC's call credentials need TLS, which ends before the gateway here).
    /// </summary>
    private sealed class FunctionPrefixHandler(string prefix, string token) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.RequestUri = new UriBuilder(request.RequestUri!) { Path = prefix + request.RequestUri!.AbsolutePath }.Uri;
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
