using System.Collections;
using System.Globalization;
using Pilotlight.Api.Schema;
using Pilotlight.RuntimeShim.Linked;
using System.Net;
using Pilotlight.RuntimeShim.Sandbox;

namespace Pilotlight.RuntimeShim;

/// <summary>The shim's settings, read from <c>PILOTLIGHT_*</c> environment variables.</summary>
/// <param name="ListenPort">Port the shim listens on (0 picks a free one).</param>
/// <param name="ListenAddress">Address the shim listens on.</param>
/// <param name="Upstream">Base address of the user's HTTP server.</param>
/// <param name="HealthPath">Path on the upstream that answers 2xx once it can serve.</param>
/// <param name="MaxConcurrency">Requests forwarded to the upstream at once.</param>
/// <param name="RequestTimeout">Deadline for one request, from its arrival; 504 on expiry.</param>
/// <param name="GpuCount">GPUs NVML must report before the shim is ready.</param>
/// <param name="GpuSimulate">Skip NVML and pretend the GPUs exist.</param>
/// <param name="QueueLength">Requests allowed to wait for a slot; beyond that 503.</param>
/// <param name="DrainTimeout">
/// How long in-flight requests may run once draining starts (<c>PILOTLIGHT_DRAIN_SECONDS</c>, default 15; the operator
/// sets it to the function's <c>timeout</c>, so a request that started may always finish).
/// </param>
public sealed record ShimOptions(
    int ListenPort,
    IPAddress ListenAddress,
    Uri Upstream,
    string HealthPath,
    int MaxConcurrency,
    TimeSpan RequestTimeout,
    int GpuCount,
    bool GpuSimulate,
    int QueueLength,
    TimeSpan DrainTimeout)
{
    public const string ListenPortVariable = "PILOTLIGHT_LISTEN_PORT";
    public const string ListenAddressVariable = "PILOTLIGHT_LISTEN_ADDRESS";
    public const string UpstreamVariable = "PILOTLIGHT_UPSTREAM";
    public const string HealthPathVariable = "PILOTLIGHT_HEALTH_PATH";
    public const string MaxConcurrencyVariable = "PILOTLIGHT_MAX_CONCURRENCY";
    public const string RequestTimeoutVariable = "PILOTLIGHT_REQUEST_TIMEOUT";
    public const string GpuCountVariable = "PILOTLIGHT_GPU_COUNT";
    public const string GpuSimulateVariable = "PILOTLIGHT_GPU_SIMULATE";
    public const string QueueLengthVariable = "PILOTLIGHT_QUEUE_LENGTH";
    public const string DrainSecondsVariable = "PILOTLIGHT_DRAIN_SECONDS";
    public const string GpuReportVariable = "PILOTLIGHT_GPU_REPORT";
    public const string AdminPortVariable = "PILOTLIGHT_ADMIN_PORT";

    /// <summary>Path on <see cref="AdminPort"/> that a preStop hook calls: starts draining, answers once drained.</summary>
    public const string WaitForDrainPath = "/wait-for-drain";

    /// <summary>
    /// Path on <see cref="AdminPort"/> the user container's liveness probe asks: alive while a request is in flight
    /// (a busy model server need not answer its health path; the request timeout bounds a stuck one), otherwise
    /// alive when the health path answers 2xx.
    /// </summary>
    public const string LivePath = "/live";

    /// <summary>
    /// Port of the shim's admin listener, or null for none. It serves only <see cref="WaitForDrainPath"/>, for the
    /// user container's preStop hook, and <see cref="LivePath"/>, for its liveness probe (Knative's queue-proxy does the same on its own admin port). It is a port of its
    /// own, never the one the gateway forwards to, so no invocation can drain a pod.
    /// </summary>
    public int? AdminPort { get; init; }

    /// <summary>
    /// Where the function container's GPU probe writes what NVML sees there; when set, GPU readiness
    /// is read from it instead of NVML in the shim's own container, which on a real node is given no GPU.
    /// </summary>
    public string? GpuReportPath { get; init; }

    /// <summary>
    /// Sandbox mode's settings (<c>PILOTLIGHT_MODE=sandbox</c>); null in function mode. In sandbox mode the shim
    /// serves the exec and file API over the workspace and proxies nothing; the function settings are unused.
    /// </summary>
    public SandboxOptions? Sandbox { get; init; }

    /// <summary>What the shim serves: <see cref="ShimMode.Sandbox"/> exactly when <see cref="Sandbox"/> is set.</summary>
    public ShimMode Mode => Sandbox is null ? ShimMode.Function : ShimMode.Sandbox;

    /// <summary>
    /// How the shim logs to stdout (<c>PILOTLIGHT_LOG_FORMAT</c>: text or json; <c>PILOTLIGHT_LOG_LEVEL</c>): what the
    /// operator runs with, which it passes to the sidecars of the pods it makes.
    /// </summary>
    internal ConsoleLogSettings Log { get; init; } = new();

    /// <summary>Defaults for everything, forwarding to <paramref name="upstream"/>; handy for tests.</summary>
    public static ShimOptions Default(Uri upstream) => new(
        ListenPort: 8099,
        ListenAddress: IPAddress.Any,
        Upstream: upstream,
        HealthPath: "/healthz",
        MaxConcurrency: 1,
        RequestTimeout: TimeSpan.FromSeconds(300),
        GpuCount: 0,
        GpuSimulate: false,
        QueueLength: 2,
        DrainTimeout: TimeSpan.FromSeconds(15));

    /// <summary>Reads the options from the process environment.</summary>
    public static ShimOptionsResult FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariables());

    /// <summary>
    /// Reads the options from <paramref name="env"/> (names to values). Returns either the options or a
    /// one-line error naming the offending variable; never throws for bad input.
    /// </summary>
    public static ShimOptionsResult FromEnvironment(IDictionary env)
    {
        ArgumentNullException.ThrowIfNull(env);

        string? Get(string name)
        {
            var value = env[name]?.ToString()?.Trim();
            return string.IsNullOrEmpty(value) ? null : value;
        }

        static ShimOptionsResult Fail(string name, string? value, string expected) =>
            new(null, $"{name}={value}: {expected}");

        var portText = Get(ListenPortVariable);
        var port = 8099;
        if (portText is not null && (!TryInt(portText, out port) || port is < 0 or > 65535))
        {
            return Fail(ListenPortVariable, portText, "expected a port number between 0 and 65535");
        }

        var addressText = Get(ListenAddressVariable);
        var address = IPAddress.Any;
        if (addressText is not null && !IPAddress.TryParse(addressText, out address!))
        {
            return Fail(ListenAddressVariable, addressText, "expected an IP address such as 0.0.0.0 or 127.4.0.7");
        }

        var upstreamText = Get(UpstreamVariable) ?? "http://127.0.0.1:8080";
        if (!Uri.TryCreate(upstreamText, UriKind.Absolute, out var upstream)
            || (upstream.Scheme != Uri.UriSchemeHttp && upstream.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(upstream.Query))
        {
            return Fail(UpstreamVariable, upstreamText, "expected an absolute http(s) URL such as http://127.0.0.1:8080");
        }

        var healthPath = Get(HealthPathVariable) ?? "/healthz";
        if (!healthPath.StartsWith('/') || healthPath.Contains(' ', StringComparison.Ordinal))
        {
            return Fail(HealthPathVariable, healthPath, "expected a path starting with '/'");
        }

        var concurrencyText = Get(MaxConcurrencyVariable);
        var concurrency = 1;
        if (concurrencyText is not null && (!TryInt(concurrencyText, out concurrency) || concurrency < 1))
        {
            return Fail(MaxConcurrencyVariable, concurrencyText, "expected a whole number of at least 1");
        }

        var timeoutText = Get(RequestTimeoutVariable);
        var timeout = TimeSpan.FromSeconds(300);
        if (timeoutText is not null && (!TryParseDuration(timeoutText, out timeout) || timeout <= TimeSpan.Zero))
        {
            return Fail(RequestTimeoutVariable, timeoutText, "expected a positive duration such as 300s, 5m, 1h or 250ms");
        }

        var gpuText = Get(GpuCountVariable);
        var gpus = 0;
        if (gpuText is not null && (!TryInt(gpuText, out gpus) || gpus < 0))
        {
            return Fail(GpuCountVariable, gpuText, "expected a whole number of at least 0");
        }

        var simulateText = Get(GpuSimulateVariable);
        var simulate = false;
        if (simulateText is not null && !TryBool(simulateText, out simulate))
        {
            return Fail(GpuSimulateVariable, simulateText, "expected true or false");
        }

        var queueText = Get(QueueLengthVariable);
        var queue = 2 * concurrency;
        if (queueText is not null && (!TryInt(queueText, out queue) || queue < 0))
        {
            return Fail(QueueLengthVariable, queueText, "expected a whole number of at least 0");
        }

        var drainText = Get(DrainSecondsVariable);
        var drain = 15;
        if (drainText is not null && (!TryInt(drainText, out drain) || drain < 0))
        {
            return Fail(DrainSecondsVariable, drainText, "expected a whole number of seconds, at least 0");
        }

        var adminText = Get(AdminPortVariable);
        var admin = 0;
        if (adminText is not null && (!TryInt(adminText, out admin) || admin is < 1 or > 65535 || admin == port))
        {
            return Fail(AdminPortVariable, adminText, "expected a port number between 1 and 65535, not the listen port");
        }

        var (log, logError) = ConsoleLogSettings.Parse(Get(ConsoleLogSettings.FormatVariable), Get(ConsoleLogSettings.LevelVariable),
            ConsoleLogSettings.FormatVariable, ConsoleLogSettings.LevelVariable);
        if (logError is not null)
        {
            return new(null, logError);
        }

        var (sandbox, sandboxError) = SandboxOptions.Parse(Get);
        if (sandboxError is not null)
        {
            return new(null, sandboxError);
        }

        return new(
            new ShimOptions(port, address, upstream, healthPath, concurrency, timeout, gpus, simulate, queue, TimeSpan.FromSeconds(drain))
            {
                GpuReportPath = Get(GpuReportVariable),
                AdminPort = adminText is null ? null : admin,
                Sandbox = sandbox,
                Log = log!,
            },
            null);
    }

    /// <summary>
    /// Parses durations as the CRDs write them (<c>300s</c>, <c>5m</c>, <c>1h30m</c>, <c>250ms</c>, <c>1.5s</c>);
    /// a bare number counts as seconds. At most a year.
    /// </summary>
    public static bool TryParseDuration(string? text, out TimeSpan duration)
    {
        var trimmed = text?.Trim();
        var year = TimeSpan.FromDays(365);
        if (double.TryParse(trimmed, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds))
        {
            duration = seconds <= year.TotalSeconds ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;
            return seconds <= year.TotalSeconds;
        }

        return DurationString.TryParse(trimmed, out duration) && duration <= year;
    }

    private static bool TryInt(string text, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    private static bool TryBool(string text, out bool value)
    {
        switch (text.ToLowerInvariant())
        {
            case "true" or "1" or "yes":
                value = true;
                return true;
            case "false" or "0" or "no":
                value = false;
                return true;
            default:
                value = false;
                return false;
        }
    }
}

/// <summary>Either parsed <see cref="ShimOptions"/> or a one-line error naming the bad variable.</summary>
public sealed record ShimOptionsResult(ShimOptions? Options, string? Error)
{
    /// <summary>True when the options parsed.</summary>
    public bool Ok => Options is not null;
}
