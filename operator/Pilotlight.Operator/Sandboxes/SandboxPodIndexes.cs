using k8s.Models;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// The pod cache's indexes the sandbox controllers look pods up by, so a reconcile reads the pods of its sandbox
/// or pool, not every pod of the namespace. Add them with <see cref="AddTo"/> before the informer runs.
/// </summary>
public static class SandboxPodIndexes
{
    /// <summary>The name of the index of pods by the UID of each of their owner references, controller or not.</summary>
    public const string OwnerUid = "owner-uid";

    /// <summary>The name of the index of warm pool pods (labelled with a pool and a shape) by "namespace/shape".</summary>
    public const string WarmShape = "sandbox-warm-shape";

    /// <summary>Adds <see cref="OwnerUid"/>, <see cref="WarmShape"/> and <see cref="Indexers.ControllerUid"/> to <paramref name="pods"/>.</summary>
    public static Informer<V1Pod> AddTo(Informer<V1Pod> pods)
    {
        ArgumentNullException.ThrowIfNull(pods);
        return pods
            .AddIndex(Indexers.ControllerUid, Indexers.ByControllerUid)
            .AddIndex(OwnerUid, ByOwnerUid)
            .AddIndex(WarmShape, ByWarmShape);
    }

    /// <summary>The UIDs of every owner reference of <paramref name="pod"/>, for <see cref="OwnerUid"/>.</summary>
    public static IEnumerable<string> ByOwnerUid(V1Pod pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        return (pod.Metadata?.OwnerReferences ?? []).Select(o => o.Uid).Where(uid => !string.IsNullOrEmpty(uid)).Distinct(StringComparer.Ordinal);
    }

    /// <summary>"namespace/shape" for a pod labelled with a pool and a shape (a warm pod not yet claimed), for <see cref="WarmShape"/>.</summary>
    public static IEnumerable<string> ByWarmShape(V1Pod pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        return pod.Metadata?.Labels is { } labels && labels.ContainsKey(SandboxPods.PoolLabel)
            && labels.TryGetValue(SandboxPods.ShapeLabel, out var shape) && shape is not null
            ? [WarmShapeValue(pod.Metadata.NamespaceProperty, shape)]
            : [];
    }

    /// <summary>The value <see cref="WarmShape"/> files warm pods of <paramref name="shape"/> in <paramref name="namespace"/> under.</summary>
    public static string WarmShapeValue(string? @namespace, string shape) => $"{@namespace}/{shape}";

    /// <summary>The pods in <paramref name="namespace"/> with an owner reference to <paramref name="ownerUid"/>.</summary>
    internal static IEnumerable<V1Pod> OwnedBy(this Informer<V1Pod> pods, string? @namespace, string? ownerUid) =>
        string.IsNullOrEmpty(ownerUid) ? []
        : pods.ByIndex(OwnerUid, ownerUid).Where(p => p.Metadata.NamespaceProperty == @namespace);
}
