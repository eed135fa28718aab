using System.Globalization;
using k8s.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.Gateway;

/// <summary>
/// The invocation body limit (<see cref="GatewayOptions.MaxRequestBodySize"/>): a declared length over it is refused
/// at once; for a body of unknown length the server's own per-request limit stops reading it once it grows past,
/// which the forwarder reports as the client's failure and <see cref="Exceeded"/> recognises.
/// </summary>
internal static class RequestBodyLimit
{
    /// <summary>
    /// Sets the request's body limit to <paramref name="limit"/> and returns true, or answers 413 and returns false
    /// when the request declares a longer body.
    /// </summary>
    public static async Task<bool> AdmitAsync(HttpContext context, long limit)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit;
        }

        if (context.Request.ContentLength is { } length && length > limit)
        {
            await RefuseAsync(context, limit).ConfigureAwait(false);
            return false;
        }

        return true;
    }

    /// <summary>Answers 413: the body is over <paramref name="limit"/>.</summary>
    public static async Task RefuseAsync(HttpContext context, long limit)
    {
        context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
        context.Response.ContentType = "text/plain; charset=utf-8";
        // The connection may still carry the rest of the body; the server closes it rather than read that.
        await context.Response.WriteAsync($"the request body is larger than the gateway's limit of {Describe(limit)} ({limit} bytes)\n")
            .ConfigureAwait(false);
    }

    /// <summary>Whether the forwarder's failure was the server refusing to read the body past its limit.</summary>
    public static bool Exceeded(HttpContext context)
    {
        for (var ex = context.Features.Get<IForwarderErrorFeature>()?.Exception; ex is not null; ex = ex.InnerException)
        {
            if (ex is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge })
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// A size as a Kubernetes quantity (<c>100Mi</c>, <c>1G</c>, <c>1048576</c>); false for anything else or a size
    /// under one byte.
    /// </summary>
    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        try
        {
            var value = new ResourceQuantity(text).ToDecimal();
            if (value < 1 || value > long.MaxValue || value != decimal.Truncate(value))
            {
                return false;
            }

            bytes = (long)value;
            return true;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException)
        {
            return false;
        }
    }

    /// <summary>A byte count as people read it: whole MiB or KiB when it is one, else bytes.</summary>
    internal static string Describe(long bytes) =>
        bytes % (1024 * 1024) == 0 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024 * 1024)} MiB")
        : bytes % 1024 == 0 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024} KiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes");
}
