using System.Collections.Concurrent;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Pilotlight.ControllerRuntime;

/// <summary>A change seen by an informer; <paramref name="Old"/> is null for additions.</summary>
public sealed record InformerEvent<T>(WatchEventType Type, T? Old, T Object);

/// <summary>Options shared by informers.</summary>
public sealed record InformerOptions
{
    /// <summary>Page size of list calls.</summary>
    public int PageSize { get; init; } = 500;

    /// <summary>How long one watch call lasts before it is renewed from the last resourceVersion.</summary>
    public TimeSpan WatchTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Back-off between failed list/watch attempts.</summary>
    public Backoff Backoff { get; init; } = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10));

    /// <summary>
    /// Applied to every object before it is cached (and handed to handlers): the default drops
    /// <c>metadata.managedFields</c>, which nothing in Pilotlight reads and which is often the largest part of an object.
    /// </summary>
    public Func<object, object> Transform { get; init; } = InformerTransforms.StripManagedFields;
}

/// <summary>Transforms an informer may apply before caching.</summary>
public static class InformerTransforms
{
    /// <summary>Drops <c>metadata.managedFields</c> (server-side apply bookkeeping) in place.</summary>
    public static object StripManagedFields(object obj)
    {
        if (obj is IMetadata<V1ObjectMeta> { Metadata: { } meta })
        {
            meta.ManagedFields = null;
        }

        return obj;
    }

    /// <summary>Caches objects as the API server sent them.</summary>
    public static object None(object obj) => obj;
}

/// <summary>Index functions shared by the operator and the gateway.</summary>
public static class Indexers
{
    /// <summary>The name of the index of objects by their controller owner's UID.</summary>
    public const string ControllerUid = "controller-uid";

    /// <summary>The UID of an object's controller owner reference, if it has one.</summary>
    public static IEnumerable<string> ByControllerUid(IKubernetesObject<V1ObjectMeta> obj)
    {
        foreach (var owner in obj.Metadata.OwnerReferences ?? [])
        {
            if (owner.Controller == true && owner.Uid is { Length: > 0 } uid)
            {
                yield return uid;
            }
        }
    }
}

/// <summary>
/// Keeps a cache of one kind in step with the API server: a paged list, then a
/// watch from the list's resourceVersion with bookmarks. A watch that ends
/// normally resumes from the last resourceVersion seen; 410 Gone or a dropped
/// connection relists, and the relist is diffed against the cache so handlers
/// see the additions, changes and deletions they missed.
/// </summary>
public sealed class Informer<T> : IInformer where T : IKubernetesObject<V1ObjectMeta>
{
    private readonly ListWatch<T> _listWatch;
    private readonly InformerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ObjectKey, T> _cache = new();
    private readonly List<Action<InformerEvent<T>>> _handlers = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Secondary indexes: name -> (index function, index value -> keys). The namespace index is always there.
    // Written only by the list/watch loop, under _indexGate; read under it too.
    private readonly object _indexGate = new();
    private readonly Dictionary<string, (Func<T, IEnumerable<string>> Keys, Dictionary<string, HashSet<ObjectKey>> Values)> _indexes = new()
    {
        [NamespaceIndex] = (o => [o.Metadata.NamespaceProperty ?? ""], new()),
    };
    private ControllerMetrics? _metrics;
    private int _started;

