using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Scaling;

namespace Pilotlight.Gateway;

/// <summary>A ready pod of a function and the requests the gateway has in flight to it.</summary>
public sealed class PodEndpoint(string name, Uri uri)
{
    private int _inFlight;

    /// <summary>Pod name.</summary>
    public string Name { get; } = name;

    /// <summary>The pod's shim.</summary>
    public Uri Uri { get; } = uri;

    /// <summary>Requests in flight to this pod through this gateway.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    internal void Enter() => Interlocked.Increment(ref _inFlight);

    internal void Leave() => Interlocked.Decrement(ref _inFlight);
}

/// <summary>One function's ready pods, held requests and demand.</summary>
public sealed class FunctionRoute(ObjectKey key)
{
    private readonly object _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private List<PodEndpoint> _ready = [];
    private List<PodEndpoint> _starting = [];
    private readonly HashSet<string> _probedReady = [];
    private int _probing;
    private int _inFlight;
    private int _held;
    private long _lastRequestTicks;

    /// <summary>The function.</summary>
    public ObjectKey Key { get; } = key;

    /// <summary>Requests in flight, held ones included.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Requests waiting for a pod.</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>When the last request arrived.</summary>
    public DateTimeOffset? LastRequest => Interlocked.Read(ref _lastRequestTicks) is var t and > 0 ? new DateTimeOffset(t, TimeSpan.Zero) : null;

    /// <summary>Ready pods now.</summary>
    public IReadOnlyList<PodEndpoint> Ready
    {
        get
        {
            lock (_gate)
            {
                return _ready;
            }
        }
    }

    internal void Arrived(DateTimeOffset at)
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Exchange(ref _lastRequestTicks, at.UtcTicks);
    }

    internal void Finished() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Takes a slot in the held queue unless <paramref name="limit"/> requests already wait.</summary>
    internal bool TryHold(int limit)
    {
        while (true)
        {
            var held = Volatile.Read(ref _held);
            if (held >= limit)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _held, held + 1, held) == held)
            {
                return true;
            }
        }
    }

    internal void Unhold() => Interlocked.Decrement(ref _held);

    /// <summary>
    /// The ready pod with the fewest requests in flight below
    /// <paramref name="maxConcurrency"/>, skipping <paramref name="exclude"/>; null when none has room.
    /// </summary>
    internal PodEndpoint? TryAcquire(int maxConcurrency, IReadOnlySet<string> exclude, out Task changed)
    {
        lock (_gate)
        {
            changed = _changed.Task;
            PodEndpoint? best = null;
            foreach (var pod in _ready)
            {
                if (!exclude.Contains(pod.Name) && pod.InFlight < maxConcurrency && (best is null || pod.InFlight < best.InFlight))
                {
                    best = pod;
                }
            }

            best?.Enter();
            return best;
        }
    }

    internal void Release(PodEndpoint pod)
    {
        pod.Leave();
        Signal();
    }

    /// <summary>Pods running but not yet Ready in the API: what the gateway probes while requests wait.</summary>
    public IReadOnlyList<PodEndpoint> Starting
    {
        get
        {
            lock (_gate)
            {
                return _starting;
            }
        }
    }

    internal void SetReady(List<PodEndpoint> ready, List<PodEndpoint>? starting = null)
    {
        lock (_gate)
        {
            starting ??= [];
            _probedReady.IntersectWith(starting.Select(p => p.Name));
            _starting = starting;

            // Keep the in-flight counters of pods that stay; a starting pod the
            // gateway saw ready itself serves before the API says so.
            var old = _ready.ToDictionary(p => p.Name);
            _ready = ready.Concat(starting.Where(p => _probedReady.Contains(p.Name)))
                .Select(p => old.TryGetValue(p.Name, out var same) && same.Uri == p.Uri ? same : p)
                .ToList();
        }

        Signal();
    }

    /// <summary>Marks a starting pod ready because its shim said so, ahead of the API.</summary>
    internal void MarkProbedReady(PodEndpoint pod)
    {
        lock (_gate)
        {
            if (!_starting.Any(p => p.Name == pod.Name) || !_probedReady.Add(pod.Name))
            {
                return;
            }

            _ready = [.. _ready, pod];
        }

        Signal();
    }

    internal bool TryStartProbing() => Interlocked.CompareExchange(ref _probing, 1, 0) == 0;

    internal void StopProbing() => Volatile.Write(ref _probing, 0);

    private void Signal()
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        previous.TrySetResult();
    }
}

/// <summary>Routes by function, learnt from a watch of the functions' pods: Ready, not terminating, with an IP.</summary>
public sealed class FunctionRoutes
{
    private readonly ConcurrentDictionary<ObjectKey, FunctionRoute> _routes = new();
    private readonly Informer<V1Pod> _pods;
    private readonly int _shimPort;

    /// <summary>Routes fed by <paramref name="pods"/>; pods are reached on <paramref name="shimPort"/>.</summary>
    public FunctionRoutes(Informer<V1Pod> pods, int shimPort)
    {
        _pods = pods;
        _shimPort = shimPort;
        pods.AddHandler(e => Refresh(e.Object));
    }

    /// <summary>Every route that has seen traffic or pods.</summary>
    public IEnumerable<FunctionRoute> All => _routes.Values;

    /// <summary>The route of a function, created on first use.</summary>
    public FunctionRoute Get(ObjectKey key)
    {
        var created = false;
        var route = _routes.GetOrAdd(key, k =>
        {
            created = true;
            return new FunctionRoute(k);
        });
        if (created)
        {
            Rebuild(route);
        }

        return route;
    }

    private void Refresh(V1Pod pod)
    {
        if (pod.Metadata.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true)
        {
            Rebuild(Get(new ObjectKey(pod.Metadata.NamespaceProperty, fn)));
        }
    }

    private void Rebuild(FunctionRoute route)
    {
        var live = _pods.List(route.Key.Namespace)
            .Where(p => p.Metadata.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true && fn == route.Key.Name)
            .Where(FunctionLabels.IsServing) // warm standby pods serve nothing until the operator claims them
            .Where(p => p.Metadata.DeletionTimestamp is null && !string.IsNullOrEmpty(p.Status?.PodIP) && p.Status.Phase == "Running")
            .OrderBy(p => p.Metadata.Name, StringComparer.Ordinal)
            .ToList();
        PodEndpoint Endpoint(V1Pod p) => new(p.Metadata.Name, new Uri($"http://{p.Status.PodIP}:{_shimPort}"));
        route.SetReady(
            live.Where(FunctionStatusBuilder.IsReady).Select(Endpoint).ToList(),
            live.Where(p => !FunctionStatusBuilder.IsReady(p)).Select(Endpoint).ToList());
    }

    /// <summary>The demand report the autoscaler polls.</summary>
    public List<FunctionDemand> Demand() => _routes.Values
        .Where(r => r.LastRequest is not null)
        .Select(r => new FunctionDemand
        {
            Namespace = r.Key.Namespace!,
            Name = r.Key.Name,
            InFlight = r.InFlight,
            LastRequest = r.LastRequest,
            Pods = r.Ready.ToDictionary(p => p.Name, p => p.InFlight),
        })
        .ToList();
}
