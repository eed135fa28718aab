using k8s;
using k8s.Models;

namespace Pilotlight.ControllerRuntime;

/// <summary>Identifies one object: its namespace (null for cluster-scoped ones) and name.</summary>
public sealed record ObjectKey(string? Namespace, string Name)
{
    /// <summary>The key of an object from its metadata.</summary>
    public static ObjectKey Of(IKubernetesObject<V1ObjectMeta> obj) =>
        new(obj.Metadata.NamespaceProperty, obj.Metadata.Name);

    /// <inheritdoc />
    public override string ToString() => Namespace is null ? Name : $"{Namespace}/{Name}";
}

/// <summary>What a reconcile asks of the controller afterwards.</summary>
/// <param name="RequeueAfter">Reconcile the same key again after this long, even without a change.</param>
public sealed record ReconcileResult(TimeSpan? RequeueAfter = null)
{
    /// <summary>Nothing more to do until something changes.</summary>
    public static ReconcileResult Done { get; } = new();

    /// <summary>Come back after <paramref name="delay"/>.</summary>
    public static ReconcileResult After(TimeSpan delay) => new(delay);
}

/// <summary>Brings the world in line with one object of kind <typeparamref name="T"/>.</summary>
public interface IReconciler<in T> where T : IKubernetesObject<V1ObjectMeta>
{
    /// <summary>
    /// Called with the latest cached copy of the object whenever it or one of
    /// its children changes. Must be idempotent. Throwing retries the key with
    /// back-off; other keys carry on. The object is shared with the cache: do not mutate it.
    /// </summary>
    Task<ReconcileResult> ReconcileAsync(T entity, CancellationToken cancellationToken);

    /// <summary>Called once the object is gone from the API server.</summary>
    Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken);
}
