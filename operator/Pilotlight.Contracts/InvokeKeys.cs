using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pilotlight.Contracts;

/// <summary>
/// Long-lived invoke keys (Modal-style web endpoints) for clients outside the cluster. A namespace admin creates a
/// Secret labelled <see cref="Label"/>=<c>true</c> whose <see cref="KeyField"/> holds the key and whose
/// <see cref="FunctionsAnnotation"/> names the functions it opens. The operator publishes only SHA-256 verifiers of
/// valid keys in one ConfigMap (<see cref="VerifiersField"/>); the gateway, which cannot read Secrets, checks a
/// presented key against them.
/// </summary>
public static class InvokeKeys
{
    /// <summary>Label that marks a Secret as an invoke key (value <c>true</c>); the operator watches only these.</summary>
    public const string Label = "pilotlight.dev/invoke-key";

    /// <summary>Annotation listing the functions of the Secret's namespace the key opens, comma separated, or <see cref="AllFunctions"/>.</summary>
    public const string FunctionsAnnotation = "pilotlight.dev/functions";

    /// <summary>In <see cref="FunctionsAnnotation"/>: every function of the namespace.</summary>
    public const string AllFunctions = "*";

    /// <summary>The Secret's data field holding the key.</summary>
    public const string KeyField = "key";

    /// <summary>Every key starts with this, so the gateway tells it from a Kubernetes token without asking the API server.</summary>
    public const string Prefix = "plk_";

    /// <summary>Fewest base64url characters after <see cref="Prefix"/>: 32 random bytes (256 bits).</summary>
    public const int MinSecretChars = 43;

    /// <summary>Most base64url characters after <see cref="Prefix"/> (96 bytes): a bound on what is hashed per request.</summary>
    public const int MaxSecretChars = 128;

    /// <summary>The published ConfigMap's data field: a JSON array of <see cref="InvokeKeyVerifier"/>.</summary>
    public const string VerifiersField = "verifiers.json";

    /// <summary>How to make a key, for messages and docs.</summary>
    public const string HowToMake = "plk_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>Whether <paramref name="value"/> starts like an invoke key (and so is never sent to the API server as a token).</summary>
    public static bool LooksLikeKey(string value) => value.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>
    /// Whether <paramref name="key"/> has the documented shape: <see cref="Prefix"/> then
    /// <see cref="MinSecretChars"/> to <see cref="MaxSecretChars"/> base64url characters (A-Z a-z 0-9 - _).
    /// Shorter keys are refused: they may have been typed by hand, with too little entropy.
    /// </summary>
    public static bool IsWellFormed(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!LooksLikeKey(key))
        {
            return false;
        }

        var rest = key.AsSpan(Prefix.Length);
        if (rest.Length is < MinSecretChars or > MaxSecretChars)
        {
            return false;
        }

        foreach (var c in rest)
        {
            if (c is not ((>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The verifier of <paramref name="key"/>: SHA-256 of its UTF-8 bytes, lowercase hex.</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>The functions a <see cref="FunctionsAnnotation"/> value names: trimmed, de-duplicated, sorted; empty when none.</summary>
    public static IReadOnlyList<string> ParseFunctions(string? annotation) =>
        annotation is null ? [] : [.. annotation.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    /// <summary>The <see cref="VerifiersField"/> text of <paramref name="verifiers"/>, ordered so equal sets give equal text.</summary>
    public static string Serialize(IEnumerable<InvokeKeyVerifier> verifiers) =>
        JsonSerializer.Serialize(verifiers.OrderBy(v => v.Namespace, StringComparer.Ordinal).ThenBy(v => v.Secret, StringComparer.Ordinal)
            .ThenBy(v => v.SecretUid, StringComparer.Ordinal).ToList(), Json);

    /// <summary>The verifiers in a <see cref="VerifiersField"/> text; throws <see cref="JsonException"/> when it is not one.</summary>
    public static IReadOnlyList<InvokeKeyVerifier> Parse(string text) =>
        JsonSerializer.Deserialize<List<InvokeKeyVerifier>>(text, Json) ?? throw new JsonException("null verifier list");
}

/// <summary>What the gateway needs to check one invoke key, never the key itself.</summary>
public sealed record InvokeKeyVerifier
{
    /// <summary>The namespace of the Secret, and of every function the key opens.</summary>
    [JsonPropertyName("namespace")]
    public required string Namespace { get; init; }

    /// <summary>Functions the key opens, or <see cref="InvokeKeys.AllFunctions"/> alone for all of the namespace.</summary>
    [JsonPropertyName("functions")]
    public required IReadOnlyList<string> Functions { get; init; }

    /// <summary>The Secret's name (for logs and for whoever reads the ConfigMap).</summary>
    [JsonPropertyName("secret")]
    public required string Secret { get; init; }

    /// <summary>The Secret's UID: a Secret deleted and made again under the same name is another key.</summary>
    [JsonPropertyName("secretUid")]
    public required string SecretUid { get; init; }

    /// <summary>SHA-256 of the key (<see cref="InvokeKeys.Hash"/>), lowercase hex.</summary>
    [JsonPropertyName("sha256")]
    public required string Sha256 { get; init; }

    /// <summary>Whether the key opens <paramref name="function"/> of <paramref name="ns"/>.</summary>
    public bool Opens(string ns, string function) =>
        Namespace == ns && Functions.Any(f => f == InvokeKeys.AllFunctions || f == function);
}
