using System.Collections.Concurrent;
using k8s;
using k8s.Models;

namespace Pilotlight.ControllerRuntime;

/// <summary>
/// One shared instance of each short string that many cached objects repeat (namespaces, kinds, label keys and values,
/// condition types, reasons and messages), so that an informer's cache holds it once instead of once per object: a
/// deserialised object brings a fresh copy of every string it carries. Bounded: once <see cref="Capacity"/> distinct
/// strings are pooled, others are kept as they are (a pool of unique values would only cost memory).
/// </summary>
public sealed class StringPool(int capacity = 8192, int maxLength = 256)
{
    private readonly ConcurrentDictionary<string, string> _strings = new(StringComparer.Ordinal);

    /// <summary>How many distinct strings the pool holds at most.</summary>
    public int Capacity => capacity;

    /// <summary>How many distinct strings it holds now.</summary>
    public int Count => _strings.Count;

    /// <summary>The pooled instance equal to <paramref name="value"/>, or <paramref name="value"/> itself.</summary>
    public string? Get(string? value)
    {
        if (value is null || value.Length > maxLength)
        {
            return value;
        }

        if (_strings.TryGetValue(value, out var pooled))
        {
            return pooled;
        }

        return _strings.Count < capacity ? _strings.GetOrAdd(value, value) : value;
    }

    /// <summary>
    /// Pools what an object's type and metadata repeat: apiVersion, kind, namespace, label keys and values, annotation
    /// keys, owner references' apiVersion and kind. Names, UIDs and resourceVersions are unique: left alone.
    /// </summary>
    public void PoolMetadata(object obj)
    {
        if (obj is IKubernetesObject typed)
        {
            typed.ApiVersion = Get(typed.ApiVersion);
            typed.Kind = Get(typed.Kind);
        }

        if (obj is not IMetadata<V1ObjectMeta> { Metadata: { } meta })
        {
            return;
        }

        meta.NamespaceProperty = Get(meta.NamespaceProperty);
        if (meta.Labels is { Count: > 0 } labels)
        {
            var pooled = new Dictionary<string, string>(labels.Count);
            foreach (var (key, value) in labels)
            {
                pooled[Get(key)!] = Get(value)!;
            }

            meta.Labels = pooled;
        }

        if (meta.Annotations is { Count: > 0 } annotations)
        {
            var pooled = new Dictionary<string, string>(annotations.Count);
            foreach (var (key, value) in annotations)
            {
                pooled[Get(key)!] = value;
            }

            meta.Annotations = pooled;
        }

        foreach (var owner in meta.OwnerReferences ?? [])
        {
            owner.ApiVersion = Get(owner.ApiVersion);
            owner.Kind = Get(owner.Kind);
        }
    }

    /// <summary>Pools the type, status, reason and message of each condition (a few values shared by thousands of objects).</summary>
    public void PoolConditions(IEnumerable<V1Condition>? conditions)
    {
        foreach (var condition in conditions ?? [])
        {
            condition.Type = Get(condition.Type);
            condition.Status = Get(condition.Status);
            condition.Reason = Get(condition.Reason);
            condition.Message = Get(condition.Message);
        }
    }
}
