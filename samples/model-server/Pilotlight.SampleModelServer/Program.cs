// Pilotlight sample model server: a tiny stand-in for a real model server (vLLM, Triton, ...), used by the
// node simulator and the demo so the runtime shim has something realistic to sit in front of.
//
//   PORT            port to listen on (default 8080): HTTP/1.1 and h2c (prior-knowledge HTTP/2, as gRPC clients speak it)
//   LISTEN_ADDRESS  address to listen on (default 0.0.0.0)
//   LOAD_SECONDS    simulated model load time; /healthz answers 503 "loading" until it has passed (default 2)
//   COMPUTE_MS      simulated compute per request (default 50)
//   POD_NAME        reported in every answer (default: the machine name)
//
// GET /healthz answers 503 "loading" then 200 "ok". Streaming and protocol endpoints, for the tests and benchmarks:
//   GET /events?n=N&gapMs=M&hold=KEY   server-sent events: N events M ms apart ("data: {pod} {i}"); with hold, the
//                                      events after the first wait until POST /release/KEY (so a test can show the
//                                      first event arrived while the response was still open)
//   POST /release/KEY                  lets the held event stream KEY go on
//   GET /ws                            WebSocket echo: every message comes back as it was sent
//   GET /headers                       the request's protocol and headers, as JSON
//   POST /upload                       reads the whole body (any size: the server's own body limit is lifted) and
//                                      answers {"pod": ..., "bytes": n}
//   gRPC pilotlight.sample.Echo/Say    unary, UTF-8 string in and out (see SampleEcho), trailer x-sample-pod
// Every other path and method (POST /predict, say) waits COMPUTE_MS and answers
// {"pod": ..., "computeMs": n, "echo": <first 1 KB of the request body>, "started": k (the k-th request it began)}.
// Query knobs, so tests can act out a real model server's habits per request:
//   ?ms=N           compute N ms instead of COMPUTE_MS (a long inference)
//   ?spin=1         spend those ms on a CPU instead of waiting (a busy pod, for metering)
//   ?failOn=a,b     answer 500 at once when POD_NAME is one of the listed names (a broken replica)
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Pilotlight.Http;
using Pilotlight.SampleModelServer;

static int ReadInt(string name, int fallback, int min)
{
    var text = Environment.GetEnvironmentVariable(name);
    if (string.IsNullOrWhiteSpace(text))
    {
        return fallback;
    }

    if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min)
    {
        Console.Error.WriteLine($"sample-model-server: {name}={text}: expected a whole number of at least {min}");
        Environment.Exit(2);
    }

    return value;
}

static int QueryInt(HttpContext context, string name, int fallback) =>
    int.TryParse(context.Request.Query[name], NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : fallback;

var port = ReadInt("PORT", 8080, 0);
var loadSeconds = ReadInt("LOAD_SECONDS", 2, 0);
var computeMs = ReadInt("COMPUTE_MS", 50, 0);
var addressText = Environment.GetEnvironmentVariable("LISTEN_ADDRESS");
var address = IPAddress.Any;
if (!string.IsNullOrWhiteSpace(addressText) && !IPAddress.TryParse(addressText, out address!))
{
    Console.Error.WriteLine($"sample-model-server: LISTEN_ADDRESS={addressText}: expected an IP address");
    return 2;
}

var pod = Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } name ? name : Environment.MachineName;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
builder.Logging.AddFilter("Grpc", LogLevel.Warning);
var listeners = CleartextHttp2.AddTo(builder.Services);
builder.WebHost.ConfigureKestrel(k => listeners.Listen(k, new IPEndPoint(address, port)));
builder.Services.AddGrpc();
builder.Services.AddSingleton(new EchoService(pod));
var app = builder.Build();

var started = TimeProvider.System.GetTimestamp();
var loadTime = TimeSpan.FromSeconds(loadSeconds);
var holds = new ConcurrentDictionary<string, TaskCompletionSource>(StringComparer.Ordinal);
TaskCompletionSource Hold(string key) => holds.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

app.UseWebSockets();
app.MapGrpcService<EchoService>();

app.MapGet("/healthz", async context =>
{
    var loaded = TimeProvider.System.GetElapsedTime(started) >= loadTime;
    context.Response.StatusCode = loaded ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
    await context.Response.WriteAsync(loaded ? "ok" : "loading");
});

