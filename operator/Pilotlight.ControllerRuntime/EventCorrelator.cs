namespace Pilotlight.ControllerRuntime;

/// <summary>
/// How an <see cref="EventRecorder"/> folds repeated Events, after client-go's EventCorrelator. The
/// defaults are client-go's.
/// </summary>
public sealed record EventRecorderOptions
{
    /// <summary>Repeats within this time of the last one update the same Event; similar messages are combined within it too.</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Distinct messages with one reason on one object before further ones go to one "combined" Event.</summary>
    public int MaxSimilarMessages { get; init; } = 10;

    /// <summary>Events one object may get at once (any reason, per type) before the rate limit applies.</summary>
    public int Burst { get; init; } = 25;

    /// <summary>After the burst, one more Event per object per this interval; the rest are dropped and counted.</summary>
    public TimeSpan RefillInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How many objects, reasons and Events are remembered (each, least recently used first out).</summary>
    public int CacheSize { get; init; } = 4096;
}

/// <summary>
/// The pure part of event aggregation: given an event, whether it is dropped (rate limit), which Event
/// object (series) it belongs to, and that series' count. Thread-safe; state is bounded by
/// <see cref="EventRecorderOptions.CacheSize"/>.
/// </summary>
internal sealed class EventCorrelator(EventRecorderOptions options, TimeProvider time)
{
    /// <summary>The prefix client-go gives a message that stands for several similar ones.</summary>
    public const string CombinedPrefix = "(combined from similar events): ";

    private readonly object _gate = new();
    private readonly Lru<string, TokenBucket> _buckets = new(options.CacheSize);
    private readonly Lru<string, Similar> _similar = new(options.CacheSize);
    private readonly Lru<string, EventSeries> _series = new(options.CacheSize);

    /// <summary>What identifies an event.</summary>
    public sealed record Facts(string Component, string? Uid, string? Kind, string? Namespace, string? Name, string Type, string Reason, string Message);

    /// <summary>
    /// Records one occurrence. Null when the object's rate limit drops it; otherwise the series it
    /// belongs to (a fresh one when none is live), whose count and times are already updated.
    /// </summary>
    public EventSeries? Observe(Facts e)
    {
        var now = time.GetUtcNow();
        var objectKey = string.Join('\0', e.Component, e.Uid, e.Kind, e.Namespace, e.Name, e.Type);
        var reasonKey = objectKey + "\0" + e.Reason;
        lock (_gate)
        {
            var bucket = _buckets.GetOrAdd(objectKey, () => new TokenBucket(options.Burst, now));
            if (!bucket.TryTake(now, options.Burst, options.RefillInterval))
            {
                return null;
            }

            var similar = _similar.GetOrAdd(reasonKey, () => new Similar());
            if (now - similar.Last > options.Window)
            {
                similar.Messages.Clear();
            }

            similar.Last = now;
            string seriesKey, message;
            if (similar.Messages.Contains(e.Message) || similar.Messages.Count < options.MaxSimilarMessages)
            {
                similar.Messages.Add(e.Message);
                (seriesKey, message) = (reasonKey + "\0" + e.Message, e.Message);
            }
            else
            {
                (seriesKey, message) = (reasonKey + "\0combined", CombinedPrefix + e.Message);
            }

            if (_series.TryGet(seriesKey, out var series) && now - series.Last <= options.Window)
            {
                series.Count++;
                series.Last = now;
                series.Message = message;
                return series;
            }

            series = new EventSeries(this, now, message);
            _series.Set(seriesKey, series);
            return series;
        }
    }

    /// <summary>One Event object and what it should say.</summary>
    internal sealed class EventSeries(EventCorrelator owner, DateTimeOffset first, string message)
    {
        /// <summary>Serialises the writes of one Event (create, then patches in order).</summary>
        public SemaphoreSlim Writes { get; } = new(1, 1);

        /// <summary>The Event's name once created; null before (or after a failed create).</summary>
        public string? Name { get; set; }

        /// <summary>The count last written.</summary>
        public int Written { get; set; }

        public int Count { get; set; } = 1;

        public DateTimeOffset First { get; } = first;

        public DateTimeOffset Last { get; set; } = first;

        public string Message { get; set; } = message;

        /// <summary>A consistent copy of what the Event should hold now.</summary>
        public (int Count, DateTimeOffset Last, string Message) Snapshot()
        {
            lock (owner._gate)
            {
                return (Count, Last, Message);
            }
        }
    }

    private sealed class Similar
    {
        public HashSet<string> Messages { get; } = new(StringComparer.Ordinal);

        public DateTimeOffset Last { get; set; } = DateTimeOffset.MinValue;
    }

    /// <summary>client-go's spam filter: <c>burst</c> tokens, one more every interval.</summary>
    private sealed class TokenBucket(int burst, DateTimeOffset now)
    {
        private double _tokens = burst;
        private DateTimeOffset _last = now;

        public bool TryTake(DateTimeOffset now, int burst, TimeSpan interval)
        {
            if (now > _last)
            {
                _tokens = Math.Min(burst, _tokens + ((now - _last) / interval));
                _last = now;
            }

            if (_tokens < 1)
            {
                return false;
            }

            _tokens--;
            return true;
        }
    }

    /// <summary>A least-recently-used map of bounded size; not thread-safe (used under the correlator's lock).</summary>
    private sealed class Lru<TKey, TValue>(int capacity) where TKey : notnull
    {
        private readonly Dictionary<TKey, LinkedListNode<(TKey Key, TValue Value)>> _map = [];
        private readonly LinkedList<(TKey Key, TValue Value)> _order = new();

        public bool TryGet(TKey key, out TValue value)
        {
            if (_map.TryGetValue(key, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                value = node.Value.Value;
                return true;
            }

            value = default!;
            return false;
        }

        public TValue GetOrAdd(TKey key, Func<TValue> create)
        {
            if (!TryGet(key, out var value))
            {
                value = create();
                Set(key, value);
            }

            return value;
        }

        public void Set(TKey key, TValue value)
        {
            if (_map.Remove(key, out var old))
            {
                _order.Remove(old);
            }
            else if (_map.Count >= Math.Max(1, capacity))
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value.Key);
            }

            _map[key] = _order.AddFirst((key, value));
        }
    }
}
