using Microsoft.AspNetCore.Http;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public sealed class SandboxSocketTransformerTests
{
    [Test]
    public async Task TheCallersCredentialsAndForgedPodHeadersNeverReachTheAgent()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Path = "/_sandbox/ns/box/exec/ws";
        context.Request.Headers.Authorization = "Bearer secret";
        context.Request.Headers.Cookie = "session=secret";
        context.Request.Headers["X-Pilotlight-Pod-Uid"] = "forged";
        context.Request.Headers["X-Forwarded-For"] = "1.2.3.4";
        context.Request.Headers["Sec-WebSocket-Protocol"] = "kept";
        using var request = new HttpRequestMessage();
        var target = new Uri("https://10.0.0.9:8081/exec/ws");

        await new SandboxSocketTransformer(target, "ns", "uid-1").TransformRequestAsync(context, request, "https://10.0.0.9:8081", CancellationToken.None);

        Assert.That(request.RequestUri, Is.EqualTo(target));
        Assert.That(request.Headers.Contains("Authorization"), Is.False);
        Assert.That(request.Headers.Contains("Cookie"), Is.False);
        Assert.That(request.Headers.Contains("X-Forwarded-For"), Is.False);
        Assert.That(request.Headers.GetValues("X-Pilotlight-Pod-Uid"), Is.EqualTo(new[] { "uid-1" }));
        Assert.That(request.Headers.GetValues("X-Pilotlight-Sandbox-Namespace"), Is.EqualTo(new[] { "ns" }));
        Assert.That(request.Headers.GetValues("Sec-WebSocket-Protocol"), Is.EqualTo(new[] { "kept" }));
    }
}
