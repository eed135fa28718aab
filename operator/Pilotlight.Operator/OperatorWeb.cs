using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Operator;

/// <summary>The operator's HTTP endpoints besides <c>/metrics</c>: <c>/healthz</c> and <c>GET /usage</c>.</summary>
public static class OperatorWeb
{
    /// <summary>Maps the endpoints onto <paramref name="routes"/>.</summary>
    public static void Map(IEndpointRouteBuilder routes, UsageApi usage, UsageAccess access)
    {
        ArgumentNullException.ThrowIfNull(routes);
        routes.MapGet("/healthz", () => "ok");
        routes.MapGet("/usage", async (HttpContext context, string? @namespace, string? function, string? from, string? to, CancellationToken ct) =>
        {
            if (string.IsNullOrEmpty(@namespace) || string.IsNullOrEmpty(function))
            {
                return Results.Text("namespace and function are required\n", statusCode: StatusCodes.Status400BadRequest);
            }

            var (status, problem) = await access.CheckAsync(context.Request.Headers.Authorization.ToString() is { Length: > 0 } h ? h : null, @namespace, function, ct)
                .ConfigureAwait(false);
            if (status != StatusCodes.Status200OK)
            {
                if (status == StatusCodes.Status401Unauthorized)
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                }

                return Results.Text(problem + "\n", statusCode: status);
            }

            return await usage.QueryAsync(@namespace, function, from, to, ct).ConfigureAwait(false) is var (report, error, code) && report is not null
                ? Results.Json(report)
                : Results.Text(error + "\n", statusCode: code);
        });
    }
}
