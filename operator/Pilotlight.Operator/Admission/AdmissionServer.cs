using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace Pilotlight.Operator.Admission;

/// <summary>
/// Serves <see cref="AdmissionWebhook"/> over HTTPS with the certificate <see cref="WebhookCertificates"/> keeps,
/// at <c>POST /validate</c>. Every operator replica serves it, leader or not, so admission does not wait on an election.
/// </summary>
public static class AdmissionServer
{
    /// <summary>The path the webhook configuration names.</summary>
    public const string Path = "/validate";

    /// <summary>The largest AdmissionReview read (the API server's own request limit is 3 MiB of object).</summary>
    private const long MaxReviewBytes = 8 * 1024 * 1024;

    /// <summary>
    /// Loads (or creates) the certificate, then starts listening on <paramref name="address"/>:<paramref name="port"/>.
    /// The certificate is re-checked every <paramref name="recheck"/> in the background and swapped in without a restart.
    /// </summary>
    public static async Task<WebApplication> StartAsync(AdmissionWebhook webhook, WebhookCertificates certificates, IPAddress address, int port,
        TimeSpan recheck, CancellationToken stopping)
    {
        ArgumentNullException.ThrowIfNull(webhook);
        ArgumentNullException.ThrowIfNull(certificates);
        await certificates.EnsureAsync(stopping).ConfigureAwait(false);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = MaxReviewBytes;
            kestrel.Listen(address, port, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificateSelector = (_, _) => certificates.Current,
            }));
        });
        var app = builder.Build();
        app.MapPost(Path, async (HttpContext context) =>
        {
            JsonDocument review;
            try
            {
                review = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            }
            catch (JsonException)
            {
                return Results.Text("the body is not an AdmissionReview\n", statusCode: StatusCodes.Status400BadRequest);
            }

            using (review)
            {
                return Results.Text(webhook.Review(review.RootElement).ToJsonString(), "application/json");
            }
        });
        app.MapGet("/healthz", () => "ok");
        await app.StartAsync(stopping).ConfigureAwait(false);
        _ = certificates.RunAsync(recheck, stopping);
        return app;
    }
}
