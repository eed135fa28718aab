using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Pilotlight.Gateway;

/// <summary>
/// What YARP's forwarder does to a sandbox's interactive exec (<c>exec/ws</c>, a WebSocket upgrade) on its way to
/// the agent: the path becomes the agent's <c>/exec/ws</c>; the caller's credentials (<c>Authorization</c>,
/// <c>Cookie</c>: the gateway checked them, the sandbox's code must never see them) and forwarding headers are
/// dropped; the pod the call is for is named, as for every other sandbox call, so its agent refuses one meant for
/// another pod.
/// </summary>
/// <param name="target">The agent's <c>exec/ws</c> address.</param>
/// <param name="ns">The sandbox pod's namespace.</param>
/// <param name="podUid">The sandbox pod's UID.</param>
internal sealed class SandboxSocketTransformer(Uri target, string ns, string podUid) : HttpTransformer
{
    /// <summary>Request headers never passed from the caller to an agent.</summary>
    internal static readonly string[] DroppedHeaders =
        [.. InvocationTransformer.CredentialHeaders, .. InvocationTransformer.ForwardedHeaders, "Proxy-Authorization", SandboxApi.NamespaceHeader, SandboxApi.PodUidHeader];

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix,
        CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        foreach (var header in DroppedHeaders)
        {
            proxyRequest.Headers.Remove(header);
        }

        proxyRequest.Headers.TryAddWithoutValidation(SandboxApi.NamespaceHeader, ns);
        proxyRequest.Headers.TryAddWithoutValidation(SandboxApi.PodUidHeader, podUid);
        proxyRequest.RequestUri = target;
    }
}
