namespace Pilotlight.Operator;

/// <summary>Minimal <c>--name value</c> / <c>--switch</c> command-line parsing.</summary>
internal sealed class Flags
{
    private static readonly HashSet<string> Switches = ["leader-elect"];
    private static readonly HashSet<string> Valued = ["kubeconfig", "gpu-catalog", "shim-image", "endpoint-base", "namespace", "lease-namespace", "metrics-port", "gateways", "gateway-service", "schedule-gateway", "usage-journal", "meter-image",
        "sandbox-runtime-classes", "sandbox-default-runtime-class", "sandbox-max-timeout", "sandbox-metrics-namespace", "sandbox-egress-deny", "sandbox-egress-allowed", "sandbox-max-workspace",
        "sandbox-toleration-keys", "sandbox-node-selector-keys",
        "stable-window", "panic-window", "autoscaler-tick", "usage-status-interval",
        "webhook-port", "webhook-secret", "sandbox-agent-secret", "pod-label-writers", "webhook-hosts", "webhook-configuration", "allowed-volume-types", "allowed-service-accounts", "function-pod-security", "gateway-token-file",
        "invoke-keys-configmap", "workers", "kube-api-qps", "kube-api-burst",
        "log-format", "log-level", "platform-image-pull-secrets", "gateway-namespace", "reservation-priority-class"];
    private readonly Dictionary<string, string> _values = [];

    public string? Error { get; private init; }

    public static Flags Parse(IReadOnlyList<string> args)
    {
        var flags = new Flags();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i].StartsWith("--", StringComparison.Ordinal) ? args[i][2..] : null;
            string? inline = null;
            if (name?.IndexOf('=') is int eq and >= 0)
            {
                (name, inline) = (name[..eq], name[(eq + 1)..]);
            }

            if (name is not null && Switches.Contains(name))
            {
                flags._values[name] = "true";
            }
            else if (name is not null && Valued.Contains(name) && (inline ?? (i + 1 < args.Count ? args[++i] : null)) is { } value)
            {
                flags._values[name] = value;
            }
            else
            {
                return new Flags { Error = $"unknown or incomplete argument '{args[i]}'" };
            }
        }

        foreach (var portFlag in new[] { "metrics-port", "webhook-port" })
        {
            if (flags._values.TryGetValue(portFlag, out var port) && !(int.TryParse(port, out var p) && p is >= 0 and <= 65535))
            {
                return new Flags { Error = $"--{portFlag} must be 0..65535, not '{port}'" };
            }
        }

        if (flags._values.TryGetValue("workers", out var workers) && !(int.TryParse(workers, System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var w) && w is >= 1 and <= 1000))
        {
            return new Flags { Error = $"--workers must be a whole number 1..1000, not '{workers}'" };
        }

        if (flags._values.TryGetValue("kube-api-qps", out var qps) && qps != "auto" && !(double.TryParse(qps, System.Globalization.NumberStyles.AllowDecimalPoint,
                System.Globalization.CultureInfo.InvariantCulture, out var q) && double.IsFinite(q) && q >= 0))
        {
            return new Flags { Error = $"--kube-api-qps must be auto or a number of requests per second, 0 or more (0: no limit), not '{qps}'" };
        }

        if (flags._values.TryGetValue("kube-api-burst", out var burst) && !(int.TryParse(burst, System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var b) && b >= 1))
        {
            return new Flags { Error = $"--kube-api-burst must be a whole number 1 or more, not '{burst}'" };
        }

        if (Pilotlight.ControllerRuntime.ConsoleLogSettings.Parse(flags.Get("log-format"), flags.Get("log-level")).Error is { } logError)
        {
            return new Flags { Error = logError };
        }

        foreach (var nameFlag in new[] { "gateway-namespace", "reservation-priority-class" })
        {
            if (flags._values.TryGetValue(nameFlag, out var name) && !IsDnsName(name, subdomain: nameFlag == "reservation-priority-class"))
            {
                return new Flags { Error = $"--{nameFlag} must be a Kubernetes object name, not '{name}'" };
            }
        }

        if (flags._values.TryGetValue("platform-image-pull-secrets", out var secrets)
            && secrets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(s => !IsDnsName(s, subdomain: true)) is { } badSecret)
        {
            return new Flags { Error = $"--platform-image-pull-secrets: '{badSecret}' is not a Secret name" };
        }

        return flags;
    }

    /// <summary>The log settings of --log-format and --log-level (checked by <see cref="Parse"/>).</summary>
    public Pilotlight.ControllerRuntime.ConsoleLogSettings Logging =>
        Pilotlight.ControllerRuntime.ConsoleLogSettings.Parse(Get("log-format"), Get("log-level")).Settings!;

    /// <summary>--platform-image-pull-secrets: Secrets (by name, in each pod's namespace) for the platform's images.</summary>
    public IReadOnlyList<string> PlatformImagePullSecrets =>
        (Get("platform-image-pull-secrets") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToList();

    // A DNS-1123 label (namespaces) or subdomain (Secrets, PriorityClasses).
    private static bool IsDnsName(string name, bool subdomain) =>
        name.Length is > 0 and <= 253 && (subdomain || name.Length <= 63)
        && (subdomain ? name.Split('.') : [name]).All(part => part.Length is > 0 and <= 63 && part[0] != '-' && part[^1] != '-'
            && part.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'));

    /// <summary>--workers: reconciles per controller at once (default 8).</summary>
    public int Workers => int.Parse(Get("workers") ?? "8", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// --kube-api-qps: API requests per second of the operator's client, watches exempt (0: no limit). The default,
    /// <c>auto</c>, limits to 100 a second until the API server shows it does Priority and Fairness, then not at all
    /// (<see cref="KubeApiQpsAuto"/>); this is then 100.
    /// </summary>
    public double KubeApiQps => KubeApiQpsAuto ? 100 : double.Parse(Get("kube-api-qps")!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True for <c>--kube-api-qps auto</c> (the default): the limit is lifted under the API server's Priority and Fairness.</summary>
    public bool KubeApiQpsAuto => (Get("kube-api-qps") ?? "auto") == "auto";

    /// <summary>--kube-api-burst: API requests at once above the qps (default 200).</summary>
    public int KubeApiBurst => int.Parse(Get("kube-api-burst") ?? "200", System.Globalization.CultureInfo.InvariantCulture);

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public bool Has(string name) => _values.ContainsKey(name);
}
