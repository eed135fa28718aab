using System.Net;
using System.Runtime.InteropServices;
using Pilotlight.Http;
using Pilotlight.RuntimeShim.Sandbox;

namespace Pilotlight.RuntimeShim;

/// <summary>
/// Builds the shim: a reverse proxy in front of the user's server that owns <c>/ready</c> and <c>/stats</c>,
/// limits concurrency with a bounded queue, enforces the request timeout and drains on SIGTERM. In sandbox
/// mode (<see cref="ShimOptions.Sandbox"/>) it is instead the agent of a Sandbox pod: see <see cref="SandboxAgent"/>.
/// </summary>
public static class ShimApp
{
    /// <summary>
    /// Builds (but does not start) the shim for <paramref name="options"/>. The host's console lifetime is
    /// replaced by a no-op one: signals are handled by <see cref="HandleTerminationSignals"/>, which the
    /// program calls and tests do not.
    /// </summary>
    public static WebApplication Build(ShimOptions options, string[]? args = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);

        var builder = WebApplication.CreateSlimBuilder(args ?? []);
        options.Log.Apply(builder.Logging);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        // YARP logs two lines per forwarded request at Information; its failures are warnings and the shim logs its own.
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        // The function's port takes HTTP/1.1 and h2c (gRPC through the gateway); the sandbox agent's only HTTP/1.1.
        var listeners = options.Sandbox is null ? CleartextHttp2.AddTo(builder.Services) : null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            if (listeners is not null)
            {
                listeners.Listen(kestrel, new IPEndPoint(options.ListenAddress, options.ListenPort));
            }
            else if (options.Sandbox?.Trust is { } trust)
            {
                // TLS with a certificate of its own (made here: the sandbox holds no key worth stealing) and the
                // caller's client certificate checked against the gateway's CA; /ready is asked without one.
                var serving = AgentServingCertificate();
                kestrel.Listen(options.ListenAddress, options.ListenPort, listen => listen.UseHttps(https =>
                {
                    https.ServerCertificate = serving;
                    https.ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate;
                    https.ClientCertificateValidation = (certificate, _, _) => trust.Accepts(certificate);
                }));
            }
            else
            {
                kestrel.Listen(options.ListenAddress, options.ListenPort);
            }

            if (options.Sandbox is null && options.AdminPort is { } admin)
            {
                kestrel.Listen(options.ListenAddress, admin);
            }
            kestrel.Limits.MaxRequestBodySize = null; // The upstream decides what it accepts.
            kestrel.AddServerHeader = false;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.Services.AddSingleton<IHostLifetime, QuietLifetime>();

        var time = timeProvider ?? TimeProvider.System;
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton<ShimRuntime>();
        if (options.Sandbox is { } sandbox)
        {
            return BuildSandbox(builder, sandbox);
        }

        builder.Services.AddSingleton<ReadinessProbe>();
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton<Forwarder>();

        var app = builder.Build();
        var runtime = app.Services.GetRequiredService<ShimRuntime>();
        var readiness = app.Services.GetRequiredService<ReadinessProbe>();
        var forwarder = app.Services.GetRequiredService<Forwarder>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Pilotlight.RuntimeShim");

        app.Lifetime.ApplicationStarted.Register(() => log.LogInformation(
            "Shim listening on {Addresses}, forwarding to {Upstream} (max concurrency {Concurrency}, queue {Queue}, timeout {Timeout}, GPUs {Gpus}{Simulated})",
            string.Join(", ", app.Urls), options.Upstream, options.MaxConcurrency, options.QueueLength, options.RequestTimeout,
            options.GpuCount, options.GpuSimulate ? " simulated" : ""));

        app.Run(async context =>
        {
            var request = context.Request;
            if (options.AdminPort is { } adminPort && context.Connection.LocalPort == adminPort)
            {
                await AdminAsync(context, runtime, readiness, options, log);
                return;
            }

            if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method))
            {
                if (request.Path.Equals("/ready", StringComparison.Ordinal))
                {
                    var (ready, reason) = await readiness.CheckAsync(context.RequestAborted);
                    await PlainText(context, ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, ready ? "ready" : reason);
                    return;
                }

                if (request.Path.Equals("/stats", StringComparison.Ordinal))
                {
                    context.Response.Headers.CacheControl = "no-store";
                    await Results.Json(runtime.Stats(), ShimJson.Default.ShimStats).ExecuteAsync(context);
                    return;
                }
            }

