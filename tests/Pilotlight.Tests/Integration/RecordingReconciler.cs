using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// A reconciler for the runtime tests: counts reconciles per key, optionally
/// writes status (observedGeneration) like a real controller, and throws for
/// names it is told to fail.
/// </summary>
internal sealed class RecordingReconciler(IKubernetes client, bool writeStatus = false) : IReconciler<GpuFunction>
{
    private readonly ConcurrentDictionary<ObjectKey, int> _counts = new();
    private readonly ConcurrentDictionary<ObjectKey, long> _statusWritten = new();
    private readonly ConcurrentQueue<DateTime> _failures = new();
    private int _concurrent;

    public HashSet<string> FailingNames { get; } = [];

    public Func<int>? OnFirstReconcile { get; set; }

    public int? SeenAtFirstReconcile { get; private set; }

    public int MaxConcurrentSameKey { get; private set; }

    public int Total => _counts.Values.Sum();

    public int Failures => _failures.Count;

    public int Count(string ns, string name) => _counts.GetValueOrDefault(new ObjectKey(ns, name));

    public long StatusGeneration(string ns, string name) => _statusWritten.GetValueOrDefault(new ObjectKey(ns, name));

    public ConcurrentBag<ObjectKey> Deleted { get; } = [];

    public async Task<ReconcileResult> ReconcileAsync(GpuFunction entity, CancellationToken cancellationToken)
    {
        var key = ObjectKey.Of(entity);
        if (Interlocked.Increment(ref _concurrent) == 1 && SeenAtFirstReconcile is null && OnFirstReconcile is { } first)
        {
            SeenAtFirstReconcile = first();
        }

        try
        {
            if (FailingNames.Contains(entity.Metadata.Name))
            {
                _failures.Enqueue(DateTime.UtcNow);
                _counts.AddOrUpdate(key, 1, (_, n) => n + 1);
                throw new InvalidOperationException($"{entity.Metadata.Name} is told to fail");
            }

            _counts.AddOrUpdate(key, 1, (_, n) => n + 1);
            if (writeStatus)
            {
                var patch = new V1Patch($"{{\"status\":{{\"observedGeneration\":{entity.Metadata.Generation}}}}}", V1Patch.PatchType.MergePatch);
                await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(patch, Group.Name, Group.Version,
                    entity.Metadata.NamespaceProperty, "gpufunctions", entity.Metadata.Name, cancellationToken: cancellationToken);
                _statusWritten[key] = entity.Metadata.Generation ?? 0;
            }

            return ReconcileResult.Done;
        }
        finally
        {
            Interlocked.Decrement(ref _concurrent);
        }
    }

    public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        Deleted.Add(key);
        return Task.CompletedTask;
    }
}
