using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Operator;

/// <summary>
/// The operator's HTTP endpoints besides <c>/metrics</c>: <c>/healthz</c> (the process is alive), <c>/readyz</c> (every
/// informer has finished its first list) and <c>GET /usage</c> (functions and sandboxes).
/// </summary>
public static class OperatorWeb
{
    /// <summary>
    /// Maps the endpoints onto <paramref name="routes"/>. <paramref name="unsynced"/> gives the resources whose informers
    /// have not listed yet (<see cref="Pilotlight.ControllerRuntime.ControllerHost.Unsynced"/>), or null while there is no
    /// host yet; <c>/readyz</c> is 200 only when it gives an empty list. Without it <c>/readyz</c> is always 200.
    /// </summary>
    public static void Map(IEndpointRouteBuilder routes, UsageApi usage, UsageAccess access, Func<IReadOnlyList<string>?>? unsynced = null)
    {
        ArgumentNullException.ThrowIfNull(routes);
        routes.MapGet("/healthz", () => "ok");
        routes.MapGet("/readyz", () => (unsynced is null ? [] : unsynced()) switch
        {
            null => Results.Text("not ready: controllers not started\n", statusCode: StatusCodes.Status503ServiceUnavailable),
            { Count: 0 } => Results.Text("ok\n"),
            var waiting => Results.Text($"not ready: waiting for the first list of {string.Join(", ", waiting)}\n",
                statusCode: StatusCodes.Status503ServiceUnavailable),
        });
        // ?function=NAME for a GpuFunction's usage, ?sandbox=NAME for a Sandbox's; the caller must be allowed to get it.
        routes.MapGet("/usage", async (HttpContext context, string? @namespace, string? function, string? sandbox, string? from, string? to,
            CancellationToken ct) =>
        {
            if (!string.IsNullOrEmpty(function) && !string.IsNullOrEmpty(sandbox))
            {
                return Results.Text("give function or sandbox, not both\n", statusCode: StatusCodes.Status400BadRequest);
            }

            var (kind, resource, name) = string.IsNullOrEmpty(sandbox)
                ? (Api.V1Alpha1.GpuFunction.KindName, "gpufunctions", function)
                : (Api.V1Alpha1.Sandbox.KindName, "sandboxes", sandbox);
            if (string.IsNullOrEmpty(@namespace) || string.IsNullOrEmpty(name))
            {
                return Results.Text("namespace and function (or sandbox) are required\n", statusCode: StatusCodes.Status400BadRequest);
            }

            var (status, problem) = await access.CheckAsync(context.Request.Headers.Authorization.ToString() is { Length: > 0 } h ? h : null, resource,
                @namespace, name, ct).ConfigureAwait(false);
            if (status != StatusCodes.Status200OK)
            {
                if (status == StatusCodes.Status401Unauthorized)
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                }

                return Results.Text(problem + "\n", statusCode: status);
            }

            return await usage.QueryAsync(kind, @namespace, name, from, to, ct).ConfigureAwait(false) is var (report, error, code) && report is not null
                ? Results.Json(report)
                : Results.Text(error + "\n", statusCode: code);
        });
    }
}
