using System.Text.Json;

namespace Pilotlight.Testing;

/// <summary>One event of the API server's audit log (level Metadata: who did what to which object, and the answer).</summary>
/// <param name="AuditId">The request's audit ID (a watch has two events: ResponseStarted and ResponseComplete).</param>
/// <param name="Stage">ResponseStarted, ResponseComplete or Panic (RequestReceived is omitted by the policy).</param>
/// <param name="User">The authenticated user name.</param>
/// <param name="Verb">The request's verb: for resources get/list/watch/create/update/patch/delete/deletecollection; for other URLs the HTTP verb in lower case.</param>
/// <param name="RequestUri">The request's path and query.</param>
/// <param name="Code">The HTTP status code of the response (0 when the event has none).</param>
/// <param name="Request">The resource request; null for a non-resource URL such as /version or /apis.</param>
/// <param name="Decision">The authorizer's decision ("allow" or "forbid"; null when not recorded). A 403 with "allow"
/// came from admission (an exceeded ResourceQuota, say), not from RBAC.</param>
public sealed record AuditEvent(string AuditId, string Stage, string User, string Verb, string RequestUri, int Code, ApiRequest? Request, string? Decision)
{
    /// <summary>True when RBAC refused the request.</summary>
    public bool Forbidden => Decision == "forbid" || (Decision is null && Code == 403);

    /// <summary>When the API server received the request (microseconds, its clock: the test machine's); null when not recorded.</summary>
    public DateTimeOffset? Received { get; init; }

    /// <summary>True for a request that writes: create, update, patch, delete or deletecollection.</summary>
    public bool IsWrite => Verb is "create" or "update" or "patch" or "delete" or "deletecollection";
}

/// <summary>Reads a kube-apiserver audit log written with --audit-log-format=json (one event per line).</summary>
public static class AuditLog
{
    /// <summary>
    /// The audit policy of <see cref="ControlPlane"/>: Metadata for <paramref name="users"/>, nothing
    /// for anyone else, and no RequestReceived stage (the outcome is what matters).
    /// </summary>
    public static string Policy(IEnumerable<string> users) =>
        $$"""
        apiVersion: audit.k8s.io/v1
        kind: Policy
        omitStages: [RequestReceived]
        rules:
          - level: Metadata
            users: [{{string.Join(", ", users.Select(u => JsonSerializer.Serialize(u)))}}]
          - level: None
        """;

    /// <summary>Every event in the log at <paramref name="path"/> and its rotated backups (none when there is no log yet).</summary>
    public static IReadOnlyList<AuditEvent> Read(string path)
    {
        var dir = Path.GetDirectoryName(path)!;
        var stem = Path.GetFileNameWithoutExtension(path);
        var files = Directory.Exists(dir)
            ? Directory.GetFiles(dir, $"{stem}*{Path.GetExtension(path)}").Order(StringComparer.Ordinal).ToList()
            : [];
        var events = new List<AuditEvent>();
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                // The API server may be writing the last line right now.
                if (line.Length == 0 || !line.EndsWith('}'))
                {
                    continue;
                }

                events.Add(Parse(line));
            }
        }

        return events;
    }

    private static AuditEvent Parse(string line)
    {
        using var doc = JsonDocument.Parse(line);
        var e = doc.RootElement;
        static string? Str(JsonElement el, string name) => el.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        ApiRequest? request = null;
        var verb = Str(e, "verb") ?? "";
        if (e.TryGetProperty("objectRef", out var obj) && Str(obj, "resource") is { } resource)
        {
            request = new ApiRequest(verb, Str(obj, "apiGroup") ?? "", resource, Str(obj, "subresource"), Str(obj, "namespace"), Str(obj, "name"));
        }

        var code = e.TryGetProperty("responseStatus", out var status) && status.TryGetProperty("code", out var c) && c.TryGetInt32(out var n) ? n : 0;
        var user = e.TryGetProperty("user", out var u) ? Str(u, "username") ?? "" : "";
        var decision = e.TryGetProperty("annotations", out var annotations) ? Str(annotations, "authorization.k8s.io/decision") : null;
        var received = Str(e, "requestReceivedTimestamp") is { } t
            && DateTimeOffset.TryParse(t, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at) ? at : (DateTimeOffset?)null;
        return new AuditEvent(Str(e, "auditID") ?? "", Str(e, "stage") ?? "", user, verb, Str(e, "requestURI") ?? "", code, request, decision) { Received = received };
    }
}
