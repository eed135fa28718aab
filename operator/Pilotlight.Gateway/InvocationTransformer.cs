using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.Gateway;

/// <summary>
/// What YARP's forwarder does to one attempt of an invocation on its way to a pod and back: the path loses the
/// <c>/{namespace}/{function}</c> prefix; <c>X-Forwarded-For/Proto/Host/Prefix</c> are the gateway's own
/// (whatever the client sent under those names, or as <c>Forwarded</c>, is dropped: only the gateway can vouch
/// for them); the caller's <c>Authorization</c> and <c>Cookie</c> are removed unless the function asked for them
/// (<c>spec.passCallerCredentials</c>); a failure the retry pipeline is about to retry is held back (nothing of it
/// reaches the client); any other answer is copied with the start headers added.
/// </summary>
/// <param name="prefix">The invocation's prefix, <c>/{namespace}/{function}</c>; empty when routed by host.</param>
/// <param name="willRetry">Whether the pipeline retries an attempt that failed so; asked once per attempt.</param>
/// <param name="stamp">Adds the start headers to a response about to be copied.</param>
/// <param name="passCredentials">The function receives the caller's Authorization and Cookie headers.</param>
internal sealed class InvocationTransformer(PathString prefix, Func<AttemptFailure, bool> willRetry, Action<HttpResponse> stamp,
    bool passCredentials = false) : HttpTransformer
{
    /// <summary>Request headers the gateway sets itself; never passed on from the client.</summary>
    internal static readonly string[] ForwardedHeaders = ["Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix"];

    /// <summary>The caller's credentials: for the gateway (a token) or for another function on the same origin (cookies), not this one's code.</summary>
    internal static readonly string[] CredentialHeaders = ["Authorization", "Cookie"];

    /// <summary>How the pod's answer classifies for retries; <see cref="AttemptFailure.None"/> until one came.</summary>
    public AttemptFailure Failure { get; private set; }

    /// <summary>The answer was a failure held back for a retry: the client's response is untouched.</summary>
    public bool Declined { get; private set; }

    /// <summary>The pod's status code, once its answer came.</summary>
    public int? Status { get; private set; }

    /// <inheritdoc/>
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix,
        CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        var request = httpContext.Request;
        foreach (var name in ForwardedHeaders)
        {
            proxyRequest.Headers.Remove(name);
        }

        if (!passCredentials)
        {
            foreach (var name in CredentialHeaders)
            {
                proxyRequest.Headers.Remove(name);
            }
        }

        if (httpContext.Connection.RemoteIpAddress is { } client)
        {
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For", client.ToString());
        }

        proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        if (request.Host.HasValue)
        {
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.Value);
        }

        if (prefix.HasValue)
        {
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Prefix", prefix.Value);
        }

        proxyRequest.RequestUri = RequestUtilities.MakeDestinationAddress(destinationPrefix, PodPath(request.Path, prefix), request.QueryString);
    }

    /// <inheritdoc/>
    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (proxyResponse is null)
        {
            // No answer (the forwarder reports why); the gateway writes its own.
            return false;
        }

        Status = (int)proxyResponse.StatusCode;
        Failure = AttemptOutcome.Classify(null, proxyResponse);
        if (Failure != AttemptFailure.None && willRetry(Failure))
        {
            // The forwarder set the status already; put it back so the next attempt starts from a clean response.
            Declined = true;
            httpContext.Response.StatusCode = StatusCodes.Status200OK;
            if (httpContext.Features.Get<IHttpResponseFeature>() is { } response)
            {
                response.ReasonPhrase = null;
            }

            return false;
        }

        var copy = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        stamp(httpContext.Response);
        return copy;
    }

    /// <summary>The path the pod sees: the request's path without the invocation's prefix, "/" when nothing is left.</summary>
    internal static PathString PodPath(PathString path, PathString prefix) =>
        path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase, out var rest) && rest.HasValue ? rest : new PathString("/");
}
