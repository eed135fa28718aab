using System.Globalization;
using System.Text;

namespace Pilotlight.Testing;

/// <summary>
/// Writes (POST, PUT, PATCH, DELETE) the API server counted from every client, by resource and subresource
/// (<c>pods/binding</c>), from its own <c>apiserver_request_total</c>. Unlike the audit log, which records only the users
/// its policy names, this includes every client: the controller manager, the scheduler, simulated kubelets.
/// </summary>
public sealed record ApiServerWrites(IReadOnlyDictionary<string, long> ByResource)
{
    /// <summary>All writes, whatever the resource.</summary>
    public long Total => ByResource.Values.Sum();

    /// <summary>What <paramref name="after"/> counted beyond <paramref name="before"/>, leaving out resources with none.</summary>
    public static ApiServerWrites Since(ApiServerWrites before, ApiServerWrites after) => new(after.ByResource
        .Select(kv => (kv.Key, Count: kv.Value - before.ByResource.GetValueOrDefault(kv.Key)))
        .Where(kv => kv.Count > 0).ToDictionary(kv => kv.Key, kv => kv.Count));

    /// <summary>The counts now, read from the API server's <c>/metrics</c> with <paramref name="kubeconfig"/>'s credentials.</summary>
    public static async Task<ApiServerWrites> ReadAsync(string kubeconfig, CancellationToken cancellationToken = default)
    {
        var result = await new Kubectl(kubeconfig).RunAsync(["get", "--raw", "/metrics"], cancellationToken: cancellationToken).ConfigureAwait(false);
        result.EnsureSuccess();
        return Parse(result.StandardOutput);
    }

    /// <summary>
    /// Sums the write verbs of <c>apiserver_request_total</c> in a Prometheus text exposition, over every other label
    /// (code, component, scope, version...). Comments, other metrics and samples it cannot read are skipped.
    /// </summary>
    public static ApiServerWrites Parse(string exposition)
    {
        const string Metric = "apiserver_request_total{";
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var raw in exposition.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (!line.StartsWith(Metric, StringComparison.Ordinal)
                || Labels(line, Metric.Length) is not var (labels, end)
                || labels.GetValueOrDefault("verb") is not ("POST" or "PUT" or "PATCH" or "DELETE")
                || !double.TryParse(line[end..].Trim().Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                continue;
            }

            var resource = labels.GetValueOrDefault("resource", "");
            var key = labels.GetValueOrDefault("subresource") is { Length: > 0 } sub ? $"{resource}/{sub}" : resource;
            counts[key] = counts.GetValueOrDefault(key) + (long)value;
        }

        return new ApiServerWrites(counts);
    }

    /// <summary>
    /// The labels of a sample from just after its <c>{</c> to its <c>}</c>, with the exposition's escapes in values
    /// (<c>\\</c>, <c>\"</c>, <c>\n</c>) undone; returns where the value starts, or null when the braces do not close.
    /// </summary>
    private static (Dictionary<string, string> Labels, int End)? Labels(string line, int at)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        while (at < line.Length)
        {
            if (line[at] == '}')
            {
                return (labels, at + 1);
            }

            var eq = line.IndexOf("=\"", at, StringComparison.Ordinal);
            if (eq < 0)
            {
                return null;
            }

            var name = line[at..eq].Trim(',', ' ');
            var value = new StringBuilder();
            var i = eq + 2;
            for (; i < line.Length && line[i] != '"'; i++)
            {
                if (line[i] == '\\' && i + 1 < line.Length)
                {
                    i++;
                    value.Append(line[i] == 'n' ? '\n' : line[i]);
                }
                else
                {
                    value.Append(line[i]);
                }
            }

            if (i >= line.Length)
            {
                return null;
            }

            labels[name] = value.ToString();
            at = i + 1;
            while (at < line.Length && line[at] is ',' or ' ')
            {
                at++;
            }
        }

        return null;
    }
}