    /// <summary>An informer over <paramref name="listWatch"/>.</summary>
    public Informer(ListWatch<T> listWatch, InformerOptions? options = null, TimeProvider? time = null, ILogger? logger = null)
    {
        _listWatch = listWatch;
        _options = options ?? new InformerOptions();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The resource this informer follows.</summary>
    public string Resource => _listWatch.Resource;

    /// <summary>Completes once the first full list is in the cache.</summary>
    public Task Synced => _synced.Task;

    /// <summary>True once the first full list is in the cache.</summary>
    public bool HasSynced => _synced.Task.IsCompletedSuccessfully;

    /// <summary>How many times the watch was re-established after a relist (410 or connection loss).</summary>
    public int Relists { get; private set; }

    /// <summary>The latest cached copy of an object, if any.</summary>
    public T? Get(ObjectKey key) => _cache.TryGetValue(key, out var value) ? value : default;

    /// <summary>A snapshot of every cached object.</summary>
    public IReadOnlyList<T> List() => [.. _cache.Values];

    /// <summary>The built-in index of objects by namespace ("" for cluster-scoped objects).</summary>
    public const string NamespaceIndex = "namespace";

    /// <summary>Cached objects in one namespace, from the namespace index.</summary>
    public IReadOnlyList<T> List(string? @namespace) => ByIndex(NamespaceIndex, @namespace ?? "");

    /// <summary>
    /// Adds an index: <paramref name="keys"/> gives the values an object is filed under. Call before
    /// <see cref="RunAsync"/>; adding the same index twice is a no-op (informers are shared by controllers).
    /// </summary>
    public Informer<T> AddIndex(string name, Func<T, IEnumerable<string>> keys)
    {
        if (Volatile.Read(ref _started) != 0)
        {
            throw new InvalidOperationException("Indexes must be added before the informer runs.");
        }

        lock (_indexGate)
        {
            _indexes.TryAdd(name, (keys, new()));
        }

        return this;
    }

    /// <summary>Cached objects filed under <paramref name="value"/> in index <paramref name="name"/>.</summary>
    public IReadOnlyList<T> ByIndex(string name, string value)
    {
        List<T> found = [];
        lock (_indexGate)
        {
            if (!_indexes.TryGetValue(name, out var index))
            {
                throw new ArgumentException($"The {Resource} informer has no index '{name}'", nameof(name));
            }

            if (index.Values.TryGetValue(value, out var keys))
            {
                foreach (var key in keys)
                {
                    if (_cache.TryGetValue(key, out var item))
                    {
                        found.Add(item);
                    }
                }
            }
        }

        return found;
    }

    /// <summary>How many objects are cached.</summary>
    public int Count => _cache.Count;

    /// <summary>Registers a handler; call before <see cref="RunAsync"/>. Handlers must be quick and must not throw.</summary>
    public void AddHandler(Action<InformerEvent<T>> handler)
    {
        if (Volatile.Read(ref _started) != 0)
        {
            throw new InvalidOperationException("Handlers must be added before the informer runs.");
        }

        _handlers.Add(handler);
    }

    void IInformer.UseMetrics(ControllerMetrics metrics) => _metrics = metrics;

    /// <summary>Lists and watches until <paramref name="cancellationToken"/> fires.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("An informer runs once.");
        }

        var failures = 0;
        string? resourceVersion = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                resourceVersion ??= await RelistAsync(cancellationToken).ConfigureAwait(false);
                failures = 0;
                resourceVersion = await WatchAsync(resourceVersion, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                var gone = IsGone(ex);
                var reason = gone ? "gone" : "error";
                _metrics?.WatchRestarts.WithLabels(_listWatch.Resource, reason).Inc();
                if (gone)
                {
                    _logger.LogInformation("Watch of {Resource} expired (410 Gone); relisting", _listWatch.Resource);
                }
                else
                {
                    _logger.LogWarning("List/watch of {Resource} failed ({Error}); relisting", _listWatch.Resource, ex.Message);
                }

                resourceVersion = null;
                if (!gone)
                {
                    try
                    {
                        await Task.Delay(_options.Backoff.Delay(failures++), _time, cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }
        }
    }

    private async Task<string> RelistAsync(CancellationToken ct)
    {
        var fresh = new Dictionary<ObjectKey, T>();
        string? cont = null;
        string resourceVersion;
        do
        {
            var page = await _listWatch.ListAsync(cont, _options.PageSize, ct).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                fresh[ObjectKey.Of(item)] = (T)_options.Transform(item);
            }

            cont = string.IsNullOrEmpty(page.Continue) ? null : page.Continue;
            resourceVersion = page.ResourceVersion;
        }
        while (cont is not null);

        if (HasSynced)
        {
            Relists++;
        }

        foreach (var (key, old) in _cache)
        {
            if (!fresh.ContainsKey(key) && Remove(key) is not null)
            {
                Dispatch(new InformerEvent<T>(WatchEventType.Deleted, old, old));
            }
        }

        foreach (var (key, item) in fresh)
        {
            var old = Store(key, item);
            if (old is not null)
            {
                if (old.Metadata.ResourceVersion != item.Metadata.ResourceVersion)
                {
                    Dispatch(new InformerEvent<T>(WatchEventType.Modified, old, item));
                }
            }
            else
            {
                Dispatch(new InformerEvent<T>(WatchEventType.Added, default, item));
            }
        }

        _logger.LogDebug("Listed {Count} {Resource} at resourceVersion {ResourceVersion}", fresh.Count, _listWatch.Resource, resourceVersion);
        _synced.TrySetResult();
        return resourceVersion;
    }