app.MapGet("/events", async context =>
{
    var count = QueryInt(context, "n", 3);
    var gap = QueryInt(context, "gapMs", 100);
    var hold = context.Request.Query["hold"].ToString();
    context.Response.ContentType = "text/event-stream";
    context.Response.Headers.CacheControl = "no-cache";
    for (var i = 0; i < count; i++)
    {
        if (i > 0)
        {
            await (hold.Length > 0 ? Hold(hold).Task.WaitAsync(context.RequestAborted) : Task.Delay(gap, context.RequestAborted));
        }

        await context.Response.WriteAsync($"id: {i}\ndata: {pod} {i}\n\n", context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }
});

app.MapPost("/release/{key}", (string key) =>
{
    Hold(key).TrySetResult();
    return Results.Text("released");
});

app.MapGet("/headers", (HttpContext context) => Results.Json(new HeaderEcho(
    pod, context.Request.Protocol, context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase))));

app.MapPost("/upload", async context =>
{
    // A model server taking a large input (audio, images): the body is read to its end, never kept.
    if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
    {
        limit.MaxRequestBodySize = null;
    }

    var buffer = new byte[64 * 1024];
    long total = 0;
    int n;
    while ((n = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
    {
        total += n;
    }

    await context.Response.WriteAsJsonAsync(new Upload(pod, total), context.RequestAborted);
});

app.MapGet("/ws", async context =>
{
    if (!context.WebSockets.IsWebSocketRequest)
    {
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        await context.Response.WriteAsync("a WebSocket upgrade is expected here");
        return;
    }

    using var socket = await context.WebSockets.AcceptWebSocketAsync();
    var buffer = new byte[64 * 1024];
    while (true)
    {
        var received = await socket.ReceiveAsync(buffer, context.RequestAborted);
        if (received.MessageType == WebSocketMessageType.Close)
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
            return;
        }

        await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
    }
});

// How many requests this process has begun to compute, so tests can read the order the server saw.
var served = 0;
app.MapFallback("{**path}", async context =>
{
    // Read at most 1 KB of the body to echo; the rest is drained by the server.
    var buffer = new byte[1024];
    var read = 0;
    while (read < buffer.Length)
    {
        var n = await context.Request.Body.ReadAsync(buffer.AsMemory(read), context.RequestAborted);
        if (n == 0)
        {
            break;
        }

        read += n;
    }

    if (context.Request.Query["failOn"].ToString().Split(',').Contains(pod, StringComparer.Ordinal))
    {
        context.Response.StatusCode = StatusCodes.Status500InternalServerError;
        await context.Response.WriteAsync($"{pod} fails on purpose", context.RequestAborted);
        return;
    }

    var ms = QueryInt(context, "ms", computeMs);
    var started = Interlocked.Increment(ref served);
    if (context.Request.Query["spin"] == "1")
    {
        var until = Environment.TickCount64 + ms;
        var spins = 0L;
        while (Environment.TickCount64 < until && !context.RequestAborted.IsCancellationRequested)
        {
            spins++;
        }

        GC.KeepAlive(spins);
    }
    else
    {
        await Task.Delay(ms, context.RequestAborted);
    }

    await context.Response.WriteAsJsonAsync(
        new Answer(pod, ms, Encoding.UTF8.GetString(buffer, 0, read), started),
        context.RequestAborted);
});

app.Lifetime.ApplicationStarted.Register(() =>
    Console.WriteLine($"sample-model-server {pod} listening on {address}:{port}, HTTP/1.1 and h2c (load {loadSeconds}s, compute {computeMs}ms)"));
await app.RunAsync();
return 0;

/// <summary>The JSON every non-health request gets; <c>Started</c> numbers the request among those this process began.</summary>
internal sealed record Answer(string Pod, int ComputeMs, string Echo, int Started);

/// <summary>What POST /upload answers: how many body bytes it read.</summary>
internal sealed record Upload(string Pod, long Bytes);

/// <summary>What GET /headers answers.</summary>
internal sealed record HeaderEcho(string Pod, string Protocol, Dictionary<string, string> Headers);

/// <summary>
/// The service base of <see cref="SampleEcho"/>, written as generated code would be: gRPC binds the overrides of
/// its virtual methods, found by name.
/// </summary>
[BindServiceMethod(typeof(EchoBase), nameof(BindService))]
internal abstract class EchoBase
{
    /// <summary>Called by the gRPC server, with a null service when it only discovers the methods.</summary>
    public static void BindService(ServiceBinderBase binder, EchoBase? service) =>
        binder.AddMethod(SampleEcho.Say, service is null ? null : service.Say);

    /// <summary>The handler of <see cref="SampleEcho.Say"/>.</summary>
    public abstract Task<string> Say(string request, ServerCallContext context);
}

/// <summary>The sample's gRPC service: says who answered, in the reply and in a trailer.</summary>
internal sealed class EchoService(string pod) : EchoBase
{
    /// <inheritdoc/>
    public override Task<string> Say(string request, ServerCallContext context)
    {
        context.ResponseTrailers.Add(SampleEcho.PodTrailer, pod);
        return Task.FromResult($"{pod}: {request}");
    }
}
