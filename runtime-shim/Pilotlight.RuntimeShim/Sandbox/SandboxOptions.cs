using System.Globalization;
using System.Text.Json;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>What the shim serves, chosen by <c>PILOTLIGHT_MODE</c>.</summary>
public enum ShimMode
{
    /// <summary>The default: a proxy in front of a function's HTTP server.</summary>
    Function,

    /// <summary>The agent of a Sandbox pod: exec and file API over a workspace, no proxying.</summary>
    Sandbox,
}

/// <summary>The settings of sandbox mode (<c>PILOTLIGHT_MODE=sandbox</c>).</summary>
/// <param name="Workspace">
/// The writable, size-limited directory commands run in and every file path is relative to; it must exist.
/// </param>
public sealed record SandboxOptions(string Workspace)
{
    /// <summary>Selects the mode: <c>function</c> (default) or <c>sandbox</c>.</summary>
    public const string ModeVariable = "PILOTLIGHT_MODE";

    /// <summary>The workspace directory; required in sandbox mode.</summary>
    public const string WorkspaceVariable = "PILOTLIGHT_WORKSPACE";

    /// <summary>Default per-exec timeout, a duration such as <c>60s</c>.</summary>
    public const string ExecTimeoutVariable = "PILOTLIGHT_EXEC_TIMEOUT";

    /// <summary>Largest file a <c>PUT /files</c> may write, in bytes.</summary>
    public const string MaxFileBytesVariable = "PILOTLIGHT_MAX_FILE_BYTES";

    /// <summary>The sandbox's own command as a JSON array of strings (<c>spec.command</c>); none when unset.</summary>
    public const string CommandVariable = "PILOTLIGHT_SANDBOX_COMMAND";

    /// <summary>
    /// PEM of the CA(s) whose client certificates the agent accepts (the gateway's issuer); required unless
    /// <see cref="InsecureVariable"/> is true.
    /// </summary>
    public const string ClientCaVariable = "PILOTLIGHT_AGENT_CLIENT_CA";

    /// <summary>This pod's UID (downward API <c>metadata.uid</c>); required with <see cref="ClientCaVariable"/>.</summary>
    public const string PodUidVariable = "PILOTLIGHT_POD_UID";

    /// <summary>This pod's namespace (downward API <c>metadata.namespace</c>); required with <see cref="ClientCaVariable"/>.</summary>
    public const string PodNamespaceVariable = "PILOTLIGHT_POD_NAMESPACE";

    /// <summary>
    /// <c>true</c>: plain HTTP and no caller check, for a benchmark's baseline only; the operator never sets it.
    /// </summary>
    public const string InsecureVariable = "PILOTLIGHT_AGENT_INSECURE";

    /// <summary>The exec timeout when neither the environment nor the request names one.</summary>
    public static readonly TimeSpan DefaultExecTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The longest an exec may be allowed to run, whatever it asks for.</summary>
    public static readonly TimeSpan MaxExecTimeout = TimeSpan.FromHours(1);

    /// <summary>The file size limit when the environment names none: 64Mi.</summary>
    public const long DefaultMaxFileBytes = 64L * 1024 * 1024;

    /// <summary>Default timeout of one exec; a request may ask for another up to <see cref="MaxExecTimeout"/>.</summary>
    public TimeSpan ExecTimeout { get; init; } = DefaultExecTimeout;

    /// <summary>Largest file body <c>PUT /files</c> accepts; larger ones get 413 and write nothing.</summary>
    public long MaxFileBytes { get; init; } = DefaultMaxFileBytes;

    /// <summary>The long-running command the sandbox lives for (see <see cref="SandboxMainProcess"/>); null for none.</summary>
    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>Whom the agent answers (TLS with client certificates); null only when <see cref="InsecureVariable"/> is true.</summary>
    public AgentTrust? Trust { get; init; }

    /// <summary>
    /// Reads the mode and, in sandbox mode, its settings through <paramref name="get"/> (a variable's trimmed
    /// value, or null when unset or blank). Returns null options in function mode; an error is one line
    /// naming the offending variable.
    /// </summary>
    public static (SandboxOptions? Options, string? Error) Parse(Func<string, string?> get)
    {
        ArgumentNullException.ThrowIfNull(get);

        var modeText = get(ModeVariable);
        if (modeText is null || modeText.Equals("function", StringComparison.OrdinalIgnoreCase))
        {
            return (null, null);
        }

        if (!modeText.Equals("sandbox", StringComparison.OrdinalIgnoreCase))
        {
            return (null, $"{ModeVariable}={modeText}: expected function or sandbox");
        }

        var workspaceText = get(WorkspaceVariable);
        if (workspaceText is null)
        {
            return (null, $"{WorkspaceVariable}=: required in sandbox mode: the path of an existing directory");
        }

        string workspace;
        try
        {
            workspace = Path.GetFullPath(workspaceText);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return (null, $"{WorkspaceVariable}={workspaceText}: not a valid path");
        }

        if (!Directory.Exists(workspace))
        {
            return (null, $"{WorkspaceVariable}={workspaceText}: expected an existing directory");
        }

        var timeoutText = get(ExecTimeoutVariable);
        var timeout = DefaultExecTimeout;
        if (timeoutText is not null
            && (!ShimOptions.TryParseDuration(timeoutText, out timeout) || timeout <= TimeSpan.Zero || timeout > MaxExecTimeout))
        {
            return (null, $"{ExecTimeoutVariable}={timeoutText}: expected a positive duration of at most 1h, such as 60s, 5m or 1h");
        }

        var maxBytesText = get(MaxFileBytesVariable);
        var maxBytes = DefaultMaxFileBytes;
        if (maxBytesText is not null
            && (!long.TryParse(maxBytesText, NumberStyles.None, CultureInfo.InvariantCulture, out maxBytes) || maxBytes < 1))
        {
            return (null, $"{MaxFileBytesVariable}={maxBytesText}: expected a whole number of bytes of at least 1, such as 67108864");
        }

        var commandText = get(CommandVariable);
        string[]? command = null;
        if (commandText is not null)
        {
            try
            {
                command = JsonSerializer.Deserialize(commandText, ShimJson.Plain.StringArray);
            }
            catch (JsonException)
            {
            }

            if (command is not { Length: > 0 } || command.Any(string.IsNullOrEmpty))
            {
                return (null, $"{CommandVariable}={commandText}: expected a JSON array of non-empty strings, such as [\"python\", \"-m\", \"http.server\"]");
            }
        }

        AgentTrust? trust = null;
        if (!string.Equals(get(InsecureVariable), "true", StringComparison.OrdinalIgnoreCase))
        {
            if (get(ClientCaVariable) is not { } caPem)
            {
                return (null, $"{ClientCaVariable}=: required in sandbox mode: the PEM of the CA whose client certificates the agent accepts");
            }

            if (get(PodUidVariable) is not { } uid || get(PodNamespaceVariable) is not { } podNamespace)
            {
                return (null, $"{PodUidVariable} and {PodNamespaceVariable} are required with {ClientCaVariable} (downward API metadata.uid and metadata.namespace)");
            }

            try
            {
                trust = new AgentTrust(caPem, podNamespace, uid);
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                return (null, $"{ClientCaVariable}: not a PEM certificate ({e.Message})");
            }
        }

        return (new SandboxOptions(workspace) { ExecTimeout = timeout, MaxFileBytes = maxBytes, Command = command, Trust = trust }, null);
    }
}
