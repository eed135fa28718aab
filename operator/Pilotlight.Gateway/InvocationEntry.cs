using Microsoft.AspNetCore.Http;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>
/// The way into an invocation, whether routed by path (<c>/{namespace}/{function}/...</c>) or by host
/// (<c>{function}.{namespace}.{domain}</c>), in the order that costs least for what is refused: the body limit
/// (nothing to ask), who may invoke (before a function at zero is woken), the caller's own limits, then the proxy.
/// </summary>
internal sealed class InvocationEntry(Informer<GpuFunction> functions, InvocationAccess access, ClientLimits limits, InvocationProxy proxy,
    GatewayOptions options)
{
    /// <summary>Serves one invocation of <paramref name="ns"/>/<paramref name="fn"/>.</summary>
    /// <param name="context">The request.</param>
    /// <param name="ns">The function's namespace.</param>
    /// <param name="fn">The function's name.</param>
    /// <param name="rest">The path after <c>/{namespace}/{function}</c> under path routing.</param>
    /// <param name="hostRouted">Routed by host: the function gets the whole path, and no prefix.</param>
    public async Task HandleAsync(HttpContext context, string ns, string fn, string? rest, bool hostRouted)
    {
        if (!await RequestBodyLimit.AdmitAsync(context, options.MaxRequestBodySize).ConfigureAwait(false)
            || !await access.AdmitAsync(context, functions.Get(new ObjectKey(ns, fn)), ns, fn).ConfigureAwait(false))
        {
            return;
        }

        using var admitted = await limits.AdmitAsync(context, ns, fn).ConfigureAwait(false);
        if (admitted is not null)
        {
            await proxy.InvokeAsync(context, ns, fn, rest, hostRouted).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Middleware for <see cref="GatewayOptions.HostDomain"/>: a request for a function's host is that function's
    /// whatever its path (the gateway's own paths included, as they are the function's under its origin); another
    /// host under the domain is 404; any other host goes on to path routing.
    /// </summary>
    public Func<HttpContext, RequestDelegate, Task> HostRoutes(string domain) => async (context, next) =>
    {
        switch (HostRouting.Match(context.Request.Host, domain, out var ns, out var fn))
        {
            case HostMatch.Function:
                await HandleAsync(context, ns, fn, null, hostRouted: true).ConfigureAwait(false);
                break;
            case HostMatch.Unknown:
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                context.Response.ContentType = "text/plain; charset=utf-8";
                await context.Response.WriteAsync($"no function is served at {context.Request.Host.Host} (hosts here are {{function}}.{{namespace}}.{domain})\n")
                    .ConfigureAwait(false);
                break;
            default:
                await next(context).ConfigureAwait(false);
                break;
        }
    };
}
