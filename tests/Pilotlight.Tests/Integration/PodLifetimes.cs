using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Tests.Integration;

/// <summary>A test's own watch of one namespace's pods: when each started (its status) and when it was seen gone, by UID.</summary>
internal sealed class PodLifetimes : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task _watching = Task.CompletedTask;

    private PodLifetimes()
    {
    }

    /// <summary>Start times from the pods' status.</summary>
    public ConcurrentDictionary<string, DateTime> Started { get; } = new();

    /// <summary>When the watch saw each pod deleted.</summary>
    public ConcurrentDictionary<string, DateTime> Gone { get; } = new();

    /// <summary>Watches <paramref name="ns"/>'s pods; returns once the watch has listed them.</summary>
    public static async Task<PodLifetimes> WatchAsync(IKubernetes client, string ns)
    {
        var lifetimes = new PodLifetimes();
        var watch = new Informer<V1Pod>(ListWatch.ForPods(client, fieldSelector: $"metadata.namespace={ns}"));
        watch.AddHandler(e =>
        {
            if (e.Type == WatchEventType.Deleted)
            {
                lifetimes.Gone.TryAdd(e.Object.Metadata.Uid, DateTime.UtcNow);
            }
            else if (e.Object.Status?.StartTime is { } start)
            {
                lifetimes.Started.TryAdd(e.Object.Metadata.Uid, start);
            }
        });
        lifetimes._watching = watch.RunAsync(lifetimes._stop.Token);
        await watch.Synced;
        return lifetimes;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _watching;
        _stop.Dispose();
    }
}
