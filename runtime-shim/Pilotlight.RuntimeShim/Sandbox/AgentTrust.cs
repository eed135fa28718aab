using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// Whom a sandbox agent answers: a caller whose TLS client certificate chains to the CA it was given (the gateway's
/// issuer; only its public certificate is in the pod, so the sandbox holds nothing that could mint one), and who names
/// this pod: the namespace and pod UID in <see cref="NamespaceHeader"/> and <see cref="PodUidHeader"/> must be this
/// pod's own (downward API), so a certificate good for one sandbox is not good for another, and a stale endpoint or
/// a reused pod IP is refused. <c>/ready</c> needs neither (the kubelet's probe has no certificate).
/// </summary>
public sealed class AgentTrust
{
    /// <summary>Header with the namespace of the sandbox the caller means.</summary>
    public const string NamespaceHeader = "X-Pilotlight-Sandbox-Namespace";

    /// <summary>Header with the UID of the pod the caller means.</summary>
    public const string PodUidHeader = "X-Pilotlight-Pod-Uid";

    /// <summary>The extended key usage a client certificate must allow (TLS client authentication).</summary>
    private const string ClientAuthentication = "1.3.6.1.5.5.7.3.2";

    private readonly X509Certificate2Collection _authorities;

    /// <summary>Trust in the CAs of <paramref name="authoritiesPem"/> for a pod <paramref name="podUid"/> in <paramref name="podNamespace"/>.</summary>
    public AgentTrust(string authoritiesPem, string podNamespace, string podUid)
    {
        _authorities = new X509Certificate2Collection();
        _authorities.ImportFromPem(authoritiesPem);
        if (_authorities.Count == 0)
        {
            throw new CryptographicException("no certificate in the PEM");
        }

        Namespace = podNamespace;
        PodUid = podUid;
    }

    /// <summary>This pod's namespace.</summary>
    public string Namespace { get; }

    /// <summary>This pod's UID.</summary>
    public string PodUid { get; }

    /// <summary>True when <paramref name="certificate"/> is a client certificate issued by one of the trusted CAs and valid now.</summary>
    public bool Accepts(X509Certificate2? certificate)
    {
        if (certificate is null
            || certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault() is not { } usage
            || !usage.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Any(o => o.Value == ClientAuthentication))
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        return chain.Build(certificate);
    }

    /// <summary>Null when the request names this pod; otherwise why not.</summary>
    public string? Mismatch(string? podNamespace, string? podUid) =>
        podNamespace != Namespace || podUid != PodUid
            ? $"this agent serves pod {PodUid} in {Namespace}; the caller asked for {podUid ?? "no pod"} in {podNamespace ?? "no namespace"}"
            : null;
}
