using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Pilotlight.Testing;

/// <summary>Where a container's log is: its CRI-format file, and whether the instance writing it still runs.</summary>
/// <param name="Path">The file (may not exist yet: an empty log).</param>
/// <param name="Running">True while the container instance writing it runs; a follow ends when it stops.</param>
public sealed record ContainerLogSource(string? Path, Func<bool> Running);

/// <summary>
/// The part of a kubelet's HTTPS server the API server's <c>pods/log</c> proxies to:
/// <c>GET /containerLogs/{namespace}/{pod}/{container}</c> with <c>follow</c>, <c>sinceSeconds</c>, <c>sinceTime</c>,
/// <c>timestamps</c> and <c>tailLines</c>, read from CRI-format files (<c>time stream F text</c> lines). Self-signed
/// TLS: the API server does not verify a kubelet's certificate unless given <c>--kubelet-certificate-authority</c>.
/// </summary>
public sealed class ContainerLogServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping;

    private ContainerLogServer(WebApplication app, int port, CancellationTokenSource stopping)
    {
        _app = app;
        Port = port;
        _stopping = stopping;
    }

    /// <summary>The port on 127.0.0.1 (what nodes report as their kubelet endpoint).</summary>
    public int Port { get; }

    /// <summary>Starts serving; <paramref name="resolve"/> maps namespace, pod and container to a log, or null for an unknown pod.</summary>
    public static async Task<ContainerLogServer> StartAsync(Func<string, string, string, ContainerLogSource?> resolve, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var certificate = SelfSigned();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o =>
        {
            o.Protocols = HttpProtocols.Http1;
            o.UseHttps(certificate);
        }));
        var app = builder.Build();
        // Ends follows when the server stops, rather than holding its shutdown until their clients go.
        var stopping = new CancellationTokenSource();
        app.MapGet("/containerLogs/{ns}/{pod}/{container}", (HttpContext context, string ns, string pod, string container) =>
            ServeAsync(context, resolve(ns, pod, container), stopping.Token));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var port = new Uri(app.Urls.First()).Port;
        return new ContainerLogServer(app, port, stopping);
    }

    private static async Task ServeAsync(HttpContext context, ContainerLogSource? source, CancellationToken stopping)
    {
        var response = context.Response;
        if (source is null)
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            await response.WriteAsync("pod not found").ConfigureAwait(false);
            return;
        }

        var query = context.Request.Query;
        var follow = Flag(query["follow"]);
        var timestamps = Flag(query["timestamps"]);
        DateTime? since = null;
        if (int.TryParse(query["sinceSeconds"], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            since = DateTime.UtcNow.AddSeconds(-seconds);
        }
        else if (DateTime.TryParse(query["sinceTime"], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var time))
        {
            since = time;
        }

        int? tail = int.TryParse(query["tailLines"], NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : null;
        response.ContentType = "text/plain";
        using var done = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        try
        {
            await response.StartAsync(done.Token).ConfigureAwait(false);
            await CopyAsync(source, follow, timestamps, since, tail, response, done.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The client went away.
        }
    }

    private static bool Flag(string? value) => value is "true" or "1" or "True";

    private static async Task CopyAsync(ContainerLogSource source, bool follow, bool timestamps, DateTime? since, int? tail,
        HttpResponse response, CancellationToken ct)
    {
        FileStream? file = null;
        var pending = new List<byte>();
        var buffer = new byte[16 * 1024];
        var first = true;
        try
        {
            while (true)
            {
                // Whether it ran before this read: if not, what the read finds is all it will ever write.
                var running = source.Running();
                if (file is null && source.Path is { } path && File.Exists(path))
                {
                    file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                }

                var lines = new List<string>();
                int read;
                while (file is not null && (read = await file.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    pending.AddRange(buffer.AsSpan(0, read));
                    int newline;
                    while ((newline = pending.IndexOf((byte)'\n')) >= 0)
                    {
                        lines.Add(Encoding.UTF8.GetString(pending.GetRange(0, newline).ToArray()));
                        pending.RemoveRange(0, newline + 1);
                    }
                }

                var shown = lines.Select(Parse).Where(l => l is not null && (since is null || l.Value.Time >= since)).Select(l => l!.Value).ToList();
                if (first && tail is { } n)
                {
                    shown = shown.TakeLast(n).ToList();
                }

                first = false;
                if (shown.Count > 0)
                {
                    var text = new StringBuilder();
                    foreach (var (time, line) in shown)
                    {
                        if (timestamps)
                        {
                            text.Append(time.ToString("yyyy-MM-ddTHH:mm:ss.fffffff", CultureInfo.InvariantCulture)).Append("Z ");
                        }

                        text.Append(line).Append('\n');
                    }

                    await response.WriteAsync(text.ToString(), ct).ConfigureAwait(false);
                    await response.Body.FlushAsync(ct).ConfigureAwait(false);
                }

                if (!follow || !running)
                {
                    return;
                }

                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            if (file is not null)
            {
                await file.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>A CRI log line: <c>time stream tag text</c>; null when it is not one.</summary>
    internal static (DateTime Time, string Text)? Parse(string line)
    {
        var parts = line.Split(' ', 4);
        if (parts.Length < 3 || !DateTime.TryParse(parts[0], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var time))
        {
            return null;
        }

        return (time, parts.Length == 4 ? parts[3] : "");
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=pilotlight-simulated-kubelet", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(3));
        // Exported and loaded again, so the key is usable by the TLS stack on every platform.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
