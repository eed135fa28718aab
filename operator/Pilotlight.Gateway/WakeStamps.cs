using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>
/// When the gateway posts a function's wake for the operator (the time and how many requests wait): at once for
/// the first request at zero that no warm pod can take (one a warm pod took is stamped once it was served, so
/// nothing is written on its way); again as soon as the requests waiting would ask for more pods
/// (<see cref="WakeRequest.PodsFor"/>), at most every <see cref="GrowthSpacing"/>; otherwise at most once per
/// <see cref="Spacing"/>. One wake per function is on its way at a time; what arrives meanwhile is stamped after it.
/// </summary>
internal sealed partial class WakeStamps(Func<ObjectKey, DateTimeOffset, int, Task> send, TimeProvider time, ILogger log)
{
    /// <summary>Least time between two stamps of one function with the same number of pods asked for.</summary>
    public static readonly TimeSpan Spacing = TimeSpan.FromSeconds(1);

    /// <summary>Least time between two stamps of one function that ask for more pods.</summary>
    public static readonly TimeSpan GrowthSpacing = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentDictionary<ObjectKey, Stamp> _stamps = new();

    /// <summary>Requests wait for <paramref name="function"/> with no ready pod; <paramref name="waiting"/> counts them when the stamp goes out.</summary>
    public void Wake(GpuFunction function, Func<int> waiting)
    {
        var stamp = _stamps.GetOrAdd(ObjectKey.Of(function), k => new Stamp(k));
        TimeSpan? recheck = null;
        lock (stamp)
        {
            stamp.Function = function;
            stamp.Waiting = waiting;
            if (stamp.Sending)
            {
                stamp.Again = true;
                return;
            }

            var now = time.GetUtcNow();
            var pods = WakeRequest.PodsFor(function.Spec.Scaling, waiting());
            var since = stamp.At is { } at ? now - at : TimeSpan.MaxValue;
            if (since < Spacing && (pods <= stamp.Pods || since < GrowthSpacing))
            {
                if (pods > stamp.Pods && !stamp.Rechecking)
                {
                    // More pods are wanted than the last stamp says: stamp again once the spacing allows.
                    stamp.Rechecking = true;
                    recheck = GrowthSpacing - since;
                }

                if (recheck is null)
                {
                    return;
                }
            }
            else
            {
                stamp.Sending = true;
            }
        }

        if (recheck is { } delay)
        {
            _ = RecheckAsync(stamp, delay);
            return;
        }

        _ = SendAsync(stamp);
    }

    /// <summary>The function is gone: so is what was stamped for it.</summary>
    public void Forget(ObjectKey key) => _stamps.TryRemove(key, out _);

    private async Task RecheckAsync(Stamp stamp, TimeSpan delay)
    {
        await Task.Delay(delay, time).ConfigureAwait(false);
        GpuFunction function;
        Func<int> waiting;
        lock (stamp)
        {
            stamp.Rechecking = false;
            (function, waiting) = (stamp.Function!, stamp.Waiting!);
        }

        Wake(function, waiting);
    }

    private async Task SendAsync(Stamp stamp)
    {
        GpuFunction function;
        Func<int> waiting;
        lock (stamp)
        {
            (function, waiting) = (stamp.Function!, stamp.Waiting!);
        }

        var now = time.GetUtcNow();
        var count = waiting();
        try
        {
            await send(stamp.Key, now, count).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogWakeFailed(log, stamp.Key, ex.Message);
        }

        bool again;
        lock (stamp)
        {
            stamp.At = now;
            stamp.Pods = WakeRequest.PodsFor(function.Spec.Scaling, count);
            stamp.Sending = false;
            again = stamp.Again;
            stamp.Again = false;
            (function, waiting) = (stamp.Function!, stamp.Waiting!);
        }

        if (again)
        {
            Wake(function, waiting);
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Could not wake {Function}: {Error}")]
    private static partial void LogWakeFailed(ILogger logger, ObjectKey function, string error);

    private sealed class Stamp(ObjectKey key)
    {
        public ObjectKey Key { get; } = key;

        public GpuFunction? Function { get; set; }

        public Func<int>? Waiting { get; set; }

        /// <summary>When the last stamp went out, and the pods its count asks for.</summary>
        public DateTimeOffset? At { get; set; }

        public int Pods { get; set; }

        public bool Sending { get; set; }

        public bool Again { get; set; }

        public bool Rechecking { get; set; }
    }
}
