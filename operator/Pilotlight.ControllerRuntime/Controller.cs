using System.Threading.Channels;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Pilotlight.ControllerRuntime;

/// <summary>Tuning for one controller.</summary>
public sealed record ControllerOptions
{
    /// <summary>Keys reconciled at once (never the same key twice at once).</summary>
    public int Workers { get; init; } = 2;

    /// <summary>Back-off after a reconcile throws.</summary>
    public Backoff Backoff { get; init; } = new(TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5));

    /// <summary>On shutdown, how long in-flight reconciles may finish before they are cancelled.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>Something a <see cref="ControllerHost"/> runs while it leads.</summary>
public interface IController
{
    /// <summary>The controller's name, used as a metric label and in logs.</summary>
    string Name { get; }

    /// <summary>Informers the controller reads; the host runs them and waits for their first list.</summary>
    IReadOnlyList<IInformer> Informers { get; }

    /// <summary>Reconciles until <paramref name="cancellationToken"/> fires. Called only after every informer synced.</summary>
    Task RunAsync(ControllerMetrics metrics, CancellationToken cancellationToken);
}

/// <summary>
/// Reconciles objects of kind <typeparamref name="T"/>: events from the
/// primary informer and from children mapped to their owner go through a
/// de-duplicating work queue to <see cref="IReconciler{T}"/>.
/// </summary>
public sealed class Controller<T> : IController where T : IKubernetesObject<V1ObjectMeta>
{
    private readonly Informer<T> _informer;
    private readonly IReconciler<T> _reconciler;
    private readonly ControllerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly List<IInformer> _informers = [];
    private volatile WorkQueue<ObjectKey>? _queue;

