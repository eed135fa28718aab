using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Pilotlight.Gateway;

/// <summary>
/// A certificate and key read from PEM files (a mounted Secret), read again once the files changed, at most every
/// <see cref="CheckEvery"/>: the kubelet swaps a Secret volume's files in place when the operator renews the Secret.
/// A read that fails keeps the certificate already loaded.
/// </summary>
public sealed class CertificateFiles(string certificatePath, string keyPath, TimeProvider? time = null)
{
    /// <summary>How often the files' times are looked at.</summary>
    public static readonly TimeSpan CheckEvery = TimeSpan.FromSeconds(30);

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private X509Certificate2? _current;
    private DateTime _loadedFrom;
    private DateTimeOffset _checkedAt = DateTimeOffset.MinValue;

    /// <summary>The certificate now; null while the files cannot be read and none was before.</summary>
    public X509Certificate2? Current()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            if (_current is not null && now - _checkedAt < CheckEvery)
            {
                return _current;
            }

            _checkedAt = now;
            try
            {
                var written = new[] { File.GetLastWriteTimeUtc(certificatePath), File.GetLastWriteTimeUtc(keyPath) }.Max();
                if (_current is null || written != _loadedFrom)
                {
                    using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
                    // Through PKCS#12 so that the key is usable by the TLS stack.
                    _current = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
                    _loadedFrom = written;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                // Half-swapped or missing: keep what there is, and look again at the next check.
            }

            return _current;
        }
    }
}