            await forwarder.ForwardAsync(context);
        });

        return app;
    }

    /// <summary>
    /// The admin listener: <c>GET /wait-for-drain</c> starts draining (readiness fails at once, new requests get 503
    /// with <see cref="Forwarder.RefusedHeader"/>) and answers 200 once nothing is in flight, or when
    /// <see cref="ShimOptions.DrainTimeout"/> is over. The user container's preStop hook calls it, so the kubelet
    /// sends that container SIGTERM only after the requests it is serving have finished.
    /// </summary>
    private static async Task AdminAsync(HttpContext context, ShimRuntime runtime, ReadinessProbe readiness, ShimOptions options, ILogger log)
    {
        if (HttpMethods.IsGet(context.Request.Method) && context.Request.Path.Equals(ShimOptions.LivePath, StringComparison.Ordinal))
        {
            // A server busy with a long inference may not answer its health path; a request in flight is progress
            // (the shim cuts any past the function's timeout), so only an idle server is asked.
            var busy = runtime.Stats().InFlight;
            var problem = busy > 0 ? null : await readiness.UpstreamProblemAsync(context.RequestAborted);
            await PlainText(context, problem is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable,
                problem ?? (busy > 0 ? $"alive: {busy} in flight" : "alive"));
            return;
        }

        if (!HttpMethods.IsGet(context.Request.Method) || !context.Request.Path.Equals(ShimOptions.WaitForDrainPath, StringComparison.Ordinal))
        {
            await PlainText(context, StatusCodes.Status404NotFound,
                $"the admin port serves only GET {ShimOptions.WaitForDrainPath} and GET {ShimOptions.LivePath}");
            return;
        }

        if (!runtime.IsDraining)
        {
            log.LogInformation("preStop: draining for up to {Drain}", options.DrainTimeout);
        }

        var clean = await runtime.DrainAsync(context.RequestAborted);
        await PlainText(context, StatusCodes.Status200OK, clean ? "drained" : "drain time over with requests still running");
    }

    /// <summary>A self-signed serving certificate for the agent, made at start and kept in memory only.</summary>
    private static System.Security.Cryptography.X509Certificates.X509Certificate2 AgentServingCertificate()
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=pilotlight-sandbox-agent", key,
            System.Security.Cryptography.HashAlgorithmName.SHA256);
        var now = DateTimeOffset.UtcNow;
        using var made = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));
        // Through PKCS#12 so that the key is usable by the TLS stack on every platform.
        return System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(made.Export(
            System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12), null);
    }

    private static WebApplication BuildSandbox(WebApplicationBuilder builder, SandboxOptions sandbox)
    {
        SandboxAgent.AddServices(builder.Services, sandbox);
        var app = builder.Build();
        var agent = app.Services.GetRequiredService<SandboxAgent>();
        var exec = app.Services.GetRequiredService<ExecRunner>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Pilotlight.RuntimeShim");

        app.Lifetime.ApplicationStarted.Register(() => log.LogInformation(
            "Sandbox agent listening on {Addresses}, workspace {Workspace} (exec timeout {Timeout}, max file {MaxFileBytes} bytes)",
            string.Join(", ", app.Urls), app.Services.GetRequiredService<WorkspacePaths>().Root, sandbox.ExecTimeout, sandbox.MaxFileBytes));
        app.Lifetime.ApplicationStopping.Register(exec.KillAll);
        app.Lifetime.ApplicationStopping.Register(app.Services.GetRequiredService<ExecSocket>().KillAll);
        var main = app.Services.GetRequiredService<SandboxMainProcess>();
        app.Lifetime.ApplicationStarted.Register(main.Start);
        app.Lifetime.ApplicationStopping.Register(main.Kill);

        app.UseWebSockets();
        app.Run(agent.HandleAsync);
        return app;
    }

    /// <summary>
    /// What gives the exit code the shim built by <see cref="Build"/> should leave with once it has stopped: the
    /// sandbox command's when it ended the sandbox, else 0. Take it before running the app, which disposes its services.
    /// </summary>
    public static Func<int> ExitCode(WebApplication app)
    {
        var main = (app ?? throw new ArgumentNullException(nameof(app))).Services.GetService<SandboxMainProcess>();
        return () => main?.ExitCode ?? 0;
    }

    /// <summary>
    /// In sandbox mode, process hygiene for the agent (Linux): it becomes a child subreaper that reaps the orphans
    /// of the commands it runs, and makes itself not dumpable by them. The program calls it before running the
    /// app; in-process tests do not (it would change the test host itself). No-op in function mode.
    /// </summary>
    public static void StartProcessHygiene(WebApplication app) =>
        (app ?? throw new ArgumentNullException(nameof(app))).Services.GetService<ChildProcesses>()?.TakeChargeOfOrphans();

    /// <summary>Starts draining the shim built by <see cref="Build"/>; the same thing SIGTERM does first.</summary>
    public static void StartDraining(WebApplication app) =>
        (app ?? throw new ArgumentNullException(nameof(app))).Services.GetRequiredService<ShimRuntime>().StartDraining();

    /// <summary>
    /// SIGTERM: drain (readiness fails, new requests get 503, in-flight ones get up to
    /// <see cref="ShimOptions.DrainTimeout"/>), then stop the app so it exits 0. SIGINT and SIGQUIT stop at once.
    /// Dispose the result to unregister.
    /// </summary>
    public static IDisposable HandleTerminationSignals(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var runtime = app.Services.GetRequiredService<ShimRuntime>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Pilotlight.RuntimeShim");
        var draining = 0;

        void Terminate(PosixSignalContext context)
        {
            context.Cancel = true;
            if (Interlocked.Exchange(ref draining, 1) == 1)
            {
                return;
            }

            log.LogInformation("SIGTERM: draining for up to {Drain}", app.Services.GetRequiredService<ShimOptions>().DrainTimeout);
            _ = Task.Run(async () =>
            {
                try
                {
                    var clean = await runtime.DrainAsync().ConfigureAwait(false);
                    log.LogInformation(clean ? "Drained; stopping" : "Drain time over with requests still running; stopping");
                }
                finally
                {
                    app.Lifetime.StopApplication();
                }
            });
        }

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            app.Lifetime.StopApplication();
        }

        return new Registrations(
        [
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Terminate),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Stop),
        ]);
    }

    internal static Task PlainText(HttpContext context, int status, string text)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.WriteAsync(text + "\n");
    }

    private sealed class Registrations(IReadOnlyList<IDisposable> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
            {
                item.Dispose();
            }
        }
    }

    /// <summary>A lifetime that does nothing: the shim handles signals itself so SIGTERM can drain first.</summary>
    private sealed class QuietLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
