using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Usage;

/// <summary>A pod's whole billing interval, once it is gone.</summary>
public sealed record ClosedPod
{
    /// <summary>Namespace of the function or sandbox.</summary>
    [JsonPropertyName("namespace")]
    public required string Namespace { get; init; }

    /// <summary>
    /// What the pod was billed to: <c>GpuFunction</c> or <c>Sandbox</c>. Lines written before sandboxes were
    /// billed have none, and are functions'.
    /// </summary>
    [JsonPropertyName("kind")]
    public string Kind { get; init; } = GpuFunction.KindName;

    /// <summary>The function's or sandbox's name (under the key <c>function</c>, which journals already hold).</summary>
    [JsonPropertyName("function")]
    public required string Name { get; init; }

    /// <summary>The pod's UID.</summary>
    [JsonPropertyName("uid")]
    public required string Uid { get; init; }

    /// <summary>GPUs held.</summary>
    [JsonPropertyName("gpus")]
    public int Gpus { get; init; }

    /// <summary>Billing start.</summary>
    [JsonPropertyName("start")]
    public DateTime Start { get; init; }

    /// <summary>Billing end.</summary>
    [JsonPropertyName("end")]
    public DateTime End { get; init; }
}

/// <summary>
/// The closed billing intervals, for usage over any time window: kept in
/// memory and, given a path (a volume that outlives the operator pod), appended
/// as JSON lines and read back on start. A pod is recorded once however often
/// it is reported; an unreadable line is skipped and counted, never fatal.
/// </summary>
public sealed class UsageJournal
{
    private readonly ConcurrentDictionary<string, ClosedPod> _pods = new();
    private readonly string? _path;
    private readonly object _write = new();

    /// <summary>A journal, persisted at <paramref name="path"/> when given.</summary>
    public UsageJournal(string? path = null)
    {
        _path = path;
        if (path is null || !File.Exists(path))
        {
            return;
        }

        foreach (var line in File.ReadLines(path))
        {
            try
            {
                if (JsonSerializer.Deserialize<ClosedPod>(line) is { } pod)
                {
                    _pods.TryAdd(pod.Uid, pod);
                    continue;
                }
            }
            catch (JsonException)
            {
            }

            SkippedLines++;
        }
    }

    /// <summary>Lines of the journal file that could not be read.</summary>
    public int SkippedLines { get; }

    /// <summary>Records a closed pod (idempotent by UID).</summary>
    public void Record(ClosedPod pod)
    {
        if (!_pods.TryAdd(pod.Uid, pod) || _path is null)
        {
            return;
        }

        lock (_write)
        {
            File.AppendAllText(_path, JsonSerializer.Serialize(pod) + "\n");
        }
    }

    /// <summary>Closed pods of one function (or, given <paramref name="kind"/>, sandbox) that overlap [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public IEnumerable<ClosedPod> Of(string @namespace, string name, DateTime from, DateTime to, string kind = GpuFunction.KindName) =>
        _pods.Values.Where(p => p.Namespace == @namespace && p.Name == name && p.Kind == kind && p.End > from && p.Start < to);
}
