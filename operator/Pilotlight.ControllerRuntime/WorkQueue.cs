using System.Threading.Channels;
using Prometheus;
using ITimer = System.Threading.ITimer;

namespace Pilotlight.ControllerRuntime;

/// <summary>
/// A queue of keys to reconcile. A key is queued at most once however many
/// events arrive for it; a key being processed is never handed out again
/// until <see cref="Done"/>, and if it changed meanwhile it is queued again
/// then. Delayed adds (requeue-after, back-off) use the injected clock.
/// With metrics it reports client-go's <c>workqueue_*</c> series under its name: timings are
/// taken from the injected clock, and the in-flight gauges are refreshed every half second.
/// </summary>
public sealed class WorkQueue<TKey> : IDisposable where TKey : notnull
{
    private readonly object _gate = new();
    private readonly HashSet<TKey> _queued = [];
    private readonly HashSet<TKey> _processing = [];
    private readonly HashSet<TKey> _dirty = [];
    private readonly Dictionary<TKey, ITimer> _delayed = [];
    private readonly Dictionary<TKey, int> _failures = [];
    private readonly Channel<TKey> _ready = Channel.CreateUnbounded<TKey>();
    private readonly TimeProvider _time;
    private readonly Backoff _backoff;
    private readonly Dictionary<TKey, long> _addedAt = [];
    private readonly Dictionary<TKey, long> _startedAt = [];
    private readonly QueueMetrics? _metrics;
    private readonly ITimer? _unfinishedTimer;
    private bool _shutdown;

    /// <summary>A queue using <paramref name="time"/> for delays and <paramref name="backoff"/> after failures.</summary>
    public WorkQueue(TimeProvider time, Backoff backoff)
        : this(time, backoff, null, "")
    {
    }

    /// <summary>
    /// A queue that also reports the <c>workqueue_*</c> metrics of <paramref name="metrics"/> labelled
    /// <c>name=<paramref name="name"/></c> (controller-runtime names a controller's queue after the controller).
    /// </summary>
    public WorkQueue(TimeProvider time, Backoff backoff, ControllerMetrics? metrics, string name)
    {
        _time = time;
        _backoff = backoff;
        if (metrics is not null)
        {
            _metrics = new QueueMetrics(
                metrics.WorkQueueDepth.WithLabels(name),
                metrics.WorkQueueAdds.WithLabels(name),
                metrics.WorkQueueQueueDuration.WithLabels(name),
                metrics.WorkQueueWorkDuration.WithLabels(name),
                metrics.WorkQueueRetries.WithLabels(name),
                metrics.WorkQueueUnfinishedWork.WithLabels(name),
                metrics.WorkQueueLongestRunningProcessor.WithLabels(name));
            _metrics.Depth.Set(0);
            _unfinishedTimer = time.CreateTimer(_ => UpdateUnfinishedWork(), null, UnfinishedWorkPeriod, UnfinishedWorkPeriod);
        }
    }

    /// <summary>How often the in-flight gauges are refreshed (client-go's period).</summary>
    public static readonly TimeSpan UnfinishedWorkPeriod = TimeSpan.FromMilliseconds(500);

    /// <summary>Keys waiting to be handed out (not counting delayed or in-flight ones).</summary>
    public int Depth
    {
        get
        {
            lock (_gate)
            {
                return _queued.Count;
            }
        }
    }

    /// <summary>Queues <paramref name="key"/> unless it is already queued; marks it dirty if in flight.</summary>
    public void Add(TKey key)
    {
        lock (_gate)
        {
            if (_shutdown)
            {
                return;
            }

            if (_delayed.Remove(key, out var timer))
            {
                timer.Dispose();
            }

            if (_processing.Contains(key))
            {
                if (_dirty.Add(key))
                {
                    Added(key);
                }

                return;
            }

            if (_queued.Add(key))
            {
                Added(key);
                _ready.Writer.TryWrite(key);
                _metrics?.Depth.Set(_queued.Count);
            }
        }
    }

    /// <summary>Queues <paramref name="key"/> after <paramref name="delay"/>; an earlier pending add wins.</summary>
    public void AddAfter(TKey key, TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
        {
            Add(key);
            return;
        }

        lock (_gate)
        {
            if (_shutdown || _queued.Contains(key))
            {
                return;
            }

            var due = _time.GetUtcNow() + delay;
            if (_delayed.TryGetValue(key, out var existing))
            {
                // Keep whichever fires first.
                if (existing is DueTimer d && d.Due <= due)
                {
                    return;
                }

                existing.Dispose();
            }

            var timer = new DueTimer(due, _time.CreateTimer(_ => Fire(key), null, delay, Timeout.InfiniteTimeSpan));
            _delayed[key] = timer;
        }
    }

