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

    /// <summary>Cached objects in one namespace.</summary>
    public IEnumerable<T> List(string? @namespace) =>
        _cache.Where(kv => kv.Key.Namespace == @namespace).Select(kv => kv.Value);

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
                fresh[ObjectKey.Of(item)] = item;
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
            if (!fresh.ContainsKey(key) && _cache.TryRemove(key, out _))
            {
                Dispatch(new InformerEvent<T>(WatchEventType.Deleted, old, old));
            }
        }

        foreach (var (key, item) in fresh)
        {
            if (_cache.TryGetValue(key, out var old))
            {
                _cache[key] = item;
                if (old.Metadata.ResourceVersion != item.Metadata.ResourceVersion)
                {
                    Dispatch(new InformerEvent<T>(WatchEventType.Modified, old, item));
                }
            }
            else
            {
                _cache[key] = item;
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
                    Upsert(item!);
                    break;
                case WatchEventType.Deleted:
                    var key = ObjectKey.Of(item!);
                    _cache.TryRemove(key, out var old);
                    Dispatch(new InformerEvent<T>(WatchEventType.Deleted, old, item!));
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
        var key = ObjectKey.Of(item);
        var had = _cache.TryGetValue(key, out var old);
        _cache[key] = item;
        Dispatch(new InformerEvent<T>(had ? WatchEventType.Modified : WatchEventType.Added, old, item));
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
