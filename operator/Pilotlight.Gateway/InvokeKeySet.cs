using System.Security.Cryptography;
using System.Text;
using Pilotlight.Contracts;

namespace Pilotlight.Gateway;

/// <summary>
/// The invoke-key verifiers the operator published, as the gateway checks a presented key against them: swapped
/// whole when the ConfigMap changes, never mutated.
/// </summary>
public sealed class InvokeKeySet
{
    private readonly Dictionary<string, (byte[] Hash, InvokeKeyVerifier Verifier)[]> _byNamespace;

    /// <summary>A set of <paramref name="verifiers"/>; one whose hash is not 64 hex digits is left out.</summary>
    public InvokeKeySet(IEnumerable<InvokeKeyVerifier> verifiers)
    {
        _byNamespace = verifiers
            .Select(v => (Hash: TryHex(v.Sha256), Verifier: v))
            .Where(v => v.Hash is not null)
            .GroupBy(v => v.Verifier.Namespace, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(v => (v.Hash!, v.Verifier)).ToArray(), StringComparer.Ordinal);
        Count = _byNamespace.Values.Sum(v => v.Length);
    }

    /// <summary>No keys: every key is refused.</summary>
    public static InvokeKeySet Empty { get; } = new([]);

    /// <summary>How many verifiers the set holds.</summary>
    public int Count { get; }

    /// <summary>
    /// The set in a published ConfigMap's <see cref="InvokeKeys.VerifiersField"/>; <see cref="Empty"/> when there is
    /// none or it cannot be read (a broken ConfigMap opens nothing).
    /// </summary>
    public static InvokeKeySet Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Empty;
        }

        try
        {
            return new InvokeKeySet(InvokeKeys.Parse(text));
        }
        catch (System.Text.Json.JsonException)
        {
            return Empty;
        }
    }

    /// <summary>
    /// The Secret name of a key of <paramref name="ns"/> that equals <paramref name="key"/> and opens
    /// <paramref name="function"/>, or null. Hashes are compared in constant time, and every key of the namespace is
    /// compared, so the time taken says nothing about which bytes matched; a key of another namespace or for
    /// another function is no answer at all.
    /// </summary>
    public string? Opens(string ns, string function, string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!_byNamespace.TryGetValue(ns, out var candidates))
        {
            return null;
        }

        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        string? opened = null;
        foreach (var (hash, verifier) in candidates)
        {
            if (CryptographicOperations.FixedTimeEquals(presented, hash) && verifier.Opens(ns, function))
            {
                opened ??= verifier.Secret;
            }
        }

        return opened;
    }

    private static byte[]? TryHex(string hex)
    {
        if (hex.Length != 64)
        {
            return null;
        }

        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
