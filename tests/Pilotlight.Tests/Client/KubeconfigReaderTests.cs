using Pilotlight.Client;

namespace Pilotlight.Tests.Client;

public class KubeconfigReaderTests
{
    private static string Config(string user, string cluster = "    server: https://10.0.0.1:6443") => $"""
        apiVersion: v1
        kind: Config
        clusters:
        - name: c1
          cluster:
        {cluster}
        users:
        - name: u1
          user:
        {user}
        contexts:
        - name: one
          context: {"{"}cluster: c1, user: u1, namespace: team-a{"}"}
        - name: two
          context: {"{"}cluster: c1, user: u1{"}"}
        current-context: one
        """;

    [Test]
    public void A_token_user_gives_the_server_token_and_the_contexts_namespace()
    {
        var config = KubeconfigReader.Parse(Config("    token: abc123"), "/tmp");
        Assert.That((config.Host, config.AccessToken, config.Namespace, config.SkipTlsVerify), Is.EqualTo(("https://10.0.0.1:6443", "abc123", "team-a", false)));
    }

    [Test]
    public void Another_context_is_chosen_by_name()
    {
        var config = KubeconfigReader.Parse(Config("    token: abc123"), "/tmp", "two");
        Assert.That(config.Namespace, Is.Null);
    }

    [Test]
    public void Client_certificate_files_resolve_against_the_kubeconfigs_directory_and_data_is_kept()
    {
        var files = KubeconfigReader.Parse(Config("    client-certificate: certs/me.crt\n    client-key: /abs/me.key"), "/home/u/.kube");
        Assert.That((files.ClientCertificateFilePath, files.ClientKeyFilePath), Is.EqualTo(("/home/u/.kube/certs/me.crt", "/abs/me.key")));
        var data = KubeconfigReader.Parse(Config("    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ"), "/tmp");
        Assert.That((data.ClientCertificateData, data.ClientCertificateKeyData), Is.EqualTo(("Q0VSVA==", "S0VZ")));
    }

    [Test]
    public void Insecure_skip_tls_verify_and_a_ca_file_are_read()
    {
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=test-ca", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var dir = Directory.CreateTempSubdirectory("kubeconfig").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "ca.crt"), ca.ExportCertificatePem());
            var config = KubeconfigReader.Parse(Config("    token: t", "    server: https://h:6443\n    certificate-authority: ca.crt\n    insecure-skip-tls-verify: true"), dir);
            Assert.That(config.SkipTlsVerify, Is.True);
            Assert.That(config.SslCaCerts?.Single().Subject, Is.EqualTo("CN=test-ca"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void An_exec_plugins_token_is_used()
    {
        var config = KubeconfigReader.Parse(Config("""
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: /bin/sh
                  args: ["-c", "echo '{\"kind\":\"ExecCredential\",\"status\":{\"token\":\"'$SECRET'\"}}'"]
                  env: [{name: SECRET, value: from-plugin}]
            """), "/tmp");
        Assert.That(config.AccessToken, Is.EqualTo("from-plugin"));
    }

    [Test]
    public void A_missing_context_is_an_actionable_error()
    {
        var e = Assert.Throws<PilotlightClientException>(() => KubeconfigReader.Parse(Config("    token: t"), "/tmp", "nope"));
        Assert.That((e!.Message, e.Hint), Is.EqualTo(("The kubeconfig has no context 'nope'.", "List them with kubectl config get-contexts.")));
    }
}
