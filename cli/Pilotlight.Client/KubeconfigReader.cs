using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using k8s;
using YamlDotNet.RepresentationModel;

namespace Pilotlight.Client;

/// <summary>
/// Reads a kubeconfig without reflection, so it works in a NativeAOT binary (KubernetesClient's own loader
/// deserialises YAML into its models by reflection and fails there). Supports server, CA (data or file),
/// insecure-skip-tls-verify, bearer tokens (inline or tokenFile), client certificates and keys (data or files)
/// and exec credential plugins (run once, their token used).
/// </summary>
public static class KubeconfigReader
{
    /// <summary>The settings of <paramref name="context"/> (else the current context) of the kubeconfig at <paramref name="path"/>.</summary>
    public static KubernetesClientConfiguration Load(string path, string? context = null) =>
        Parse(File.ReadAllText(path), Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", context);

    /// <summary>The settings of a kubeconfig's text; relative file paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static KubernetesClientConfiguration Parse(string yaml, string baseDirectory, string? context = null)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new PilotlightClientException("The kubeconfig is empty or not a YAML mapping.", "Check the file, or point --kubeconfig at another one.");
        }

        var contextName = context ?? Scalar(root, "current-context");
        if (string.IsNullOrEmpty(contextName))
        {
            throw new PilotlightClientException("The kubeconfig has no current context.", "Pass --context NAME, or run kubectl config use-context NAME.");
        }

        var ctx = Named(root, "contexts", contextName, "context")
            ?? throw new PilotlightClientException($"The kubeconfig has no context '{contextName}'.", "List them with kubectl config get-contexts.");
        var clusterName = Scalar(ctx, "cluster");
        var cluster = clusterName is null ? null : Named(root, "clusters", clusterName, "cluster");
        if (cluster is null || Scalar(cluster, "server") is not { Length: > 0 } server)
        {
            throw new PilotlightClientException($"Context '{contextName}' names no cluster with a server.", "Fix the context's cluster in the kubeconfig.");
        }

        var config = new KubernetesClientConfiguration
        {
            Host = server,
            Namespace = Scalar(ctx, "namespace"),
            SkipTlsVerify = Scalar(cluster, "insecure-skip-tls-verify") is "true",
            TlsServerName = Scalar(cluster, "tls-server-name"),
        };

        if (Bytes(cluster, "certificate-authority-data", "certificate-authority", baseDirectory) is { } ca)
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPem(System.Text.Encoding.UTF8.GetString(ca));
            config.SslCaCerts = certificates;
        }

        var userName = Scalar(ctx, "user");
        if (userName is not null && Named(root, "users", userName, "user") is { } user)
        {
            config.AccessToken = Scalar(user, "token");
            if (config.AccessToken is null && Scalar(user, "tokenFile") is { } tokenFile)
            {
                config.AccessToken = File.ReadAllText(Resolve(tokenFile, baseDirectory)).Trim();
            }

            config.Username = Scalar(user, "username");
            config.Password = Scalar(user, "password");
            if (Scalar(user, "client-certificate-data") is { } certData)
            {
                config.ClientCertificateData = certData;
            }
            else if (Scalar(user, "client-certificate") is { } certFile)
            {
                config.ClientCertificateFilePath = Resolve(certFile, baseDirectory);
            }

            if (Scalar(user, "client-key-data") is { } keyData)
            {
                config.ClientCertificateKeyData = keyData;
            }
            else if (Scalar(user, "client-key") is { } keyFile)
            {
                config.ClientKeyFilePath = Resolve(keyFile, baseDirectory);
            }

            if (config.AccessToken is null && Child(user, "exec") is YamlMappingNode exec)
            {
                config.AccessToken = RunExecPlugin(exec);
            }
        }

        return config;
    }

    /// <summary>Runs an exec credential plugin and returns the token of its ExecCredential.</summary>
    private static string RunExecPlugin(YamlMappingNode exec)
    {
        var command = Scalar(exec, "command")
            ?? throw new PilotlightClientException("The kubeconfig's exec plugin names no command.", "Fix users[].user.exec.command in the kubeconfig.");
        var start = new ProcessStartInfo(command) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Child(exec, "args") is YamlSequenceNode args)
        {
            foreach (var a in args.Children.OfType<YamlScalarNode>())
            {
                start.ArgumentList.Add(a.Value ?? "");
            }
        }

        if (Child(exec, "env") is YamlSequenceNode env)
        {
            foreach (var e in env.Children.OfType<YamlMappingNode>())
            {
                if (Scalar(e, "name") is { } name)
                {
                    start.Environment[name] = Scalar(e, "value") ?? "";
                }
            }
        }

        start.Environment["KUBERNETES_EXEC_INFO"] =
            "{\"apiVersion\":\"" + (Scalar(exec, "apiVersion") ?? "client.authentication.k8s.io/v1") + "\",\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}";
        string output;
        try
        {
            using var process = Process.Start(start)!;
            output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new PilotlightClientException($"The kubeconfig's exec plugin '{command}' exited with {process.ExitCode}.", "Run it by hand to see why (often: log in again).");
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new PilotlightClientException($"The kubeconfig's exec plugin '{command}' could not be started: {e.Message}", "Install it or put it on PATH.");
        }

        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.TryGetProperty("status", out var status) && status.TryGetProperty("token", out var token) && token.GetString() is { } t
            ? t
            : throw new PilotlightClientException($"The exec plugin '{command}' returned no token.", "Client certificates from exec plugins are not supported; use a token.");
    }

    private static string Resolve(string path, string baseDirectory) => Path.IsPathRooted(path) ? path : Path.Combine(baseDirectory, path);

    private static byte[]? Bytes(YamlMappingNode node, string dataKey, string fileKey, string baseDirectory) =>
        Scalar(node, dataKey) is { } data ? Convert.FromBase64String(data)
        : Scalar(node, fileKey) is { } file ? File.ReadAllBytes(Resolve(file, baseDirectory))
        : null;

    private static YamlNode? Child(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private static string? Scalar(YamlMappingNode node, string key) =>
        Child(node, key) is YamlScalarNode { Value: { Length: > 0 } v } ? v : null;

    private static YamlMappingNode? Named(YamlMappingNode root, string list, string name, string field) =>
        Child(root, list) is YamlSequenceNode items
            ? items.Children.OfType<YamlMappingNode>().Where(i => Scalar(i, "name") == name).Select(i => Child(i, field) as YamlMappingNode).FirstOrDefault()
            : null;
}
