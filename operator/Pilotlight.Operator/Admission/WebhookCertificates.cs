using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Admission;

/// <summary>Where the webhook's certificate lives and what it must name.</summary>
public sealed record WebhookCertificateOptions
{
    /// <summary>The Secret holding the CA and the serving certificate, shared by every operator replica.</summary>
    public required ObjectKey Secret { get; init; }

    /// <summary>DNS names (and IP addresses) the API server reaches the webhook by: the Service's <c>NAME.NS.svc</c>.</summary>
    public required IReadOnlyList<string> Hosts { get; init; }

    /// <summary>The ValidatingWebhookConfiguration whose <c>caBundle</c> is kept equal to the CA; null leaves it alone.</summary>
    public string? Configuration { get; init; }

    /// <summary>How long a serving certificate is valid.</summary>
    public TimeSpan Validity { get; init; } = TimeSpan.FromDays(365);

    /// <summary>A serving certificate this close to its end is replaced.</summary>
    public TimeSpan RenewBefore { get; init; } = TimeSpan.FromDays(30);

    /// <summary>How long the CA is valid; it is replaced, with the serving certificate, this close to its end too.</summary>
    public TimeSpan CaValidity { get; init; } = TimeSpan.FromDays(3650);

    /// <summary>The CA's common name.</summary>
    public string CaName { get; init; } = "pilotlight-webhook-ca";

    /// <summary>
    /// Issue a TLS client certificate (named by the first of <see cref="Hosts"/>) instead of a serving one: the
    /// gateway's certificate towards sandbox agents, which trust the CA.
    /// </summary>
    public bool ClientAuthentication { get; init; }
}

/// <summary>
/// The admission webhook's TLS, managed by the operator as KEDA and Knative do: a CA and a serving certificate in a
/// Secret that every replica shares (the first to start creates it; creation and renewal are conditional writes,
/// so replicas agree), the CA copied into the webhook configuration's <c>caBundle</c>, and the serving certificate
/// renewed <see cref="WebhookCertificateOptions.RenewBefore"/> its end. The private keys stay in the Secret and
/// process memory; nothing logs them.
/// </summary>
public sealed class WebhookCertificates(IKubernetes client, WebhookCertificateOptions options, TimeProvider? time = null, ILogger? logger = null)
{
    private const string CaCert = "ca.crt";
    private const string CaKey = "ca.key";
    private const string TlsCert = "tls.crt";
    private const string TlsKey = "tls.key";

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private volatile X509Certificate2? _current;
    private string? _caPem;

    /// <summary>The serving certificate with its key, for Kestrel's certificate selector; null before the first <see cref="EnsureAsync"/>.</summary>
    public X509Certificate2? Current => _current;

    /// <summary>The CA's PEM, as it goes into <c>caBundle</c>.</summary>
    public string? CaPem => _caPem;

