using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>A ready pod of a function and the requests the gateway has in flight to it.</summary>
public sealed class PodEndpoint(string name, Uri uri, DateTimeOffset? created = null, DateTimeOffset? readySince = null, string? ownerUid = null)
{
    private int _inFlight;
    private volatile bool _warm;

    /// <summary>Pod name.</summary>
    public string Name { get; } = name;

    /// <summary>The pod's shim.</summary>
    public Uri Uri { get; } = uri;

    /// <summary>The pod's creationTimestamp, for telling cold starts from warm ones.</summary>
    public DateTimeOffset? Created { get; } = created;

    /// <summary>When the pod's Ready condition turned True in the API; null while it has not.</summary>
    public DateTimeOffset? ReadySince { get; } = readySince;

    /// <summary>Requests in flight to this pod through this gateway.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The UID of the GpuFunction its controller reference names; null when none does (a pod anyone could have labelled).</summary>
    public string? OwnerUid { get; } = ownerUid;

    /// <summary>
    /// True while the pod is a warm standby in the gateway's cache (role <c>warm</c>); false once it serves
    /// (the operator relabelled it). Set by its route under the route's lock.
    /// </summary>
    public bool Warm
    {
        get => _warm;
        internal set => _warm = value;
    }

    internal void Enter() => Interlocked.Increment(ref _inFlight);

    internal void Leave() => Interlocked.Decrement(ref _inFlight);
}

