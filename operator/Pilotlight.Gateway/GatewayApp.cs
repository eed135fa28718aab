using System.Net;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Http;
using Prometheus;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.Gateway;

/// <summary>Builds the gateway: watches functions and their pods, serves invocations, demand and metrics.</summary>
public static class GatewayApp
{
    /// <summary>
    /// A gateway listening on <paramref name="urls"/> (e.g. http://127.0.0.1:8080; several separated by ';'), each
    /// for HTTP/1.1 and h2c.
    /// </summary>
    public static WebApplication Build(IKubernetes client, string urls, GatewayOptions? options = null, CollectorRegistry? registry = null,
        TimeProvider? time = null, Action<ILoggingBuilder>? logging = null)
    {
        options ??= new GatewayOptions();
        time ??= TimeProvider.System;
        var builder = WebApplication.CreateSlimBuilder();
        // Clients may speak HTTP/1.1 or HTTP/2 with prior knowledge (gRPC) on the same cleartext port: Kestrel alone
        // would speak only HTTP/1.1 there (see CleartextHttp2). The admin port is for the kubelet, HTTP/1.1.
        var listeners = CleartextHttp2.AddTo(builder.Services);
        var endpoints = ListenEndpoints(urls);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var endpoint in endpoints)
            {
                listeners.Listen(kestrel, endpoint);
            }

            if (options.AdminPort is { } adminPort)
            {
                kestrel.Listen(IPAddress.Any, adminPort);
            }