    /// <summary>Watches until the server ends the call; returns the last resourceVersion seen.</summary>
    private async Task<string> WatchAsync(string resourceVersion, CancellationToken ct)
    {
        var timeout = (int)_options.WatchTimeout.TotalSeconds;
        Exception? error = null;
        await foreach (var (type, item) in _listWatch.WatchAsync(resourceVersion, timeout, e => error ??= e, ct).ConfigureAwait(false))
        {
            if (error is not null)
            {
                break;
            }

            if (item?.Metadata?.ResourceVersion is { } rv)
            {
                resourceVersion = rv;
            }

            switch (type)
            {
                case WatchEventType.Added:
                case WatchEventType.Modified:
                    Upsert((T)_options.Transform(item!));
                    break;
                case WatchEventType.Deleted:
                    var gone = (T)_options.Transform(item!);
                    var old = Remove(ObjectKey.Of(gone));
                    Dispatch(new InformerEvent<T>(WatchEventType.Deleted, old, gone));
                    break;
                case WatchEventType.Bookmark:
                    break;
                default:
                    throw new InvalidOperationException($"Unexpected watch event {type} for {_listWatch.Resource}");
            }
        }

        // The server reports an expired resourceVersion as an ERROR event
        // carrying a Status, then closes the stream.
        if (error is not null)
        {
            throw error;
        }

        return resourceVersion;
    }

    private void Upsert(T item)
    {
        var old = Store(ObjectKey.Of(item), item);
        Dispatch(new InformerEvent<T>(old is not null ? WatchEventType.Modified : WatchEventType.Added, old, item));
    }

    /// <summary>Caches <paramref name="item"/> and files it in every index; returns what it replaced.</summary>
    private T? Store(ObjectKey key, T item)
    {
        lock (_indexGate)
        {
            _cache.TryGetValue(key, out var old);
            if (old is not null)
            {
                Unfile(key, old);
            }

            _cache[key] = item;
            foreach (var (keys, values) in _indexes.Values)
            {
                foreach (var value in keys(item))
                {
                    if (!values.TryGetValue(value, out var set))
                    {
                        values[value] = set = [];
                    }

                    set.Add(key);
                }
            }

            return old;
        }
    }

    /// <summary>Drops <paramref name="key"/> from the cache and every index; returns what was cached.</summary>
    private T? Remove(ObjectKey key)
    {
        lock (_indexGate)
        {
            if (!_cache.TryRemove(key, out var old))
            {
                return default;
            }

            Unfile(key, old);
            return old;
        }
    }

    private void Unfile(ObjectKey key, T old)
    {
        foreach (var (keys, values) in _indexes.Values)
        {
            foreach (var value in keys(old))
            {
                if (values.TryGetValue(value, out var set) && set.Remove(key) && set.Count == 0)
                {
                    values.Remove(value);
                }
            }
        }
    }

    private void Dispatch(InformerEvent<T> e)
    {
        foreach (var handler in _handlers)
        {
            try
            {
                handler(e);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Handler for {Resource} threw", _listWatch.Resource);
            }
        }
    }

    private static bool IsGone(Exception ex) => ex switch
    {
        KubernetesException k => k.Status?.Code == 410,
        HttpOperationException h => (int?)h.Response?.StatusCode == 410,
        _ => false,
    };
}
