namespace Pilotlight.Testing;

/// <summary>
/// Where etcd and the Kubernetes control-plane binaries come from:
/// KUBEBUILDER_ASSETS, then the cache tests/control-plane/build.sh fills,
/// then PATH, then a build by that script.
/// </summary>
public static class ControlPlaneBinaries
{
    private static readonly string[] Required = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

    /// <summary>The directory holding all four binaries.</summary>
    public static async Task<string> LocateAsync(CancellationToken cancellationToken = default)
    {
        var cache = Environment.GetEnvironmentVariable("PILOTLIGHT_CACHE")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "pilotlight");
        string?[] candidates =
        [
            Environment.GetEnvironmentVariable("KUBEBUILDER_ASSETS"),
            Path.Combine(cache, "control-plane", "v1.20.2", "bin"),
        ];
        foreach (var dir in candidates)
        {
            if (dir is not null && HasAll(dir))
            {
                return dir;
            }
        }

        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        if (Required.All(b => onPath.Any(d => File.Exists(Path.Combine(d, b)))))
        {
            return "";
        }

        var script = Path.Combine(RepositoryRoot.Path, "tests", "control-plane", "build.sh");
        var build = await ProcessRunner.RunAsync("bash", [script], null, cancellationToken: cancellationToken).ConfigureAwait(false);
        build.EnsureSuccess();
        var built = build.StandardOutput.TrimEnd().Split('\n')[^1];
        return HasAll(built) ? built : throw new InvalidOperationException($"build.sh reported {built}, which lacks a binary");
    }

    private static bool HasAll(string dir) => Required.All(b => File.Exists(Path.Combine(dir, b)));
}
