namespace Pilotlight.Gateway;

/// <summary>Gateway settings.</summary>
public sealed record GatewayOptions
{
    /// <summary>The default <see cref="ReplayLimit"/>: 1 MiB.</summary>
    public const long DefaultReplayLimit = 1024 * 1024;

    /// <summary>Requests held per function while it has no ready pod; past this, 503 with Retry-After.</summary>
    public int QueueLimit { get; init; } = 1000;

    /// <summary>
    /// Requests go at once to a ready warm standby pod of the function when no serving pod has room, and the
    /// operator claims it after (on by default). Off: they are held until the operator has claimed a warm pod
    /// (the wake annotation, a relabel, the watch back), the path before warm routing; benchmarks compare the two.
    /// </summary>
    public bool WarmRouting { get; init; } = true;

    /// <summary>Port of the runtime shim in function pods.</summary>
    public int ShimPort { get; init; } = 8099;

    /// <summary>Port of the agent in sandbox pods (<c>--agent-port</c>).</summary>
    public int AgentPort { get; init; } = 8443;

    /// <summary>
    /// The client certificate (with its key) the gateway shows sandbox agents over TLS (<c>--agent-client-cert</c>,
    /// <c>--agent-client-key</c>), asked for at each new connection so a renewed one is used; null: agents are spoken
    /// to in plain HTTP (a development setup whose agents run without a CA).
    /// </summary>
    public Func<System.Security.Cryptography.X509Certificates.X509Certificate2?>? AgentClientCertificate { get; init; }

    /// <summary>
    /// Attempts on other pods, at once, after a pod refused a request before the user's server saw it (the
    /// connection was refused, or the shim answered 503 with <c>X-Pilotlight-Refused</c>). Always on and not
    /// counted against <c>spec.retries.maxRetries</c>: nothing was processed, so nothing can run twice.
    /// </summary>
    public int ConnectRetries { get; init; } = 2;

    /// <summary>
    /// Largest request body (by its declared Content-Length) the gateway keeps so that it can send it again on
    /// a retry (in memory up to 64 KiB, then in a temporary file). A larger body, or one without a
    /// Content-Length (chunked), is streamed to one pod and never retried once any of it was sent.
    /// </summary>
    public long ReplayLimit { get; init; } = DefaultReplayLimit;

    /// <summary>The longest a stopping gateway keeps serving what it holds and forwards (<c>--drain-seconds</c>).</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A drain is over once nothing was in flight for this long (and at least this long after it began, so
    /// requests still routed here while the endpoint change spreads are served).
    /// </summary>
    public TimeSpan DrainQuietPeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A port that serves <c>/wait-for-drain</c> (for the preStop hook) and nothing the gateway Service
    /// exposes (<c>--admin-port</c>); null: none.
    /// </summary>
    public int? AdminPort { get; init; }

    /// <summary>
    /// SIGTERM, SIGINT and SIGQUIT drain first, then stop (the gateway process); off where the host is
    /// stopped by its owner (tests).
    /// </summary>
    public bool DrainOnSignal { get; init; }

    /// <summary>Who may invoke functions (token audience, public functions, caching, failure limits).</summary>
    public InvocationAccessOptions Access { get; init; } = new();

    /// <summary>The default <see cref="MaxRequestBodySize"/>: 100 MiB.</summary>
    public const long DefaultMaxRequestBodySize = 100L * 1024 * 1024;

    /// <summary>
    /// Largest invocation request body (<c>--max-request-body-size</c>). A declared Content-Length over it is
    /// answered 413 before anything is forwarded; a body of unknown length that grows past it is cut off, and
    /// answered 413 unless the function's answer had already begun. Bodies stream through the gateway, so this
    /// bounds what one request may push into a function, not the gateway's memory.
    /// </summary>
    public long MaxRequestBodySize { get; init; } = DefaultMaxRequestBodySize;

    /// <summary>
    /// Host-based routing (<c>--host-domain</c>): a request for <c>{function}.{namespace}.{domain}</c> goes to that
    /// function with its path unchanged, so every function has an origin of its own. Null: path routing only.
    /// </summary>
    public string? HostDomain { get; init; }

    /// <summary>Per-client concurrency and request-rate limits on invocations (off by default).</summary>
    public ClientLimitOptions ClientLimits { get; init; } = new();

    /// <summary>
    /// The port that serves the operator's endpoints (<c>/internal/demand</c>, <c>/internal/signals</c>) and
    /// <c>/metrics</c> (<c>--internal-port</c>), which the public Service does not expose; the public port then answers
    /// 404 for them. Null: they are served on the public port too (a gateway embedded in a test or the demo).
    /// </summary>
    public int? InternalPort { get; init; }

    /// <summary>
    /// Users whose bearer token (for <see cref="InvocationAccessOptions.Audience"/>) may read <c>/internal/*</c>
    /// (<c>--internal-callers</c>; the chart: the operator's ServiceAccount). Empty: no token is asked for.
    /// </summary>
    public IReadOnlyList<string> InternalCallers { get; init; } = [];
}
