using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Prometheus;

namespace Pilotlight.Gateway;

/// <summary>Builds the gateway: watches functions and their pods, serves invocations, demand and metrics.</summary>
public static class GatewayApp
{
    /// <summary>A gateway listening on <paramref name="urls"/> (e.g. http://127.0.0.1:8080).</summary>
    public static WebApplication Build(IKubernetes client, string urls, GatewayOptions? options = null, CollectorRegistry? registry = null,
        TimeProvider? time = null, Action<ILoggingBuilder>? logging = null)
    {
        options ??= new GatewayOptions();
        time ??= TimeProvider.System;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            logging(builder.Logging);
        }
        else
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        }

        var app = builder.Build();
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();
        var functions = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(client), time: time, logger: loggers.CreateLogger("informer.gpufunctions"));
        var pods = new Informer<V1Pod>(ListWatch.ForPods(client, $"{FunctionLabels.ManagedBy}={FunctionLabels.ManagedByValue}"),
            time: time, logger: loggers.CreateLogger("informer.pods"));
        var routes = new FunctionRoutes(pods, options.ShimPort);
        var metrics = new GatewayMetrics(registry);
        var proxy = new InvocationProxy(functions, routes, client, options, metrics, time, loggers.CreateLogger("gateway"));
        var sandboxes = new Informer<Sandbox>(ListWatch.ForCustomResource<Sandbox>(client), time: time, logger: loggers.CreateLogger("informer.sandboxes"));
        var sandboxApi = new SandboxApi(sandboxes, pods, client, options.ShimPort, time, loggers.CreateLogger("sandbox"));

        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        var watching = Task.WhenAll(functions.RunAsync(lifetime.ApplicationStopping), pods.RunAsync(lifetime.ApplicationStopping),
            sandboxes.RunAsync(lifetime.ApplicationStopping));
        lifetime.ApplicationStopped.Register(() => watching.Wait(TimeSpan.FromSeconds(5)));

        app.MapGet("/healthz", () => "ok");
        app.MapGet("/readyz", () => functions.HasSynced && pods.HasSynced && sandboxes.HasSynced
            ? Results.Text("ready")
            : Results.Text("caches not synced", statusCode: StatusCodes.Status503ServiceUnavailable));
        app.MapGet("/internal/demand", () => Results.Json(routes.Demand()));
        app.UseMetricServer("/metrics", registry);
        app.Map(SandboxApi.Prefix + "/{ns}/{name}/{**operation}", (HttpContext context, string ns, string name, string? operation) =>
            sandboxApi.HandleAsync(context, ns, name, operation ?? ""));
        app.Map("/{ns}/{fn}/{**rest}", (HttpContext context, string ns, string fn, string? rest) => proxy.InvokeAsync(context, ns, fn, rest));
        app.Map("/{ns}/{fn}", (HttpContext context, string ns, string fn) => proxy.InvokeAsync(context, ns, fn, null));
        return app;
    }
}