    /// <summary>A controller named <paramref name="name"/> reconciling what <paramref name="informer"/> caches.</summary>
    public Controller(string name, Informer<T> informer, IReconciler<T> reconciler, ControllerOptions? options = null,
        TimeProvider? time = null, ILogger? logger = null)
    {
        Name = name;
        _informer = informer;
        _reconciler = reconciler;
        _options = options ?? new ControllerOptions();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _informers.Add(informer);
        informer.AddHandler(OnPrimary);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public IReadOnlyList<IInformer> Informers => _informers;

    /// <summary>
    /// Reconciles the owner when a child changes: the child's controller
    /// owner reference of kind <paramref name="ownerKind"/> names it.
    /// </summary>
    public Controller<T> Owns<TChild>(Informer<TChild> children, string ownerKind)
        where TChild : IKubernetesObject<V1ObjectMeta> =>
        Watches(children, child => OwnerOf(child, ownerKind));

    /// <summary>Runs <paramref name="cache"/> with this controller and waits for its first list before any reconcile; its changes trigger nothing.</summary>
    public Controller<T> Reads(IInformer cache)
    {
        _informers.Add(cache);
        return this;
    }

    /// <summary>Reconciles the keys <paramref name="map"/> returns whenever an object of another kind changes.</summary>
    public Controller<T> Watches<TOther>(Informer<TOther> other, Func<TOther, IEnumerable<ObjectKey>> map)
        where TOther : IKubernetesObject<V1ObjectMeta>
    {
        _informers.Add(other);
        other.AddHandler(e =>
        {
            var queue = _queue;
            if (queue is null)
            {
                return;
            }

            foreach (var key in map(e.Object))
            {
                if (_informer.Get(key) is not null)
                {
                    queue.Add(key);
                }
            }
        });
        return this;
    }

    /// <summary>Queues a reconcile of <paramref name="key"/> (ignored while this instance does not lead).</summary>
    public void Enqueue(ObjectKey key) => _queue?.Add(key);

    /// <inheritdoc />
    public async Task RunAsync(ControllerMetrics metrics, CancellationToken cancellationToken)
    {
        using var queue = new WorkQueue<ObjectKey>(_time, _options.Backoff, metrics, Name);
        _queue = queue;
        var workerCount = Math.Max(1, _options.Workers);
        metrics.MaxConcurrentReconciles.WithLabels(Name).Set(workerCount);
        try
        {
            foreach (var obj in _informer.List())
            {
                queue.Add(ObjectKey.Of(obj));
            }

            // Stop handing out keys at once; let in-flight reconciles finish within the grace.
            using var hard = new CancellationTokenSource();
            using var stop = cancellationToken.Register(() =>
            {
                queue.ShutDown();
                hard.CancelAfter(_options.ShutdownGrace);
            });
            var workers = Enumerable.Range(0, workerCount)
                .Select(_ => Task.Run(() => WorkAsync(queue, metrics, hard.Token), CancellationToken.None))
                .ToArray();
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        finally
        {
            _queue = null;
            metrics.WorkQueueDepth.WithLabels(Name).Set(0);
            metrics.ActiveWorkers.WithLabels(Name).Set(0);
        }
    }

    private void OnPrimary(InformerEvent<T> e)
    {
        if (_queue is { } queue && ShouldReconcile(e))
        {
            queue.Add(ObjectKey.Of(e.Object));
        }
    }

    /// <summary>
    /// A modification matters when the spec (generation), deletion state,
    /// labels, annotations or finalizers changed: the controller's own status
    /// writes do not cause another reconcile.
    /// </summary>
    internal static bool ShouldReconcile(InformerEvent<T> e)
    {
        if (e.Type != WatchEventType.Modified || e.Old is null)
        {
            return true;
        }

        var (o, n) = (e.Old.Metadata, e.Object.Metadata);
        if (o.Generation is null || n.Generation is null)
        {
            return true;
        }

        return o.Generation != n.Generation
            || o.DeletionTimestamp != n.DeletionTimestamp
            || !SameMap(o.Labels, n.Labels)
            || !SameMap(o.Annotations, n.Annotations)
            || !(o.Finalizers ?? []).SequenceEqual(n.Finalizers ?? []);
    }

    private static bool SameMap(IDictionary<string, string>? a, IDictionary<string, string>? b) =>
        (a?.Count ?? 0) == (b?.Count ?? 0)
        && (a is null || a.All(kv => b!.TryGetValue(kv.Key, out var v) && v == kv.Value));

    private static IEnumerable<ObjectKey> OwnerOf<TChild>(TChild child, string ownerKind)
        where TChild : IKubernetesObject<V1ObjectMeta>
    {
        foreach (var owner in child.Metadata.OwnerReferences ?? [])
        {
            if (owner.Controller == true && owner.Kind == ownerKind)
            {
                yield return new ObjectKey(child.Metadata.NamespaceProperty, owner.Name);
            }
        }
    }

    private async Task WorkAsync(WorkQueue<ObjectKey> queue, ControllerMetrics metrics, CancellationToken ct)
    {
        var active = metrics.ActiveWorkers.WithLabels(Name);
        while (true)
        {
            ObjectKey key;
            try
            {
                key = await queue.TakeAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
            {
                return;
            }

            active.Inc();
            try
            {
                await ReconcileOneAsync(queue, metrics, key, ct).ConfigureAwait(false);
            }
            finally
            {
                active.Dec();
                queue.Done(key);
            }
        }
    }

    private async Task ReconcileOneAsync(WorkQueue<ObjectKey> queue, ControllerMetrics metrics, ObjectKey key, CancellationToken ct)
    {
        var started = _time.GetTimestamp();
        string result;
        try
        {
            var obj = _informer.Get(key);
            if (obj is null)
            {
                await _reconciler.DeletedAsync(key, ct).ConfigureAwait(false);
                queue.Forget(key);
                result = "success";
            }
            else
            {
                var outcome = await _reconciler.ReconcileAsync(obj, ct).ConfigureAwait(false);
                queue.Forget(key);
                if (outcome.RequeueAfter is { } after)
                {
                    queue.AddAfter(key, after);
                    result = "requeue_after";
                }
                else
                {
                    result = "success";
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            result = "error";
            metrics.ReconcileErrors.WithLabels(Name).Inc();
            var delay = queue.AddRateLimited(key);
            _logger.LogError(ex, "Reconcile of {Controller} {Key} failed; retrying in {Delay}", Name, key, delay);
        }

        metrics.ReconcileTotal.WithLabels(Name, result).Inc();
        metrics.ReconcileTime.WithLabels(Name).Observe(_time.GetElapsedTime(started).TotalSeconds);
    }
}
