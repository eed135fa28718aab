using System.Security.Cryptography.X509Certificates;
using System.Text;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Admission;

namespace Pilotlight.Tests.Operator.Admission;

public sealed class WebhookCertificatesTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 8, 0, 0, TimeSpan.Zero);

    private static WebhookCertificates Certificates(params string[] hosts) => new(null!, new WebhookCertificateOptions
    {
        Secret = new ObjectKey("pilotlight-system", "webhook-tls"),
        Hosts = hosts.Length == 0 ? ["pilotlight-webhook.pilotlight-system.svc", "127.0.0.1"] : hosts,
    });

    private static X509Certificate2 Cert(IDictionary<string, byte[]> data, string key) => X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(data[key]));

    [Test]
    public void A_missing_secret_gets_a_CA_and_a_serving_certificate_it_signed_for_every_host()
    {
        var data = Certificates().Plan(null, Now)!;

        using var ca = Cert(data, "ca.crt");
        using var leaf = Cert(data, "tls.crt");
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = Now.UtcDateTime.AddMinutes(1);
        Assert.Multiple(() =>
        {
            Assert.That(chain.Build(leaf), Is.True, string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
            var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
            Assert.That(names.EnumerateDnsNames(), Is.EqualTo(new[] { "pilotlight-webhook.pilotlight-system.svc" }));
            Assert.That(names.EnumerateIPAddresses().Select(ip => ip.ToString()), Is.EqualTo(new[] { "127.0.0.1" }));
            Assert.That(Encoding.ASCII.GetString(data["tls.key"]), Does.StartWith("-----BEGIN PRIVATE KEY-----"));
        });
    }

    [Test]
    public void A_good_certificate_is_kept()
    {
        var certificates = Certificates();
        var data = certificates.Plan(null, Now)!;

        Assert.That(certificates.Plan(data, Now.AddDays(300)), Is.Null);
    }

    [Test]
    public void A_serving_certificate_near_its_end_is_renewed_under_the_same_CA()
    {
        var certificates = Certificates();
        var data = certificates.Plan(null, Now)!;

        var renewed = certificates.Plan(data, Now.AddDays(340))!;

        Assert.That(renewed["ca.crt"], Is.EqualTo(data["ca.crt"]), "the caBundle the API server trusts stays valid");
        using var leaf = Cert(renewed, "tls.crt");
        Assert.That(leaf.NotAfter.ToUniversalTime(), Is.GreaterThan(Now.AddDays(700).UtcDateTime));
    }

    [Test]
    public void New_hosts_or_a_CA_near_its_end_give_new_certificates()
    {
        var data = Certificates().Plan(null, Now)!;

        var moved = Certificates("webhook.other.svc").Plan(data, Now)!;
        var aged = Certificates().Plan(data, Now.AddDays(3640))!;

        Assert.Multiple(() =>
        {
            Assert.That(moved["ca.crt"], Is.EqualTo(data["ca.crt"]));
            Assert.That(moved["tls.crt"], Is.Not.EqualTo(data["tls.crt"]));
            Assert.That(aged["ca.crt"], Is.Not.EqualTo(data["ca.crt"]));
        });
    }

    [Test]
    public void Garbage_in_the_secret_is_replaced_not_thrown()
    {
        var data = new Dictionary<string, byte[]> { ["ca.crt"] = "junk"u8.ToArray(), ["ca.key"] = [1, 2], ["tls.crt"] = [], ["tls.key"] = [] };

        Assert.That(Certificates().Plan(data, Now), Is.Not.Null);
    }
}
