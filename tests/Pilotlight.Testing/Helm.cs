namespace Pilotlight.Testing;

/// <summary>
/// helm, as tests/chart/check.sh provides it (HELM, else the copy that script
/// caches), rendering the chart charts/pilotlight the way check.sh does:
/// release "pilotlight" in namespace "pilotlight-system".
/// </summary>
public static class Helm
{
    /// <summary>The release name the chart is rendered as.</summary>
    public const string Release = "pilotlight";

    /// <summary>The release namespace.</summary>
    public const string Namespace = "pilotlight-system";

    /// <summary>The chart's directory.</summary>
    public static string ChartPath => System.IO.Path.Combine(RepositoryRoot.Path, "charts", "pilotlight");

    /// <summary>
    /// The helm binary: $HELM, else ${XDG_CACHE_HOME:-$HOME/.cache}/pilotlight/helm/helm
    /// (where tests/chart/check.sh puts it). Throws with what to do when neither exists.
    /// </summary>
    public static string Locate()
    {
        if (Environment.GetEnvironmentVariable("HELM") is { Length: > 0 } fromEnv)
        {
            return File.Exists(fromEnv)
                ? fromEnv
                : throw new InvalidOperationException($"helm not found: HELM={fromEnv} does not exist");
        }

        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        var path = System.IO.Path.Combine(cache, "pilotlight", "helm", "helm");
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"helm not found at {path}: run tests/chart/check.sh, which make test runs first (or set HELM)");
    }

    /// <summary>
    /// <c>helm template pilotlight charts/pilotlight --namespace pilotlight-system</c>, limited to
    /// <paramref name="showOnly"/> templates (e.g. "templates/operator-rbac.yaml") when any are named,
    /// with <paramref name="set"/> as --set values, for a cluster of <paramref name="kubeVersion"/> when given, serving
    /// <paramref name="apiVersions"/> besides the built-in ones (e.g. "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"),
    /// with <paramref name="values"/> files (-f), and as <paramref name="release"/> in <paramref name="releaseNamespace"/>
    /// when given (another chart, a parent with this one as its subchart, with <paramref name="chart"/>).
    /// </summary>
    public static async Task<string> TemplateAsync(IEnumerable<string>? showOnly = null, IEnumerable<string>? set = null,
        CancellationToken cancellationToken = default, string? kubeVersion = null, IEnumerable<string>? apiVersions = null,
        IEnumerable<string>? values = null, string release = Release, string releaseNamespace = Namespace, string? chart = null)
    {
        var args = new List<string> { "template", release, chart ?? ChartPath, "--namespace", releaseNamespace };
        foreach (var file in values ?? [])
        {
            args.AddRange(["-f", file]);
        }

        foreach (var api in apiVersions ?? [])
        {
            args.AddRange(["--api-versions", api]);
        }

        if (kubeVersion is not null)
        {
            args.AddRange(["--kube-version", kubeVersion]);
        }

        foreach (var template in showOnly ?? [])
        {
            args.AddRange(["--show-only", template]);
        }

        foreach (var value in set ?? [])
        {
            args.AddRange(["--set", value]);
        }

        var result = await ProcessRunner.RunAsync(Locate(), args, null, cancellationToken: cancellationToken).ConfigureAwait(false);
        return result.ExitCode == 0
            ? result.StandardOutput
            : throw new InvalidOperationException($"helm {string.Join(' ', args)} failed ({result.ExitCode}):\n{result.StandardError}");
    }
}