/// <summary>
/// One function's ready pods, held requests and demand. Held requests wait in one queue in arrival order:
/// a slot that frees up (a request finishing, a pod turning ready) is handed to the first of them that may
/// use that pod, under the route's lock, so no waiter is woken for nothing and none overtakes another.
/// </summary>
/// <remarks>
/// Warm routing: when no serving pod has room, a request goes at once to a ready warm standby pod of the
/// function, chosen from the gateway's own cache with no API call on the way (<see cref="ChooseWarm"/>). The
/// operator claims it afterwards (relabels it serving and refills the pool): it learns of the use from the
/// demand report, which lists the pod's load, and from the wake stamp the gateway sends once the request on
/// the still-unclaimed pod ends (<see cref="WarmServed"/>). Why two gateways never hand out a warm pod
/// inconsistently: a warm pod belongs to exactly one function, by its controller reference to that function's
/// UID, which both gateways check, so whichever routes to it routes the same function's requests; the leader
/// operator is the only writer of the role label, and it claims busy warm pods first and never deletes nor
/// demotes a pod the gateways report busy; each gateway keeps to maxConcurrency by its own count and the shim
/// refuses the rest (a refused attempt is retried elsewhere at once), as with serving pods.
/// </remarks>
public sealed class FunctionRoute(ObjectKey key, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private readonly LinkedList<HeldRequest> _queue = new();
    private List<PodEndpoint> _ready = [];
    private List<PodEndpoint> _starting = [];
    private List<PodEndpoint> _warm = [];
    private string? _functionUid;
    private readonly HashSet<string> _probedReady = [];
    private int _maxConcurrency = 1;
    private int _probing;
    private int _inFlight;
    private int _held;
    private long _lastRequestTicks;
    private long _lastFinishedTicks;

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

    /// <summary>Ready warm standby pods in the gateway's cache (owned by the function or not: routing checks).</summary>
    public IReadOnlyList<PodEndpoint> Warm
    {
        get
        {
            lock (_gate)
            {
                return _warm;
            }
        }
    }

    /// <summary>
    /// Called (outside the route's lock) when a request leaves a pod that is still a warm standby: the function
    /// served from its pool and the operator has not claimed the pod yet, so the gateway stamps its wake now.
    /// </summary>
    internal Action<FunctionRoute>? WarmServed { get; init; }

    internal void Arrived(DateTimeOffset at)
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Exchange(ref _lastRequestTicks, at.UtcTicks);
    }

    /// <summary>When a request last finished (answered, failed or given up), by this gateway's clock.</summary>
    public DateTimeOffset? LastFinished => Interlocked.Read(ref _lastFinishedTicks) is var t and > 0 ? new DateTimeOffset(t, TimeSpan.Zero) : null;

    /// <summary>A request ended: the scaledown window counts from the last of these once nothing is in flight.</summary>
    internal void Finished()
    {
        // Stamp before the count drops, so a report that sees 0 in flight also sees this finish.
        Interlocked.Exchange(ref _lastFinishedTicks, _time.GetUtcNow().UtcTicks);
        Interlocked.Decrement(ref _inFlight);
    }

    /// <summary>
    /// Takes a slot at once: the ready pod with the fewest requests in flight below <paramref name="maxConcurrency"/>
    /// that <paramref name="exclude"/> (given the ready pods) leaves; when none has room and <paramref name="functionUid"/>
    /// is given, a ready warm pod of that function (<see cref="ChooseWarm"/>; <see cref="PodEndpoint.Warm"/> says so);
    /// null when no pod has room. A held request never loses its turn to it: every slot a held request could use
    /// was already handed to it.
    /// </summary>
    internal PodEndpoint? TryAcquire(int maxConcurrency, Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> exclude, string? functionUid = null)
    {
        lock (_gate)
        {
            _maxConcurrency = Math.Max(1, maxConcurrency);
            _functionUid = functionUid;
            var pod = Best(exclude);
            pod?.Enter();
            return pod;
        }
    }

    /// <summary>True when a request arriving now would be routed to a warm pod of the function: no serving pod has room, a warm one does.</summary>
    internal bool WouldRouteWarm(int maxConcurrency, string? functionUid)
    {
        lock (_gate)
        {
            var max = Math.Max(1, maxConcurrency);
            return !_ready.Any(p => p.InFlight < max) && ChooseWarm(_warm, functionUid, max, new HashSet<string>()) is not null;
        }
    }

    /// <summary>
    /// The warm pod a request may go to, purely: only a pod whose controller reference names the function's UID
    /// (labels alone can be forged), with room below <paramref name="maxConcurrency"/>, not excluded; the busiest
    /// first (a request packs onto a standby already in use, so one burst takes as few pods out of the pool as it
    /// can), then the oldest (the one the operator would claim first), then by name. Null when none qualifies
    /// (or <paramref name="functionUid"/> is unknown).
    /// </summary>
    internal static PodEndpoint? ChooseWarm(IReadOnlyList<PodEndpoint> warm, string? functionUid, int maxConcurrency, IReadOnlySet<string> excluded)
    {
        if (string.IsNullOrEmpty(functionUid))
        {
            return null;
        }

        return warm
            .Where(p => p.OwnerUid == functionUid && p.InFlight < maxConcurrency && !excluded.Contains(p.Name))
            .OrderByDescending(p => p.InFlight)
            .ThenBy(p => p.Created ?? DateTimeOffset.MaxValue)
            .ThenBy(p => p.Name, StringComparer.Ordinal)
            .FirstOrDefault();
    }

    /// <summary>
    /// Queues a request for a slot, in the order of <paramref name="arrived"/> (a timestamp; a retry keeps its
    /// place ahead of later arrivals); null when <paramref name="limit"/> requests already wait. The queued request
    /// gets a pod (its slot taken) or is cancelled, never both.
    /// </summary>
    internal HeldRequest? TryHold(int limit, int maxConcurrency, Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> exclude, long arrived,
        string? functionUid = null)
    {
        lock (_gate)
        {
            if (_queue.Count >= limit)
            {
                return null;
            }

            _maxConcurrency = Math.Max(1, maxConcurrency);
            _functionUid = functionUid;
            var held = new HeldRequest(this, exclude, arrived);
            var after = _queue.Last;
            while (after is not null && after.Value.Arrived > arrived)
            {
                after = after.Previous;
            }

            held.Node = after is null ? _queue.AddFirst(held) : _queue.AddAfter(after, held);
            Volatile.Write(ref _held, _queue.Count);
            Dispatch();
            return held;
        }
    }

    internal void Release(PodEndpoint pod)
    {
        bool standby;
        lock (_gate)
        {
            pod.Leave();
            Dispatch();
            standby = pod.Warm;
        }

        if (standby)
        {
            WarmServed?.Invoke(this);
        }
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

    internal void SetReady(List<PodEndpoint> ready, List<PodEndpoint>? starting = null, List<PodEndpoint>? warm = null)
    {
        lock (_gate)
        {
            starting ??= [];
            _probedReady.IntersectWith(starting.Select(p => p.Name));
            _starting = starting;

            // Keep the in-flight counters of pods that stay, also of a warm pod the operator just claimed
            // (it moves to serving with the requests it has); a starting pod the gateway saw ready itself
            // serves before the API says so.
            var old = new Dictionary<string, PodEndpoint>();
            foreach (var p in _ready.Concat(_warm))
            {
                old.TryAdd(p.Name, p);
            }

            PodEndpoint Same(PodEndpoint p, bool isWarm)
            {
                var kept = old.TryGetValue(p.Name, out var same) && same.Uri == p.Uri && same.OwnerUid == p.OwnerUid ? same : p;
                kept.Warm = isWarm;
                return kept;
            }

            _ready = ready.Concat(starting.Where(p => _probedReady.Contains(p.Name)))
                .Select(p => Same(p, false))
                .ToList();
            var serving = _ready.Select(p => p.Name).ToHashSet();
            _warm = (warm ?? []).Where(p => !serving.Contains(p.Name)).Select(p => Same(p, true)).ToList();
            Dispatch();
        }
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
            Dispatch();
        }
    }

    /// <summary>Held while the route is rebuilt from the pod cache, so the last rebuild to finish read the newest cache.</summary>
    internal Lock Rebuilding { get; } = new();

    /// <summary>Set once the route has been built from the cache at least once (under <see cref="Rebuilding"/>).</summary>
    internal volatile bool Built;

    internal bool TryStartProbing() => Interlocked.CompareExchange(ref _probing, 1, 0) == 0;

    internal void StopProbing() => Volatile.Write(ref _probing, 0);

    /// <summary>
    /// Hands free slots to held requests, the earliest first; one that excludes every pod with room keeps its
    /// place and the slot goes to the next that may use it. Runs under the lock after every change.
    /// </summary>
    private void Dispatch()
    {
        // Nothing has room: the common case with a long queue, answered without walking it.
        while (_queue.First is not null
            && (_ready.Any(p => p.InFlight < _maxConcurrency) || ChooseWarm(_warm, _functionUid, _maxConcurrency, new HashSet<string>()) is not null))
        {
            var handed = false;
            for (var node = _queue.First; node is not null; node = node.Next)
            {
                if (Best(node.Value.Exclude) is { } pod)
                {
                    Remove(node.Value);
                    pod.Enter();
                    node.Value.Give(pod);
                    handed = true;
                    break;
                }
            }

            if (!handed)
            {
                return;
            }
        }
    }

    private PodEndpoint? Best(Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> exclude)
    {
        IReadOnlySet<string>? excluded = null;
        PodEndpoint? best = null;
        foreach (var pod in _ready)
        {
            if (pod.InFlight < _maxConcurrency && (best is null || pod.InFlight < best.InFlight)
                && !(excluded ??= exclude(_ready)).Contains(pod.Name))
            {
                best = pod;
            }
        }

        // A standby pod only when no serving pod has room for this request.
        return best ?? (_warm.Count == 0 ? null : ChooseWarm(_warm, _functionUid, _maxConcurrency, exclude(_warm)));
    }

    private void Remove(HeldRequest held)
    {
        _queue.Remove(held.Node!);
        held.Node = null;
        Volatile.Write(ref _held, _queue.Count);
    }

    /// <summary>Takes a request out of the queue unless it was handed a pod already.</summary>
    private bool Withdraw(HeldRequest held)
    {
        lock (_gate)
        {
            if (held.Node is null)
            {
                return false;
            }

            Remove(held);
            return true;
        }
    }

    /// <summary>A request held in a function's queue until it is handed a pod.</summary>
    internal sealed class HeldRequest(FunctionRoute route, Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> exclude, long arrived)
    {
        private readonly TaskCompletionSource<PodEndpoint> _pod = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes with the pod whose slot this request now holds, or is cancelled by <see cref="Cancel"/>.</summary>
        public Task<PodEndpoint> Pod => _pod.Task;

        internal Func<IReadOnlyList<PodEndpoint>, IReadOnlySet<string>> Exclude { get; } = exclude;

        internal long Arrived { get; } = arrived;

        /// <summary>Its place in the queue; null once handed a pod or cancelled.</summary>
        internal LinkedListNode<HeldRequest>? Node { get; set; }

        internal void Give(PodEndpoint pod) => _pod.SetResult(pod);

        /// <summary>Leaves the queue; false when a pod was handed over first (its slot is then the caller's to release).</summary>
        public bool Cancel()
        {
            if (!route.Withdraw(this))
            {
                return false;
            }

            _pod.TrySetCanceled();
            return true;
        }
    }
}

