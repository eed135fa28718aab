namespace Pilotlight.Testing;

/// <summary>
/// kubectl against one kubeconfig. Client-side validation is off: kubectl
/// here is newer than the 1.20 API server and its OpenAPI v3 lookups fail;
/// the server's own schema validation is what the tests exercise.
/// </summary>
public sealed class Kubectl(string kubeconfig)
{
    /// <summary>Runs kubectl with <paramref name="args"/> (and <paramref name="stdin"/>).</summary>
    public Task<CommandResult> RunAsync(IReadOnlyList<string> args, string? stdin = null, CancellationToken cancellationToken = default)
    {
        var all = new List<string> { $"--kubeconfig={kubeconfig}" };
        all.AddRange(args);
        if (args.Count > 0 && args[0] is "apply" or "create" or "replace")
        {
            all.Add("--validate=false");
        }

        return ProcessRunner.RunAsync("kubectl", all, null, stdin, cancellationToken);
    }

    /// <summary>Applies a YAML document in <paramref name="namespace"/>.</summary>
    public Task<CommandResult> ApplyAsync(string yaml, string? @namespace = null, CancellationToken cancellationToken = default) =>
        RunAsync(@namespace is null ? ["apply", "-f", "-"] : ["apply", "-n", @namespace, "-f", "-"], yaml, cancellationToken);
}
