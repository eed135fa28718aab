namespace Pilotlight.RuntimeShim;

/// <summary>How an attempt to get a forwarding slot ended.</summary>
public enum GateOutcome
{
    /// <summary>The caller holds a slot and must call <see cref="ShimRuntime.Exit"/>.</summary>
    Entered,

    /// <summary>All slots and queue places are taken.</summary>
    QueueFull,

    /// <summary>The shim is draining and takes no new work.</summary>
    Draining,
}

/// <summary>
/// The numbers <c>/stats</c> reports: requests holding a slot, requests waiting for one, requests that held a
/// slot and finished (whatever the upstream answered), and requests turned away with 503 (queue full or draining).
/// </summary>
public sealed record ShimStats(int InFlight, int Queued, long Served, long Rejected, bool Draining, int MaxConcurrency);

/// <summary>
/// The shim's shared state: a gate of <see cref="ShimOptions.MaxConcurrency"/> slots with a bounded FIFO wait
/// queue, the counters behind <c>/stats</c>, and the draining switch that SIGTERM flips.
/// </summary>
public sealed class ShimRuntime
{
    private readonly Lock _lock = new();
    private readonly LinkedList<TaskCompletionSource<bool>> _waiting = new();
    private readonly List<TaskCompletionSource> _idleWaiters = [];
    private readonly ShimOptions _options;
    private readonly TimeProvider _time;
    private int _inFlight;
    private long _served;
    private long _rejected;
    private volatile bool _draining;

    public ShimRuntime(ShimOptions options, TimeProvider time)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _time = time ?? throw new ArgumentNullException(nameof(time));
    }

    /// <summary>True once <see cref="StartDraining"/> ran.</summary>
    public bool IsDraining => _draining;

    /// <summary>A consistent snapshot of the counters.</summary>
    public ShimStats Stats()
    {
        lock (_lock)
        {
            return new ShimStats(_inFlight, _waiting.Count, _served, _rejected, _draining, _options.MaxConcurrency);
        }
    }

    /// <summary>
    /// Takes a slot, waiting in the queue if all are busy and a queue place is free. Throws
    /// <see cref="OperationCanceledException"/> if <paramref name="cancellationToken"/> fires while waiting.
    /// </summary>
    public async ValueTask<GateOutcome> EnterAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource<bool> waiter;
        LinkedListNode<TaskCompletionSource<bool>> node;
        lock (_lock)
        {
            if (_draining)
            {
                _rejected++;
                return GateOutcome.Draining;
            }

            if (_inFlight < _options.MaxConcurrency)
            {
                _inFlight++;
                return GateOutcome.Entered;
            }

            if (_waiting.Count >= _options.QueueLength)
            {
                _rejected++;
                return GateOutcome.QueueFull;
            }

            waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            node = _waiting.AddLast(waiter);
        }

        await using (cancellationToken.Register(() => Abandon(node)))
        {
            // Either Exit hands this waiter a slot (result true) or Abandon cancels it; never both.
            await waiter.Task.ConfigureAwait(false);
        }

        return GateOutcome.Entered;
    }

    /// <summary>Gives a slot back: to the longest waiting request if there is one, else to the pool.</summary>
    public void Exit()
    {
        TaskCompletionSource<bool>? next = null;
        List<TaskCompletionSource>? idle = null;
        lock (_lock)
        {
            _served++;
            if (_waiting.First is { } first)
            {
                _waiting.RemoveFirst();
                next = first.Value;
            }
            else
            {
                _inFlight--;
                if (_inFlight == 0 && _idleWaiters.Count > 0)
                {
                    idle = [.. _idleWaiters];
                    _idleWaiters.Clear();
                }
            }
        }

        next?.TrySetResult(true);
        idle?.ForEach(w => w.TrySetResult());
    }

    /// <summary>Stops taking new work: <c>/ready</c> fails and new requests get 503. Idempotent.</summary>
    public void StartDraining() => _draining = true;

    /// <summary>
    /// Starts draining and waits until nothing is in flight or queued, or until
    /// <see cref="ShimOptions.DrainTimeout"/> passed. True when all work finished.
    /// </summary>
    public async Task<bool> DrainAsync(CancellationToken cancellationToken = default)
    {
        StartDraining();
        var idle = WhenIdleAsync();
        if (idle.IsCompleted)
        {
            return true;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var deadline = Task.Delay(_options.DrainTimeout, _time, cts.Token);
        var first = await Task.WhenAny(idle, deadline).ConfigureAwait(false);
        await cts.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return first == idle;
    }

    /// <summary>Completes when no request is in flight or queued.</summary>
    public Task WhenIdleAsync()
    {
        lock (_lock)
        {
            if (_inFlight == 0 && _waiting.Count == 0)
            {
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _idleWaiters.Add(waiter);
            return waiter.Task;
        }
    }

    private void Abandon(LinkedListNode<TaskCompletionSource<bool>> node)
    {
        List<TaskCompletionSource>? idle = null;
        lock (_lock)
        {
            if (node.List is null)
            {
                return; // Already handed a slot; the caller will Exit as usual.
            }

            _waiting.Remove(node);
            if (_inFlight == 0 && _waiting.Count == 0 && _idleWaiters.Count > 0)
            {
                idle = [.. _idleWaiters];
                _idleWaiters.Clear();
            }
        }

        node.Value.TrySetCanceled();
        idle?.ForEach(w => w.TrySetResult());
    }
}
