// Pilotlight sample model server: a tiny stand-in for a real model server (vLLM, Triton, ...), used by the
// node simulator and the demo so the runtime shim has something realistic to sit in front of.
//
//   PORT            port to listen on (default 8080)
//   LISTEN_ADDRESS  address to listen on (default 0.0.0.0)
//   LOAD_SECONDS    simulated model load time; /healthz answers 503 "loading" until it has passed (default 2)
//   COMPUTE_MS      simulated compute per request (default 50)
//   POD_NAME        reported in every answer (default: the machine name)
//
// GET /healthz answers 503 "loading" then 200 "ok". Every other path and method (POST /predict, say) waits
// COMPUTE_MS and answers {"pod": ..., "computeMs": n, "echo": <first 1 KB of the request body>}.
using System.Globalization;
using System.Net;
using System.Text;

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
builder.WebHost.ConfigureKestrel(k => k.Listen(address, port));
var app = builder.Build();

var started = TimeProvider.System.GetTimestamp();
var loadTime = TimeSpan.FromSeconds(loadSeconds);

app.Run(async context =>
{
    if (context.Request.Path.Equals("/healthz", StringComparison.Ordinal))
    {
        var loaded = TimeProvider.System.GetElapsedTime(started) >= loadTime;
        context.Response.StatusCode = loaded ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        await context.Response.WriteAsync(loaded ? "ok" : "loading");
        return;
    }

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

    await Task.Delay(computeMs, context.RequestAborted);
    await context.Response.WriteAsJsonAsync(
        new Answer(pod, computeMs, Encoding.UTF8.GetString(buffer, 0, read)),
        context.RequestAborted);
});

app.Lifetime.ApplicationStarted.Register(() =>
    Console.WriteLine($"sample-model-server {pod} listening on {string.Join(", ", app.Urls)} (load {loadSeconds}s, compute {computeMs}ms)"));
await app.RunAsync();
return 0;

/// <summary>The JSON every non-health request gets.</summary>
internal sealed record Answer(string Pod, int ComputeMs, string Echo);
