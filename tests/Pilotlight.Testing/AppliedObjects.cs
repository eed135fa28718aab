using System.Text;
using System.Text.Json;

namespace Pilotlight.Testing;

/// <summary>
/// One object as a GitOps check sees it, from <c>kubectl get -o json --show-managed-fields</c>: its generations, its
/// spec as JSON and the field managers that own any field of the spec.
/// </summary>
public sealed record AppliedObject(string Kind, string Name, long Generation, long? ObservedGeneration, string Spec, IReadOnlyList<string> SpecOwners)
{
    /// <summary>Kind/name.</summary>
    public string Key => $"{Kind}/{Name}";

    /// <summary>The items of a kubectl JSON list.</summary>
    public static List<AppliedObject> ParseList(string kubectlJson)
    {
        using var list = JsonDocument.Parse(kubectlJson);
        return list.RootElement.GetProperty("items").EnumerateArray().Select(item =>
        {
            var metadata = item.GetProperty("metadata");
            var owners = metadata.TryGetProperty("managedFields", out var managed)
                ? managed.EnumerateArray()
                    .Where(m => m.TryGetProperty("fieldsV1", out var fields) && fields.TryGetProperty("f:spec", out _))
                    .Select(m => m.GetProperty("manager").GetString()!)
                    .Distinct()
                    .Order(StringComparer.Ordinal)
                    .ToArray()
                : [];
            long? observed = item.TryGetProperty("status", out var status) && status.TryGetProperty("observedGeneration", out var og) ? og.GetInt64() : null;
            return new AppliedObject(item.GetProperty("kind").GetString()!, metadata.GetProperty("name").GetString()!,
                metadata.GetProperty("generation").GetInt64(), observed, item.GetProperty("spec").GetRawText(), owners);
        }).ToList();
    }
}

/// <summary>What a sandbox exec streamed (NDJSON <c>{stream, data}</c> lines, then <c>{exit, timedOut, durationMs}</c>), decoded.</summary>
public sealed record ExecTranscript(string Stdout, string Stderr, int? Exit, bool TimedOut)
{
    /// <summary>Decodes the whole answer body of an exec.</summary>
    public static ExecTranscript Parse(string body)
    {
        var (stdout, stderr, exit, timedOut) = (new StringBuilder(), new StringBuilder(), (int?)null, false);
        foreach (var line in body.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.TryGetProperty("stream", out var stream))
            {
                (stream.GetString() == "stdout" ? stdout : stderr).Append(Encoding.UTF8.GetString(Convert.FromBase64String(root.GetProperty("data").GetString()!)));
            }
            else if (root.TryGetProperty("exit", out var code))
            {
                exit = code.ValueKind == JsonValueKind.Number ? code.GetInt32() : null;
                timedOut = root.TryGetProperty("timedOut", out var t) && t.GetBoolean();
            }
        }

        return new ExecTranscript(stdout.ToString(), stderr.ToString(), exit, timedOut);
    }
}