    /// <summary>Queues <paramref name="key"/> after its back-off delay and counts a failure.</summary>
    public TimeSpan AddRateLimited(TKey key)
    {
        int failures;
        lock (_gate)
        {
            failures = _failures.GetValueOrDefault(key);
            _failures[key] = failures + 1;
        }

        var delay = _backoff.Delay(failures);
        _metrics?.Retries.Inc();
        AddAfter(key, delay);
        return delay;
    }

    /// <summary>Forgets the failure count of <paramref name="key"/> after a success.</summary>
    public void Forget(TKey key)
    {
        lock (_gate)
        {
            _failures.Remove(key);
        }
    }

    /// <summary>How many consecutive failures <paramref name="key"/> has had.</summary>
    public int Failures(TKey key)
    {
        lock (_gate)
        {
            return _failures.GetValueOrDefault(key);
        }
    }

    /// <summary>Waits for the next key; the caller must call <see cref="Done"/> with it.</summary>
    /// <exception cref="ChannelClosedException">The queue was shut down.</exception>
    public async ValueTask<TKey> TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var key = await _ready.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                if (_queued.Remove(key))
                {
                    _processing.Add(key);
                    if (_metrics is not null)
                    {
                        _metrics.Depth.Set(_queued.Count);
                        var now = _time.GetTimestamp();
                        if (_addedAt.Remove(key, out var added))
                        {
                            _metrics.QueueDuration.Observe(_time.GetElapsedTime(added, now).TotalSeconds);
                        }

                        _startedAt[key] = now;
                    }

                    return key;
                }
            }
        }
    }

    /// <summary>Marks <paramref name="key"/> finished; requeues it if it changed while in flight.</summary>
    public void Done(TKey key)
    {
        lock (_gate)
        {
            _processing.Remove(key);
            if (_metrics is not null && _startedAt.Remove(key, out var started))
            {
                _metrics.WorkDuration.Observe(_time.GetElapsedTime(started).TotalSeconds);
            }

            if (_dirty.Remove(key) && !_shutdown && _queued.Add(key))
            {
                _ready.Writer.TryWrite(key);
                _metrics?.Depth.Set(_queued.Count);
            }
        }
    }

    /// <summary>Stops handing out keys; pending timers are cancelled.</summary>
    public void ShutDown()
    {
        lock (_gate)
        {
            _shutdown = true;
            foreach (var timer in _delayed.Values)
            {
                timer.Dispose();
            }

            _delayed.Clear();
            _ready.Writer.TryComplete();
            _unfinishedTimer?.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose() => ShutDown();

    /// <summary>Refreshes <c>workqueue_unfinished_work_seconds</c> and <c>workqueue_longest_running_processor_seconds</c>.</summary>
    internal void UpdateUnfinishedWork()
    {
        if (_metrics is null)
        {
            return;
        }

        lock (_gate)
        {
            var now = _time.GetTimestamp();
            double total = 0, longest = 0;
            foreach (var started in _startedAt.Values)
            {
                var seconds = _time.GetElapsedTime(started, now).TotalSeconds;
                total += seconds;
                longest = Math.Max(longest, seconds);
            }

            _metrics.UnfinishedWork.Set(total);
            _metrics.LongestRunningProcessor.Set(longest);
        }
    }

    // Under _gate: counts a real add and starts its queue-duration clock (a key already waiting keeps its first time).
    private void Added(TKey key)
    {
        if (_metrics is null)
        {
            return;
        }

        _metrics.Adds.Inc();
        _addedAt.TryAdd(key, _time.GetTimestamp());
    }

    private void Fire(TKey key)
    {
        lock (_gate)
        {
            if (!_delayed.Remove(key, out var timer))
            {
                return;
            }

            timer.Dispose();
        }

        Add(key);
    }

    private sealed record QueueMetrics(
        Gauge.Child Depth, Counter.Child Adds, Histogram.Child QueueDuration, Histogram.Child WorkDuration,
        Counter.Child Retries, Gauge.Child UnfinishedWork, Gauge.Child LongestRunningProcessor);

    private sealed class DueTimer(DateTimeOffset due, ITimer inner) : ITimer
    {
        public DateTimeOffset Due { get; } = due;

        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(dueTime, period);

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