/// <summary>
/// Routes by function, learnt from a watch of the functions' pods: Ready, not terminating, with an IP, and
/// controlled by the function (its controller reference names the GpuFunction's UID in the gateway's cache).
/// A pod that merely carries a function's label gets no traffic.
/// </summary>
/// <remarks>
/// A pod event rebuilds only the routes of the functions the pod's label names (before and after the event), each
/// from that function's pods in the cache's <see cref="FunctionIndex"/>: the cost of an event is the pods of its
/// function, not every pod the gateway knows. The first list is not rebuilt pod by pod: the functions it names are
/// noted, and rebuilt once each when the cache is synced.
/// </remarks>
public sealed class FunctionRoutes
{
    /// <summary>The name of the pod cache's index of pods by the function their label names (<see cref="FunctionIndexValue"/>).</summary>
    public const string FunctionIndex = "pilotlight-function";

    private readonly ConcurrentDictionary<ObjectKey, FunctionRoute> _routes = new();
    private readonly ConcurrentDictionary<ObjectKey, byte> _listed = new();
    private readonly Informer<V1Pod> _pods;
    private readonly Informer<GpuFunction> _functions;
    private readonly int _shimPort;
    private readonly TimeProvider _time;

    /// <summary>
    /// Routes fed by <paramref name="pods"/>, each pod kept only while its controller is the function of that
    /// name in <paramref name="functions"/>; pods are reached on <paramref name="shimPort"/>.
    /// </summary>
    public FunctionRoutes(Informer<V1Pod> pods, Informer<GpuFunction> functions, int shimPort, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(pods);
        ArgumentNullException.ThrowIfNull(functions);
        _time = time ?? TimeProvider.System;
        _pods = pods;
        _functions = functions;
        _shimPort = shimPort;
        pods.AddIndex(FunctionIndex, ByFunction);
        pods.AddHandler(Refresh);
        _ = pods.Synced.ContinueWith(_ => RebuildListed(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        // A function created, replaced (a new UID) or deleted changes which of its labelled pods are its own.
        functions.AddHandler(e =>
        {
            var changed = e.Type != k8s.WatchEventType.Modified || e.Old?.Metadata.Uid != e.Object.Metadata.Uid
                || (e.Old?.Metadata.DeletionTimestamp is null) != (e.Object.Metadata.DeletionTimestamp is null);
            if (changed && _routes.TryGetValue(ObjectKey.Of(e.Object), out var route))
            {
                Rebuild(route);
            }
        });
    }

    /// <summary>Called (on the watch's thread) after a function's pods changed, with its route.</summary>
    public event Action<FunctionRoute>? PodsChanged;

    /// <summary>Called when a request left a warm pod the operator has not claimed yet (see <see cref="FunctionRoute.WarmServed"/>).</summary>
    public event Action<FunctionRoute>? WarmServed;

    /// <summary>Every route that has seen traffic or pods.</summary>
    public IEnumerable<FunctionRoute> All => _routes.Values;

    /// <summary>The route of a function, created on first use.</summary>
    public FunctionRoute Get(ObjectKey key)
    {
        var route = GetOrAdd(key, out _);
        // Another thread (the pod watch) may have just created it and not built it yet: a caller never sees a route
        // that has not been built from the cache once, or a request would find no pods where there are some.
        if (!route.Built)
        {
            Rebuild(route);
        }

        return route;
    }

    private FunctionRoute GetOrAdd(ObjectKey key, out bool created)
    {
        var added = false;
        var route = _routes.GetOrAdd(key, k =>
        {
            added = true;
            return new FunctionRoute(k, _time) { WarmServed = r => WarmServed?.Invoke(r) };
        });
        created = added;
        return route;
    }

    /// <summary>The value <see cref="FunctionIndex"/> files a function's pods under: "namespace/name".</summary>
    public static string FunctionIndexValue(ObjectKey function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return $"{function.Namespace}/{function.Name}";
    }

    /// <summary>The function <paramref name="pod"/>'s label names, for <see cref="FunctionIndex"/>; none without the label.</summary>
    public static IEnumerable<string> ByFunction(V1Pod pod) =>
        FunctionOf(pod) is { } function ? [FunctionIndexValue(function)] : [];

    private static ObjectKey? FunctionOf(V1Pod pod) =>
        pod.Metadata?.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true && !string.IsNullOrEmpty(fn)
            ? new ObjectKey(pod.Metadata.NamespaceProperty, fn)
            : null;

    /// <summary>
    /// The pods of <paramref name="pods"/> that may carry the function's traffic, purely: labelled with its name
    /// <paramref name="function"/>, controlled by the GpuFunction with UID <paramref name="functionUid"/> (none
    /// when it is unknown), not a sandbox's, not being deleted, running with an IP. Readiness is decided by the caller.
    /// </summary>
    public static IReadOnlyList<V1Pod> Routable(IEnumerable<V1Pod> pods, string function, string? functionUid)
    {
        ArgumentNullException.ThrowIfNull(pods);
        if (string.IsNullOrEmpty(functionUid))
        {
            return [];
        }

        return pods
            .Where(p => p.Metadata.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true && fn == function)
            .Where(p => FunctionOwnership.IsOwnedBy(p, functionUid))
            // A sandbox's pod is never a function's, whatever else it says: its agent shares the shim's port.
            .Where(p => p.Metadata.Labels?.ContainsKey(SandboxAnnotations.SandboxLabel) != true)
            .Where(p => p.Metadata.DeletionTimestamp is null && !string.IsNullOrEmpty(p.Status?.PodIP) && p.Status.Phase == "Running")
            .OrderBy(p => p.Metadata.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// A pod changed: the route of the function its label names now is rebuilt, and so is that of the function it
    /// named before (a pod relabelled to another function leaves the old one's route).
    /// </summary>
    private void Refresh(InformerEvent<V1Pod> e)
    {
        var now = FunctionOf(e.Object);
        var was = e.Old is null ? null : FunctionOf(e.Old);
        if (!_pods.HasSynced)
        {
            // The first list: each function once, when it is all in the cache (RebuildListed), not once per pod.
            if (now is not null)
            {
                _listed.TryAdd(now, 0);
            }

            if (was is not null)
            {
                _listed.TryAdd(was, 0);
            }

            return;
        }

        if (now is not null)
        {
            Rebuild(GetOrAdd(now, out _));
        }

        if (was is not null && was != now && _routes.TryGetValue(was, out var left))
        {
            Rebuild(left);
        }
    }

    /// <summary>Once the first list is in the cache: the route of every function it named, built once.</summary>
    private void RebuildListed()
    {
        foreach (var key in _listed.Keys)
        {
            if (_listed.TryRemove(key, out _))
            {
                Rebuild(GetOrAdd(key, out _));
            }
        }
    }

    private void Rebuild(FunctionRoute route)
    {
        // Serialised per route: rebuilds run on the pod watch, the function watch and a request creating the route,
        // and whichever takes the lock last reads the newest cache, so an older snapshot never lands after a newer one.
        lock (route.Rebuilding)
        {
            var function = _functions.Get(route.Key);
            var running = Routable(_pods.ByIndex(FunctionIndex, FunctionIndexValue(route.Key)), route.Key.Name,
                function?.Metadata.DeletionTimestamp is null ? function?.Metadata.Uid : null);
            var live = running.Where(FunctionLabels.IsServing).ToList();
            PodEndpoint Endpoint(V1Pod p) => new(p.Metadata.Name, new Uri($"http://{p.Status.PodIP}:{_shimPort}"), Utc(p.Metadata.CreationTimestamp),
                Utc(p.Status.Conditions?.FirstOrDefault(c => c.Type == "Ready" && c.Status == "True")?.LastTransitionTime), FunctionOwnership.OwnerUid(p));
            route.SetReady(
                live.Where(PodReadiness.IsReady).Select(Endpoint).ToList(),
                live.Where(p => !PodReadiness.IsReady(p)).Select(Endpoint).ToList(),
                // Standby pods count only once Ready in the API: the gateway probes no warm pod, it takes ready ones at once.
                running.Where(p => FunctionLabels.IsWarm(p) && PodReadiness.IsReady(p)).Select(Endpoint).ToList());
            route.Built = true;
        }

        PodsChanged?.Invoke(route);
    }

    private static DateTimeOffset? Utc(DateTime? time) =>
        time is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, t.Kind == DateTimeKind.Unspecified ? DateTimeKind.Utc : t.Kind).ToUniversalTime()) : null;

    /// <summary>
    /// The demand report the autoscaler polls: per function with traffic, requests in flight (held
    /// ones included), when the last one arrived and finished, and the load of every pod this
    /// gateway knows (ready, starting and warm), so scale-down leaves busy pods alone and the
    /// operator claims the warm pods that serve.
    /// </summary>
    public List<FunctionDemand> Demand() => _routes.Values
        .Where(r => r.LastRequest is not null)
        .Select(r =>
        {
            // In flight first, then the finish time (stamped before the count drops): a request that
            // finishes in between counts as in flight or as just finished, never as neither.
            var inFlight = r.InFlight;
            var finished = r.LastFinished;
            return new FunctionDemand
            {
                Namespace = r.Key.Namespace!,
                Name = r.Key.Name,
                InFlight = inFlight,
                LastRequest = r.LastRequest,
                LastFinished = finished,
                Pods = r.Ready.Concat(r.Starting).Concat(r.Warm).GroupBy(p => p.Name).ToDictionary(g => g.Key, g => g.Max(p => p.InFlight)),
            };
        })
        .ToList();
}
