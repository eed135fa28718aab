using System.Globalization;

namespace Pilotlight.DevicePluginSim;

/// <summary>The command line of the simulator; <see cref="Error"/> says what is wrong with it.</summary>
public sealed record SimOptions(string PluginDirectory, string Node, string Kubeconfig, int Count, string Product, int MemoryMiB, string? Error)
{
    /// <summary>The extended resource the devices are advertised as.</summary>
    public const string Resource = "nvidia.com/gpu";

    /// <summary>Reads <c>--name value</c> pairs.</summary>
    public static SimOptions Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Count)
            {
                return Invalid($"expected --name value pairs, got '{args[i]}'");
            }

            values[args[i][2..]] = args[++i];
        }

        string Get(string name, string fallback) => values.GetValueOrDefault(name, fallback);
        var known = new[] { "plugin-dir", "node", "kubeconfig", "count", "product", "memory-mib" };
        if (values.Keys.FirstOrDefault(k => !known.Contains(k)) is { } unknown)
        {
            return Invalid($"unknown option --{unknown} (known: {string.Join(", ", known.Select(k => "--" + k))})");
        }

        var directory = Get("plugin-dir", "");
        var node = Get("node", "");
        var kubeconfig = Get("kubeconfig", "");
        if (directory.Length == 0 || node.Length == 0 || kubeconfig.Length == 0)
        {
            return Invalid("--plugin-dir, --node and --kubeconfig are required");
        }

        if (!File.Exists(Path.Combine(directory, "kubelet.sock")))
        {
            return Invalid($"no kubelet.sock in {directory}: is the kubelet running with that root directory?");
        }

        if (!int.TryParse(Get("count", "2"), NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count is < 1 or > 64)
        {
            return Invalid("--count must be a whole number from 1 to 64");
        }

        if (!int.TryParse(Get("memory-mib", "23034"), NumberStyles.None, CultureInfo.InvariantCulture, out var memory) || memory < 1)
        {
            return Invalid("--memory-mib must be a positive whole number");
        }

        return new SimOptions(directory, node, kubeconfig, count, Get("product", "NVIDIA-L4"), memory, null);

        SimOptions Invalid(string error) => new("", "", "", 0, "", 0, error);
    }
}