            if (options.InternalPort is { } internalPort)
            {
                kestrel.Listen(IPAddress.Any, internalPort);
            }
        });
        builder.Services.AddHttpForwarder();
        TimeProvider drainTime = time;
        GatewayOptions settings = options;
        builder.Services.AddSingleton(sp => new GatewayDrain(settings.DrainTimeout, settings.DrainQuietPeriod, drainTime,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("drain")));
        if (options.DrainOnSignal)
        {
            // Signals drain before the host stops (the console lifetime would stop it at once); what is
            // left after the drain's bound gets a short grace, within the pod's termination grace period.
            builder.Services.AddSingleton<IHostLifetime, DrainingLifetime>();
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        }
        else
        {
            // Stopped by its owner: it stops listening and finishes what it serves, for up to the drain bound.
            var bound = options.DrainTimeout;
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = bound);
        }

        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            logging(builder.Logging);
        }
        else
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        }

        // ASP.NET Core logs every request at Information: each probe, each autoscaler demand poll (about 2,000 lines in
        // 7 minutes of an idle install). The gateway's own lines say what matters; the framework's warnings and errors stay.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        var app = builder.Build();
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();
        // Functions too keep only what the gateway reads: its status and pod template are most of a function, and the
        // gateway caches every function in the cluster (issue 18: 10,000 functions within 200 MB).
        var functions = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(client),
            new InformerOptions { Transform = GatewayFunctions.KeepInvocationFields }, time, loggers.CreateLogger("informer.gpufunctions"));
        // Pods are cached with only the fields routing reads (thousands of pods, each mostly spec the gateway never reads).
        var pods = new Informer<V1Pod>(ListWatch.ForPods(client, $"{FunctionLabels.ManagedBy}={FunctionLabels.ManagedByValue}"),
            new InformerOptions { Transform = GatewayPods.KeepRoutingFields }, time, loggers.CreateLogger("informer.pods"));
        var routes = new FunctionRoutes(pods, functions, options.ShimPort, time);
        var metrics = new GatewayMetrics(registry);
        metrics.HeldLimit.Set(options.QueueLimit);
        var signals = new SignalBoard(time);
        var proxy = new InvocationProxy(functions, routes, signals, options, metrics, time, loggers.CreateLogger("gateway"),
            app.Services.GetRequiredService<IHttpForwarder>());
        var invokeKeys = options.Access.InvokeKeysConfigMap is { } keysAt
            ? new PublishedInvokeKeys(client, keysAt, time, loggers.CreateLogger("invoke-keys")) : null;
        var access = new InvocationAccess(client, options.Access, loggers.CreateLogger("access"), registry) { Keys = invokeKeys };
        app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopped.Register(access.Dispose);
        var clientLimits = new ClientLimits(options.ClientLimits, time, registry);
        app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopped.Register(clientLimits.Dispose);
        var entry = new InvocationEntry(functions, access, clientLimits, proxy, options);
        var sandboxes = new Informer<Sandbox>(ListWatch.ForCustomResource<Sandbox>(client),
            new InformerOptions { Transform = GatewaySandboxes.KeepRoutingFields }, time, loggers.CreateLogger("informer.sandboxes"));
        var sandboxApi = new SandboxApi(sandboxes, pods, client, signals, options.AgentPort, time, loggers.CreateLogger("sandbox"),
            options.AgentClientCertificate, app.Services.GetRequiredService<IHttpForwarder>());

        var drain = app.Services.GetRequiredService<GatewayDrain>();
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        var watching = Task.WhenAll(functions.RunAsync(lifetime.ApplicationStopping), pods.RunAsync(lifetime.ApplicationStopping),
            sandboxes.RunAsync(lifetime.ApplicationStopping), invokeKeys?.RunAsync(lifetime.ApplicationStopping) ?? Task.CompletedTask,
            RetainSignalsAsync(signals, sandboxes, time, lifetime.ApplicationStopping));
        lifetime.ApplicationStopped.Register(() => watching.Wait(TimeSpan.FromSeconds(5)));

        // The operator's endpoints and metrics: only on the internal port where there is one, and only for the
        // operator's identity where callers are named (see InternalOnly).
        app.Use(InternalOnly(settings, access));

        // Every request but probes, the operator's reads, metrics and the drain call itself counts for the drain.
        app.Use(async (context, next) =>
        {
            if (context.Request.Path.Value is "/healthz" or "/readyz" or "/metrics" or FunctionDemand.ReportPath or GatewaySignals.Path or "/wait-for-drain")
            {
                await next(context);
                return;
            }

            using var tracked = drain.Track();
            if (drain.Draining)
            {
                // A client's kept-alive connection stays with this pod whatever the Service now says (kube-proxy
                // balances connections, not requests): ask it to reconnect, so its next request reaches a gateway
                // that is not stopping (HTTP/1.1: Connection: close after this response; HTTP/2: GOAWAY). On HTTP/1.1
                // the header is also set here: the connection's close request reaches the response asynchronously, and
                // on a loaded machine the headers could go out before it.
                if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
                {
                    context.Response.Headers.Connection = "close";
                }

                context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeNotificationFeature>()?.RequestClose();
            }

            await next(context);
        });
        if (options.HostDomain is { Length: > 0 } domain)
        {
            // Before every path: under a function's host, all of them are the function's.
            app.Use(entry.HostRoutes(domain));
        }

        app.MapGet("/healthz", () => "ok");
        app.MapGet("/readyz", () => drain.Draining ? Results.Text("draining", statusCode: StatusCodes.Status503ServiceUnavailable)
            : functions.HasSynced && pods.HasSynced && sandboxes.HasSynced ? Results.Text("ready")
            : Results.Text("caches not synced", statusCode: StatusCodes.Status503ServiceUnavailable));

        // The preStop hook: begin draining and answer once the drain is over. Only on the admin port, which
        // no Service exposes: through the gateway port anyone could take a gateway out of service.
        app.MapGet("/wait-for-drain", async (HttpContext context) =>
        {
            if (settings.AdminPort is not { } admin || context.Connection.LocalPort != admin)
            {
                return Results.NotFound();
            }

            await drain.DrainAsync(context.RequestAborted);
            return Results.Text("drained");
        });
        app.MapGet(FunctionDemand.ReportPath, () => Results.Json(routes.Demand()));
        app.MapGet(GatewaySignals.Path, async (HttpContext context, string? epoch, long? after) =>
        {
            // A long poll; a stopping gateway answers at once, so the poll never holds its shutdown.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
            try
            {
                return Results.Json(await signals.ReadAsync(epoch, after ?? -1, GatewaySignals.MaxWait, stop.Token));
            }
            catch (OperationCanceledException)
            {
                return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
            }
        });
        app.UseMetricServer("/metrics", registry);
        app.Map(SandboxApi.Prefix + "/{ns}/{name}/{**operation}", (HttpContext context, string ns, string name, string? operation) =>
            sandboxApi.HandleAsync(context, ns, name, operation ?? ""));
        // Who may invoke is settled before anything else (a function at zero is not woken for a stranger); see InvocationEntry.
        app.Map("/{ns}/{fn}/{**rest}", (HttpContext context, string ns, string fn, string? rest) => entry.HandleAsync(context, ns, fn, rest, hostRouted: false));
        app.Map("/{ns}/{fn}", (HttpContext context, string ns, string fn) => entry.HandleAsync(context, ns, fn, null, hostRouted: false));
        return app;
    }

    /// <summary>
    /// With an internal port: <c>/internal/*</c> and <c>/metrics</c> are answered 404 anywhere else, and the internal
    /// port answers nothing but them and <c>/healthz</c>. With internal callers named: <c>/internal/*</c> needs one's token.
    /// </summary>
    private static Func<HttpContext, RequestDelegate, Task> InternalOnly(GatewayOptions options, InvocationAccess access) => async (context, next) =>
    {
        var path = context.Request.Path.Value ?? "";
        var isInternal = path.StartsWith("/internal/", StringComparison.Ordinal);
        if (options.InternalPort is { } port)
        {
            var onInternalPort = context.Connection.LocalPort == port;
            if (onInternalPort != (isInternal || path == "/metrics") && !(onInternalPort && path == "/healthz"))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
        }

        if (isInternal && options.InternalCallers.Count > 0 && !await access.AdmitInternalAsync(context, [.. options.InternalCallers]))
        {
            return;
        }

        await next(context);
    };

    /// <summary>Every half minute: sandboxes that are gone, replaced or finished leave the signal board, and so do old wakes.</summary>
    private static async Task RetainSignalsAsync(SignalBoard signals, Informer<Sandbox> sandboxes, TimeProvider time, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(30), time, ct).ConfigureAwait(false);
                if (sandboxes.HasSynced)
                {
                    signals.Retain(s => sandboxes.Get(s.Key) is { } sandbox && sandbox.Metadata.Uid == s.Uid
                        && sandbox.Status?.Conditions?.Any(c => c.Type == SandboxConditions.Finished && c.Status == "True") != true);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The addresses of cleartext URLs: an IP, or localhost (loopback), or *, + or a host name (every address).</summary>
    internal static IReadOnlyList<IPEndPoint> ListenEndpoints(string urls) =>
        urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(url =>
        {
            var address = BindingAddress.Parse(url);
            if (!address.Scheme.Equals("http", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"the gateway listens on cleartext http only (TLS ends before it): {url}", nameof(urls));
            }

            var ip = IPAddress.TryParse(address.Host.Trim('[', ']'), out var parsed) ? parsed
                : address.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
                : IPAddress.Any;
            return new IPEndPoint(ip, address.Port);
        }).ToList();
}