    /// <summary>
    /// Reads the Secret, creates or renews what is missing or ending, loads the serving certificate and brings the
    /// webhook configuration's caBundle up to date.
    /// </summary>
    public async Task EnsureAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var secret = await ReadAsync(cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            var wanted = Plan(secret?.Data, now);
            if (wanted is null)
            {
                Load(secret!.Data);
                break;
            }

            try
            {
                if (secret is null)
                {
                    await client.CoreV1.CreateNamespacedSecretAsync(new V1Secret
                    {
                        Metadata = new V1ObjectMeta { Name = options.Secret.Name, Labels = new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "pilotlight" } },
                        Type = "Opaque",
                        Data = wanted,
                    }, options.Secret.Namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
                    _logger.LogInformation("Created the certificate in {Secret}", options.Secret);
                }
                else
                {
                    secret.Data = wanted;
                    await client.CoreV1.ReplaceNamespacedSecretAsync(secret, options.Secret.Name, options.Secret.Namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
                    _logger.LogInformation("Renewed the certificate in {Secret}", options.Secret);
                }

                Load(wanted);
                break;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 5)
            {
                // Another replica created or renewed it first: read theirs.
            }
        }

        if (options.Configuration is { } configuration)
        {
            await PublishCaAsync(configuration, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs <see cref="EnsureAsync"/> every <paramref name="period"/> until cancelled, logging failures (the last certificate stays in use).</summary>
    public async Task RunAsync(TimeSpan period, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(period, _time, cancellationToken).ConfigureAwait(false);
                await EnsureAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or CryptographicException)
            {
                _logger.LogWarning("Webhook certificate check failed: {Message}", ex.Message);
            }
        }
    }

    /// <summary>
    /// The Secret's new data when it lacks a usable CA or serving certificate for <see cref="WebhookCertificateOptions.Hosts"/>
    /// or either ends within <see cref="WebhookCertificateOptions.RenewBefore"/> of <paramref name="now"/>; null when it is fine.
    /// A renewed serving certificate keeps the CA, so the caBundle the API server trusts stays valid throughout.
    /// </summary>
    public IDictionary<string, byte[]>? Plan(IDictionary<string, byte[]>? data, DateTimeOffset now)
    {
        using var ca = TryLoad(data, CaCert, CaKey);
        var caUsable = ca is not null && ca.NotAfter.ToUniversalTime() - options.RenewBefore > now.UtcDateTime && ca.NotBefore.ToUniversalTime() <= now.UtcDateTime;
        using var leaf = TryLoad(data, TlsCert, TlsKey);
        var leafUsable = caUsable && leaf is not null
            && leaf.NotAfter.ToUniversalTime() - options.RenewBefore > now.UtcDateTime
            && leaf.NotBefore.ToUniversalTime() <= now.UtcDateTime
            && leaf.Issuer == ca!.Subject
            && Names(leaf).SetEquals(options.Hosts);
        if (caUsable && leafUsable)
        {
            return null;
        }

        var (caPem, caKeyPem) = caUsable
            ? (Encoding.ASCII.GetString(data![CaCert]), Encoding.ASCII.GetString(data[CaKey]))
            : NewCa(now);
        using var issuer = X509Certificate2.CreateFromPem(caPem, caKeyPem);
        var (tlsPem, tlsKeyPem) = NewLeaf(issuer, now);
        return new Dictionary<string, byte[]>
        {
            [CaCert] = Encoding.ASCII.GetBytes(caPem),
            [CaKey] = Encoding.ASCII.GetBytes(caKeyPem),
            [TlsCert] = Encoding.ASCII.GetBytes(tlsPem),
            [TlsKey] = Encoding.ASCII.GetBytes(tlsKeyPem),
        };
    }

    private (string Cert, string Key) NewCa(DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={options.CaName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var cert = request.CreateSelfSigned(now.AddMinutes(-5), now + options.CaValidity);
        return (cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private (string Cert, string Key) NewLeaf(X509Certificate2 issuer, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={options.Hosts.FirstOrDefault() ?? "pilotlight-webhook"}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        foreach (var host in options.Hosts)
        {
            if (IPAddress.TryParse(host, out var ip))
            {
                names.AddIpAddress(ip);
            }
            else
            {
                names.AddDnsName(host);
            }
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        // Server authentication, or client authentication for the gateway's certificate towards sandbox agents.
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(options.ClientAuthentication ? "1.3.6.1.5.5.7.3.2" : "1.3.6.1.5.5.7.3.1")], false));
        var notAfter = now + options.Validity;
        if (notAfter > issuer.NotAfter.ToUniversalTime())
        {
            notAfter = issuer.NotAfter.ToUniversalTime();
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f; // positive
        using var cert = request.Create(issuer, now.AddMinutes(-5), notAfter, serial);
        return (cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private void Load(IDictionary<string, byte[]> data)
    {
        var pem = X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(data[TlsCert]), Encoding.ASCII.GetString(data[TlsKey]));
        var previous = _current;
        if (previous is not null && previous.Thumbprint == pem.Thumbprint)
        {
            pem.Dispose();
        }
        else
        {
            _current = pem;
        }

        _caPem = Encoding.ASCII.GetString(data[CaCert]);
    }

    private async Task PublishCaAsync(string name, CancellationToken cancellationToken)
    {
        var bundle = Encoding.ASCII.GetBytes(_caPem!);
        for (var attempt = 0; ; attempt++)
        {
            var configuration = await client.AdmissionregistrationV1.ReadValidatingWebhookConfigurationAsync(name, cancellationToken: cancellationToken).ConfigureAwait(false);
            var stale = configuration.Webhooks?.Where(w => w.ClientConfig.CaBundle is not { } have || !have.SequenceEqual(bundle)).ToList() ?? [];
            if (stale.Count == 0)
            {
                return;
            }

            foreach (var webhook in stale)
            {
                webhook.ClientConfig.CaBundle = bundle;
            }

            try
            {
                await client.AdmissionregistrationV1.ReplaceValidatingWebhookConfigurationAsync(configuration, name, cancellationToken: cancellationToken).ConfigureAwait(false);
                _logger.LogInformation("Set the CA of {Configuration}", name);
                return;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 5)
            {
            }
        }
    }

    private async Task<V1Secret?> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await client.CoreV1.ReadNamespacedSecretAsync(options.Secret.Name, options.Secret.Namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private static X509Certificate2? TryLoad(IDictionary<string, byte[]>? data, string cert, string key)
    {
        if (data is null || !data.TryGetValue(cert, out var c) || !data.TryGetValue(key, out var k))
        {
            return null;
        }

        try
        {
            return X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(c), Encoding.ASCII.GetString(k));
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    private static HashSet<string> Names(X509Certificate2 cert)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var extension in cert.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            names.UnionWith(extension.EnumerateDnsNames());
            names.UnionWith(extension.EnumerateIPAddresses().Select(ip => ip.ToString()));
        }

        return names;
    }
}
