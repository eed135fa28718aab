using System.Collections.Concurrent;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Operator.Functions;

/// <summary>
/// Reconciles a GpuFunction into the pods it owns and a Service: pods of the
/// current template up to the desired count, rolled surge-first on a spec
/// change, and a status computed from what the caches hold, written once per
/// reconcile and only when it changed.
/// </summary>
public sealed class GpuFunctionReconciler : IReconciler<GpuFunction>
{
    private static readonly TimeSpan ExpectationTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Pod creations of one reconcile in flight at once.</summary>
    private const int CreateParallelism = 8;
    private readonly IKubernetes _client;
    private readonly Informer<V1Pod> _pods;
    private readonly Informer<V1Node> _nodes;
    private readonly GpuCatalog _catalog;
    private readonly FunctionPodOptions _podOptions;
    private readonly EventRecorder _events;
    private readonly TimeProvider _time;
    private readonly string _endpointBase;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ObjectKey, Expectation> _expectations = new();
    private readonly Usage.PodUsageTracker _usage;
    private readonly ConcurrentDictionary<ObjectKey, bool> _prePulling = new();
    private readonly ConcurrentDictionary<ObjectKey, string?> _quotaProblems = new();
    /// <summary>
    /// The pod template per function, for the (uid, generation, restartedAt) it was built from: building it serialises
    /// the pod spec to hash it, which was the largest share of a reconcile's CPU at 10,000 functions. The template reads
    /// only the spec (which bumps the generation), the name, namespace, uid and restart annotation, and this process's
    /// fixed options.
    /// </summary>
    private readonly ConcurrentDictionary<ObjectKey, (string Uid, long Generation, string? RestartedAt, V1Pod Template)> _templates = new();
    private readonly ConcurrentDictionary<ObjectKey, (string Version, byte[] Digest)> _observedStatus = new();
    private readonly ConcurrentDictionary<ObjectKey, DateTimeOffset> _coldStartsWritten = new();
    private bool _priorityClassReady;
    private OperatorMetrics _metrics = OperatorMetrics.Detached();

    /// <summary>How often usage in status is refreshed while a function has pods and none opens or closes.</summary>
    public static readonly TimeSpan DefaultUsageStatusInterval = TimeSpan.FromMinutes(5);

    /// <summary>A reconciler reading pods and nodes from the given informers.</summary>
    public GpuFunctionReconciler(IKubernetes client, Informer<V1Pod> pods, Informer<V1Node> nodes, GpuCatalog catalog,
        FunctionPodOptions podOptions, EventRecorder events, string endpointBase, TimeProvider? time = null, ILogger? logger = null)
    {
        _client = client;
        _pods = pods;
        _nodes = nodes;
        _catalog = catalog;
        _podOptions = podOptions;
        _events = events;
        _endpointBase = endpointBase;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _usage = new Usage.PodUsageTracker(pods, _time, CloseInJournal);
        pods.AddIndex(Indexers.ControllerUid, Indexers.ByControllerUid);
    }

    /// <summary>The operator's series; the GPU-seconds counter follows the ledger up to each scrape.</summary>
    public OperatorMetrics Metrics
    {
        get => _metrics;
        init
        {
            _metrics = value;
            value.UseLiveGpuSeconds(_usage.LiveGpuSeconds);
        }
    }

    /// <summary>
    /// How stale <c>status.usage</c> may grow while the function's pods stay as they are: it is rewritten when a pod
    /// opens or closes, else at most this often (live totals are on <c>/metrics</c> and <c>/usage</c>). Every write is a
    /// PATCH fanned out to every watcher, so at thousands of functions this is what bounds the operator's writes.
    /// </summary>
    public TimeSpan UsageStatusInterval { get; init; } = DefaultUsageStatusInterval;

    /// <summary>
    /// The functions' Services (label <c>managed-by=pilotlight</c>), read instead of a GET per reconcile; null reads
    /// them from the API server.
    /// </summary>
    public Informer<V1Service>? Services { get; init; }

    /// <summary>Replicas the function should have now: the autoscaler's decision, or minReplicas without one.</summary>
    public Func<GpuFunction, int> DesiredReplicas { get; init; } = f => f.Spec.Scaling.MinReplicas;

    /// <summary>In-flight requests per pod name, so scale-down removes idle pods first.</summary>
    public Func<ObjectKey, IReadOnlyDictionary<string, int>> PodLoad { get; init; } = _ => new Dictionary<string, int>();

    /// <summary>Where closed billing intervals go, for usage over a time window.</summary>
    public Usage.UsageJournal Journal { get; init; } = new();

    /// <summary>
    /// Cold starts each gateway process counted for the function with the given UID (<see cref="Scaling.GatewaySignalFeed.ColdStarts"/>),
    /// taken into <c>status.coldStarts</c> by <see cref="ColdStartTally"/>.
    /// </summary>
    public Func<ObjectKey, string, IReadOnlyList<ColdStartSource>> ColdStarts { get; init; } = (_, _) => [];

    /// <summary>
    /// How often a growing <c>status.coldStarts</c> is written on its own: the first cold start after a quiet spell
    /// at once, then at most this often; a status write for another reason carries the latest count anyway.
    /// </summary>
    public TimeSpan ColdStartStatusInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a function whose Service name is taken by someone else's Service looks again.</summary>
    public TimeSpan ForeignServiceRecheck { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>When the function last had a request, for status.</summary>
    public Func<ObjectKey, DateTimeOffset?> LastRequest { get; init; } = _ => null;

    /// <summary>What the platform lets a function use; a function outside it is InvalidSpec and gets no pod.</summary>
    public Admission.AdmissionPolicy Admission { get; init; } = new();

    /// <summary>
    /// Everything that decides whether a function may run, and where: the admission webhook refuses on the same
    /// problems, and this reconciler marks a function that got past it <c>InvalidSpec</c>.
    /// </summary>
    public static (FunctionPlacement? Placement, Schedules.FunctionSchedule? Schedule, IReadOnlyList<string> Problems) Validate(
        GpuFunction function, GpuCatalog catalog, Admission.AdmissionPolicy policy, FunctionPodOptions pods)
    {
        ArgumentNullException.ThrowIfNull(function);
        var (placement, problems) = FunctionPlacement.Resolve(function.Spec.Gpu, catalog);
        var (schedule, prewarmProblems) = Prewarm.PrewarmSpec.Validate(function.Spec);
        var rules = Pilotlight.Operator.Admission.SpecRules.Check(function, policy, pods).Select(p => p.ToString());
        return (placement, schedule, [.. problems, .. prewarmProblems, .. rules]);
    }

    /// <inheritdoc />
    public async Task<ReconcileResult> ReconcileAsync(GpuFunction function, CancellationToken cancellationToken)
    {
        var key = ObjectKey.Of(function);
        if (function.Metadata.DeletionTimestamp is not null)
        {
            // Children go with the function through owner references.
            return ReconcileResult.Done;
        }

        var pods = OwnedPods(function);
        var placeholders = pods.Where(p => p.Metadata.Labels?.ContainsKey(FunctionLabels.ReservationFor) == true).ToList();
        var functionPods = pods.Except(placeholders).ToList();
        var serving = functionPods.Where(FunctionLabels.IsServing).ToList();
        var warm = functionPods.Where(FunctionLabels.IsWarm).ToList();
        var (placement, schedule, problems) = Validate(function, _catalog, Admission, _podOptions);
        var desired = problems.Count == 0 ? DesiredReplicas(function) : 0;
        var now = _time.GetUtcNow();
        var warmTarget = problems.Count == 0
            ? Prewarm.WarmPool.Target(function.Spec, desired, now, LastRequest(key), schedule)
            : new Prewarm.WarmTarget(0, "None", null);
        string? hash = null;
        string? quotaProblem = null;
        var prePull = (Ready: 0, Eligible: 0, Settled: true);
        ServiceState? service = null;

        if (placement is not null && problems.Count == 0)
        {
            // A Service only where the function asks for one (spec.clusterService): nothing of Pilotlight's reaches pods
            // through it, and each costs a ClusterIP, Endpoints and EndpointSlice writes at every pod change, and
            // every node's kube-proxy rules. It comes with the first pod (serving, warm or on its way) and then stays,
            // at zero too, so its ClusterIP is stable; a function that never ran has none.
            var needsPods = desired > 0 || warmTarget.Count > 0 || functionPods.Count > 0;
            service = await EnsureServiceAsync(function, function.Spec.ClusterService && needsPods, cancellationToken).ConfigureAwait(false);

            // Only a function with pods, or about to have some, keeps a pod template (and its hash, which only pods are
            // compared with): at 10,000 functions mostly at zero, a cached template each was the largest part of the
            // operator's heap. A function waking from zero builds it again with its first pod.
            V1Pod? template = null;
            if (needsPods)
            {
                template = Template(key, function, placement);
                hash = template.Metadata.Labels[FunctionLabels.TemplateHash];
            }
            else
            {
                _templates.TryRemove(key, out _);
            }

            if (Settled(key, pods))
            {
                var load = PodLoad(key);
                int Load(V1Pod p) => load.GetValueOrDefault(p.Metadata.Name);
                var changes = new PodChanges();

                // Claim ready warm pods before creating any: no pod start on the request path. Those a gateway
                // already sends requests to come first (gateways route to warm pods before the claim).
                var claims = Prewarm.WarmPool.Plan(serving, warm, desired, warmTarget.Count, hash ?? "", [], Load).Claim;
                foreach (var pod in claims)
                {
                    await RelabelAsync(pod, FunctionLabels.RoleServing, changes, cancellationToken).ConfigureAwait(false);
                }

                serving = [.. serving, .. claims];
                warm = [.. warm.Except(claims)];

                // Pods made before their role's eviction annotations existed (an older operator) get them once.
                foreach (var pod in serving.Concat(warm).Except(claims).Where(p => p.Metadata.DeletionTimestamp is null && !FunctionPods.HasEvictionAnnotations(p)))
                {
                    await RelabelAsync(pod, FunctionLabels.IsWarm(pod) ? FunctionLabels.RoleWarm : FunctionLabels.RoleServing, changes, cancellationToken).ConfigureAwait(false);
                }

                var plan = FunctionRollout.Plan(serving, desired, hash ?? "", Load, RolloutBudget.For(function.Spec.Rollout, desired));
                var pool = Prewarm.WarmPool.Plan(serving, warm, desired, warmTarget.Count, hash ?? "", plan.Delete, Load);
                foreach (var pod in pool.Demote)
                {
                    await RelabelAsync(pod, FunctionLabels.RoleWarm, changes, cancellationToken).ConfigureAwait(false);
                }

                try
                {
                    // Without a template there are no pods and none are wanted: the plans are empty.
                    if (template is not null)
                    {
                        quotaProblem = await ApplyAsync(function, template, plan.Create, [.. plan.Delete.Except(pool.Demote)], changes, cancellationToken).ConfigureAwait(false);
                        var warmTemplate = FunctionPods.AsWarm(template);
                        quotaProblem ??= await ApplyAsync(function, warmTemplate, pool.Create, pool.Delete, changes, cancellationToken).ConfigureAwait(false);
                    }

                    quotaProblem ??= await ReconcileReservationsAsync(function, placement, placeholders, changes, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    // Also when a call failed part way: what was created must not be created again from a stale cache.
                    Expect(key, changes);
                }

                await RecordAsync(function, key, changes, claims.Count, cancellationToken).ConfigureAwait(false);
                // Only refusals are kept: most functions never meet one, and an entry each would be kept for nothing.
                if (quotaProblem is null)
                {
                    _quotaProblems.TryRemove(key, out _);
                }
                else
                {
                    _quotaProblems[key] = quotaProblem;
                }
            }
            else
            {
                // Nothing was tried this time: the last refusal still stands.
                quotaProblem = _quotaProblems.GetValueOrDefault(key);
            }

            prePull = await ReconcilePrePullAsync(function, placement, cancellationToken).ConfigureAwait(false);
        }

        // Status from what was observed at the start of this reconcile; the
        // pod events our changes cause bring the next one.
        var live = serving.Where(p => p.Metadata.DeletionTimestamp is null).ToList();
        var observation = new FunctionObservation(function, live, desired, hash, problems, _catalog, NodeProducts(live));
        var status = FunctionStatusBuilder.Build(observation, now.UtcDateTime, _endpointBase);
        if (LastRequest(key) is { } last)
        {
            status = status with { LastRequestTime = last.UtcDateTime };
        }

        var warmCount = Prewarm.WarmPool.Count(warm);
        var reserved = placeholders.Count(p => p.Metadata.DeletionTimestamp is null && p.Status?.Phase == "Running");
        status = Prewarm.PrewarmStatus.With(status, function, warmTarget, warmCount, reserved, prePull, quotaProblem, now.UtcDateTime);
        if (service is { } svc)
        {
            status = status with
            {
                Conditions = [.. status.Conditions ?? [], FunctionStatusBuilder.Condition(function.Status, FunctionConditions.ServiceReady,
                    svc.Owned ? "True" : "False", svc.Reason, svc.Message, function.Metadata.Generation, now.UtcDateTime)],
            };
            if (svc.Reason == FunctionConditions.Reasons.ServiceNotOwned
                && function.Status?.Conditions?.FirstOrDefault(c => c.Type == FunctionConditions.ServiceReady)?.Reason != svc.Reason)
            {
                await _events.WarningAsync(function, FunctionConditions.Reasons.ServiceNotOwned, svc.Message, cancellationToken).ConfigureAwait(false);
            }
        }

        var ns = key.Namespace ?? "";
        if (_metrics.Leading)
        {
            OperatorMetrics.SetPerFunction(_metrics.WarmReplicas, ns, key.Name, warmCount.Ready);
            OperatorMetrics.SetPerFunction(_metrics.ReservedReplicas, ns, key.Name, reserved);
            OperatorMetrics.SetPerFunction(_metrics.PrePulledNodes, ns, key.Name, prePull.Ready);
        }

        // Totals as of now; written to status only when a pod opened or closed, or the written ones are old enough.
        var fresh = _usage.Update(key, function.Status?.Usage, pods, now.UtcDateTime);
        var usage = Usage.UsageLedger.Worth(function.Status?.Usage, fresh, UsageStatusInterval) ? fresh : function.Status!.Usage!;
        status = status with { Usage = usage };
        var coldStartsWait = WithColdStarts(function, key, ref status, now);

        await WriteStatusAsync(function, status, cancellationToken).ConfigureAwait(false);
        TimeSpan? after = _expectations.ContainsKey(key) ? TimeSpan.FromSeconds(5)
            : usage.OpenPods is { Count: > 0 } ? Later(UsageStatusInterval - (now.UtcDateTime - (usage.AsOf ?? now.UtcDateTime)))
            : null;
        if (coldStartsWait is { } coldWait)
        {
            after = Shorter(after, coldWait);
        }
        if (prePull.Eligible > prePull.Ready || !prePull.Settled)
        {
            // The DaemonSet's progress is not watched: look again shortly. Just created, it counts no eligible node
            // yet, and no other event need follow.
            after = Shorter(after, TimeSpan.FromSeconds(2));
        }

        if (service is { Reason: FunctionConditions.Reasons.ServiceNotOwned })
        {
            // Someone else's Service is not watched (the operator watches only those it labels): look again, so the
            // function gets its own once that one is gone.
            after = Shorter(after, ForeignServiceRecheck);
        }

        if (FunctionStatusBuilder.NextStartupDeadline(observation, now.UtcDateTime) is { } deadline)
        {
            // A replica runs out of startupTimeout with no pod event to say so: look again then, to report it Stalled.
            after = Shorter(after, deadline - now.UtcDateTime);
        }

        if (warmTarget.NextChange is { } change)
        {
            // A lead window opens or a keep-warm period ends with no event to say so.
            after = Shorter(after, change - now < TimeSpan.FromMilliseconds(100) ? TimeSpan.FromMilliseconds(100) : change - now);
        }

        return after is { } wait ? ReconcileResult.After(wait) : ReconcileResult.Done;
    }

    /// <inheritdoc />
    public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        _expectations.TryRemove(key, out _);
        foreach (var metric in new Prometheus.Collector<Prometheus.Counter.Child>[] { _metrics.FunctionGpuSeconds, _metrics.WarmClaims })
        {
            metric.RemoveLabelled(key.Namespace ?? "", key.Name);
        }

        foreach (var gauge in new[] { _metrics.WarmReplicas, _metrics.ReservedReplicas, _metrics.PrePulledNodes })
        {
            gauge.RemoveLabelled(key.Namespace ?? "", key.Name);
        }

        _prePulling.TryRemove(key, out _);
        _quotaProblems.TryRemove(key, out _);
        _templates.TryRemove(key, out _);
        _observedStatus.TryRemove(key, out _);
        _coldStartsWritten.TryRemove(key, out _);

        // The function's pods outlive it until the garbage collector removes them; each is billed to its own deletion.
        _usage.OwnerDeleted(key);

        return Task.CompletedTask;
    }

    private void CloseInJournal(ObjectKey key, BilledPod pod, DateTime end) => Journal.Record(new Usage.ClosedPod
    {
        Namespace = key.Namespace ?? "", Kind = GpuFunction.KindName, Name = key.Name, Uid = pod.Uid, Gpus = pod.Gpus, Start = pod.Start, End = end,
    });

    private List<V1Pod> OwnedPods(GpuFunction function) => function.Metadata.Uid is { Length: > 0 } uid
        ? [.. _pods.ByIndex(Indexers.ControllerUid, uid).Where(p => FunctionOwnership.IsOwnedBy(p, uid))]
        : [];

    /// <summary>A requeue delay of at least a second (a refresh already due is looked at shortly, not at once in a loop).</summary>
    private static TimeSpan Later(TimeSpan wait) => wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait;

    private Dictionary<string, string> NodeProducts(IEnumerable<V1Pod> pods)
    {
        var products = new Dictionary<string, string>();
        foreach (var node in pods.Select(p => p.Spec?.NodeName).OfType<string>().Distinct())
        {
            if (_nodes.Get(new ObjectKey(null, node))?.Metadata.Labels?.TryGetValue(GpuCatalog.ProductLabel, out var product) == true)
            {
                products[node] = product;
            }
        }

        return products;
    }

    /// <summary>
    /// True once the pod cache reflects this controller's last creations and
    /// deletions for the key (or they timed out): acting on a stale cache
    /// would create pods twice.
    /// </summary>
    private bool Settled(ObjectKey key, List<V1Pod> pods)
    {
        if (!_expectations.TryGetValue(key, out var expected))
        {
            return true;
        }

        var names = pods.ToDictionary(p => p.Metadata.Name);
        var settled = expected.Created.All(names.ContainsKey)
            && expected.Deleted.All(n => !names.TryGetValue(n, out var p) || p.Metadata.DeletionTimestamp is not null)
            && expected.Roles.All(r => !names.TryGetValue(r.Key, out var p) || (p.Metadata.Labels?.TryGetValue(FunctionLabels.Role, out var role) == true ? role : null) == r.Value);
        if (settled || _time.GetUtcNow() - expected.At > ExpectationTimeout)
        {
            _expectations.TryRemove(key, out _);
            return true;
        }

        return false;
    }

    private static TimeSpan Shorter(TimeSpan? a, TimeSpan b) => a is { } x && x < b ? x : b;

    private V1Pod Template(ObjectKey key, GpuFunction function, FunctionPlacement placement)
    {
        var uid = function.Metadata.Uid;
        var generation = function.Metadata.Generation ?? 0;
        var restartedAt = FunctionPods.RestartedAt(function);
        if (_templates.TryGetValue(key, out var cached) && cached.Uid == uid && cached.Generation == generation && cached.RestartedAt == restartedAt)
        {
            return cached.Template;
        }

        var template = FunctionPods.MakePod(function, placement, _podOptions);
        _templates[key] = (uid, generation, restartedAt, template);
        return template;
    }

    /// <summary>Creates <paramref name="create"/> pods from <paramref name="template"/> and deletes <paramref name="delete"/>; a quota refusal is returned, not thrown.</summary>
    private async Task<string?> ApplyAsync(GpuFunction function, V1Pod template, int create, IReadOnlyList<V1Pod> delete, PodChanges changes, CancellationToken ct)
    {
        foreach (var pod in delete)
        {
            try
            {
                await _client.CoreV1.DeleteNamespacedPodAsync(pod.Metadata.Name, pod.Metadata.NamespaceProperty,
                    new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = pod.Metadata.Uid } }, cancellationToken: ct).ConfigureAwait(false);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
            {
            }

            changes.Deleted.Add(pod.Metadata.Name);
        }

        if (create == 0)
        {
            return null;
        }

        // The pods of one step are created side by side (a burst at zero wants them all at once), a few at a time.
        // Every creation runs to its end, whatever the others do, so each pod created is recorded; a quota refusal
        // stops the creations not yet started and is returned; any other failure is thrown once all have ended.
        string? refused = null;
        Exception? failed = null;
        var options = new ParallelOptions { MaxDegreeOfParallelism = CreateParallelism, CancellationToken = ct };
        await Parallel.ForEachAsync(Enumerable.Range(0, create), options, async (_, token) =>
        {
            if (Volatile.Read(ref refused) is not null || Volatile.Read(ref failed) is not null)
            {
                return;
            }

            try
            {
                var pod = await _client.CoreV1.CreateNamespacedPodAsync(template, function.Metadata.NamespaceProperty, cancellationToken: token).ConfigureAwait(false);
                lock (changes)
                {
                    changes.Created.Add(pod.Metadata.Name);
                }
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Forbidden && e.Response.Content.Contains("exceeded quota", StringComparison.Ordinal))
            {
                // The namespace's ResourceQuota bounds everything the operator creates; say so instead of retrying hot.
                Interlocked.CompareExchange(ref refused, QuotaMessage(e.Response.Content), null);
            }
            catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
            {
                Interlocked.CompareExchange(ref failed, e, null);
            }
        }).ConfigureAwait(false);

        if (refused is null && failed is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed);
        }

        return refused;
    }

    private static string QuotaMessage(string body)
    {
        try
        {
            return KubernetesJson.Deserialize<V1Status>(body)?.Message ?? "exceeded quota";
        }
        catch (System.Text.Json.JsonException)
        {
            return "exceeded quota";
        }
    }

    /// <summary>Moves a pod between the warm pool and serving by its role label, with the role's eviction annotations in the same write.</summary>
    private async Task RelabelAsync(V1Pod pod, string role, PodChanges changes, CancellationToken ct)
    {
        var patch = new V1Patch(KubernetesJson.Serialize(new
        {
            metadata = new { labels = new Dictionary<string, string> { [FunctionLabels.Role] = role }, annotations = FunctionPods.EvictionAnnotations(role) },
        }), V1Patch.PatchType.MergePatch);
        try
        {
            await _client.CoreV1.PatchNamespacedPodAsync(patch, pod.Metadata.Name, pod.Metadata.NamespaceProperty, cancellationToken: ct).ConfigureAwait(false);
            changes.Roles[pod.Metadata.Name] = role;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }
    }

    /// <summary>Keeps <c>prewarm.reservedReplicas</c> placeholder pods, creating the PriorityClass they need once.</summary>
    private async Task<string?> ReconcileReservationsAsync(GpuFunction function, FunctionPlacement placement, List<V1Pod> placeholders, PodChanges changes, CancellationToken ct)
    {
        var wanted = placement.GpuCount > 0 ? function.Spec.Prewarm?.ReservedReplicas ?? 0 : 0;
        var live = placeholders.Where(p => p.Metadata.DeletionTimestamp is null && p.Status?.Phase is not ("Failed" or "Succeeded")).ToList();
        var delete = placeholders.Except(live).Where(p => p.Metadata.DeletionTimestamp is null).ToList();
        if (live.Count > wanted)
        {
            delete.AddRange(live.OrderBy(p => p.Status?.Phase == "Running").ThenByDescending(p => p.Metadata.CreationTimestamp).Take(live.Count - wanted));
        }

        if (wanted > live.Count)
        {
            await EnsurePriorityClassAsync(ct).ConfigureAwait(false);
        }

        return await ApplyAsync(function, Prewarm.PrewarmResources.Placeholder(function, placement, _podOptions), Math.Max(0, wanted - live.Count), delete, changes, ct)
            .ConfigureAwait(false);
    }

    private async Task EnsurePriorityClassAsync(CancellationToken ct)
    {
        if (_priorityClassReady)
        {
            return;
        }

        try
        {
            await _client.SchedulingV1.CreatePriorityClassAsync(Prewarm.PrewarmResources.PriorityClass(_podOptions.ReservationPriorityClass), cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Forbidden)
        {
            // Installed by the chart, which gives the operator no right to create it: that is fine.
            _logger.LogDebug("PriorityClass {Name} not created (forbidden); the chart is expected to install it", _podOptions.ReservationPriorityClass);
        }

        _priorityClassReady = true;
    }

    /// <summary>
    /// Keeps the pre-pull DaemonSet (or removes it when pre-pull is off); returns (nodes with the image, eligible nodes,
    /// whether the DaemonSet's status describes its current template). An unsettled DaemonSet was just created or patched.
    /// </summary>
    private async Task<(int Ready, int Eligible, bool Settled)> ReconcilePrePullAsync(GpuFunction function, FunctionPlacement placement, CancellationToken ct)
    {
        var ns = function.Metadata.NamespaceProperty;
        var name = Prewarm.PrewarmResources.PrePullName(function);
        var wanted = function.Spec.Prewarm?.PrePull == true && placement.Gpu is not null;
        if (!wanted && !_prePulling.ContainsKey(ObjectKey.Of(function)) && function.Status?.PrePullEligibleNodes is null or 0)
        {
            return (0, 0, true);
        }

        V1DaemonSet? have;
        try
        {
            have = await _client.AppsV1.ReadNamespacedDaemonSetAsync(name, ns, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            have = null;
        }

        if (!wanted)
        {
            _prePulling.TryRemove(ObjectKey.Of(function), out _);
            if (have?.Metadata.OwnerReferences?.Any(o => o.Uid == function.Metadata.Uid) == true)
            {
                await _client.AppsV1.DeleteNamespacedDaemonSetAsync(name, ns, cancellationToken: ct).ConfigureAwait(false);
            }

            return (0, 0, true);
        }

        _prePulling[ObjectKey.Of(function)] = true;
        var want = Prewarm.PrewarmResources.PrePull(function, placement, _podOptions);
        if (have is null)
        {
            await _client.AppsV1.CreateNamespacedDaemonSetAsync(want, ns, cancellationToken: ct).ConfigureAwait(false);
            await _events.NormalAsync(function, "PrePulling", $"Pulling {function.Spec.Image} on nodes with {string.Join(", ", placement.Types.Select(t => t.Type.Name))} GPUs", ct).ConfigureAwait(false);
            return (0, 0, false);
        }

        if (have.Metadata.OwnerReferences?.Any(o => o.Uid == function.Metadata.Uid) != true)
        {
            throw new InvalidOperationException($"DaemonSet {ns}/{name} exists and is not owned by this function");
        }

        if (KubernetesJson.Serialize(have.Spec.Template.Spec.Containers[0].Image) != KubernetesJson.Serialize(want.Spec.Template.Spec.Containers[0].Image)
            || KubernetesJson.Serialize(have.Spec.Template.Spec.Affinity) != KubernetesJson.Serialize(want.Spec.Template.Spec.Affinity))
        {
            var patch = new { spec = new { template = want.Spec.Template } };
            await _client.AppsV1.PatchNamespacedDaemonSetAsync(new V1Patch(KubernetesJson.Serialize(patch), V1Patch.PatchType.MergePatch), name, ns, cancellationToken: ct)
                .ConfigureAwait(false);
            return (0, have.Status?.DesiredNumberScheduled ?? 0, false);
        }

        // Ready pods of the current template: the kubelet had the image to start them.
        var observed = have.Status?.ObservedGeneration == have.Metadata.Generation;
        var current = observed ? have.Status?.UpdatedNumberScheduled ?? 0 : 0;
        return (Math.Min(have.Status?.NumberReady ?? 0, current), have.Status?.DesiredNumberScheduled ?? 0, observed);
    }

    private void Expect(ObjectKey key, PodChanges changes)
    {
        if (changes.Created.Count + changes.Deleted.Count + changes.Roles.Count > 0)
        {
            _expectations[key] = new Expectation(changes.Created, changes.Deleted, changes.Roles, _time.GetUtcNow());
        }
    }

    private async Task RecordAsync(GpuFunction function, ObjectKey key, PodChanges changes, int claimed, CancellationToken ct)
    {
        if (claimed > 0)
        {
            _metrics.WarmClaims.WithLabels(key.Namespace ?? "", key.Name).Inc(claimed);
            await _events.NormalAsync(function, "ClaimedWarmPods", $"Claimed {claimed} warm pod(s) to serve", ct).ConfigureAwait(false);
        }

        if (changes.Created.Count > 0)
        {
            await _events.NormalAsync(function, "CreatedPods", $"Created {changes.Created.Count} pod(s): {string.Join(", ", changes.Created)}", ct).ConfigureAwait(false);
        }

        if (changes.Deleted.Count > 0)
        {
            await _events.NormalAsync(function, "DeletedPods", $"Deleted {changes.Deleted.Count} pod(s): {string.Join(", ", changes.Deleted)}", ct).ConfigureAwait(false);
        }
    }

    /// <summary>What one reconcile changed, for expectations and events.</summary>
    private sealed class PodChanges
    {
        public List<string> Created { get; } = [];

        public List<string> Deleted { get; } = [];

        public Dictionary<string, string> Roles { get; } = [];
    }

    /// <summary>What became of a function's ClusterService, for its ServiceReady condition.</summary>
    private readonly record struct ServiceState(bool Owned, string Reason, string Message);

    /// <summary>
    /// Creates the function's Service when <paramref name="needed"/> and missing; an existing one is checked (owner,
    /// selector, port) while the function asks for a Service (at zero too), and deleted once it no longer does (owner
    /// references remove it with the function). A Service of that name that the function does not control is left
    /// alone: while the function asks for one, that is said in its ServiceReady condition (and a Warning Event), and
    /// its pods run all the same, since serving goes through the gateway. Null while the function asks for none.
    /// </summary>
    private async Task<ServiceState?> EnsureServiceAsync(GpuFunction function, bool needed, CancellationToken ct)
    {
        var want = FunctionPods.MakeService(function, _podOptions);
        var ns = function.Metadata.NamespaceProperty;
        var name = want.Metadata.Name;
        var asked = function.Spec.ClusterService;
        var owned = new ServiceState(true, FunctionConditions.Reasons.ServiceOwned, $"Service {name} selects the function's pods");
        var waiting = new ServiceState(false, FunctionConditions.Reasons.WaitingForFirstPod, $"Service {name} is made with the function's first pod");
        var foreign = new ServiceState(false, FunctionConditions.Reasons.ServiceNotOwned,
            $"Service {name} exists and is not controlled by this function; delete or rename it, or set spec.clusterService to false");
        bool Owns(V1Service s) => s.Metadata.OwnerReferences?.Any(o => o.Uid == function.Metadata.Uid && o.Controller == true) == true;

        V1Service? have;
        if (Services is { } cache)
        {
            // The cache holds the Services the operator labels; a tenant's Service of that name is found by the create.
            have = cache.Get(new ObjectKey(ns, name));
        }
        else if (!needed)
        {
            return asked ? waiting : null;
        }
        else
        {
            have = await ReadServiceAsync(ns, name, ct).ConfigureAwait(false);
        }

        if (have is null)
        {
            if (!needed)
            {
                return asked ? waiting : null;
            }

            try
            {
                await _client.CoreV1.CreateNamespacedServiceAsync(want, ns, cancellationToken: ct).ConfigureAwait(false);
                return owned;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
            {
                // Made a moment ago and not yet in the cache, or someone else's: its controller reference says which.
                have = await ReadServiceAsync(ns, name, ct).ConfigureAwait(false);
                return have is null ? waiting : Owns(have) ? owned : foreign;
            }
        }

        if (!asked)
        {
            if (Owns(have) && have.Metadata.DeletionTimestamp is null)
            {
                await DeleteServiceAsync(function, have, ct).ConfigureAwait(false);
            }

            return null;
        }

        if (!Owns(have))
        {
            return foreign;
        }

        if (KubernetesJson.Serialize(have.Spec.Selector) != KubernetesJson.Serialize(want.Spec.Selector)
            || have.Spec.Ports?.FirstOrDefault()?.TargetPort?.Value != want.Spec.Ports[0].TargetPort.Value)
        {
            var patch = new { spec = new { selector = want.Spec.Selector, ports = want.Spec.Ports } };
            await _client.CoreV1.PatchNamespacedServiceAsync(new V1Patch(KubernetesJson.Serialize(patch), V1Patch.PatchType.MergePatch),
                name, ns, cancellationToken: ct).ConfigureAwait(false);
        }

        return owned;
    }

    private async Task<V1Service?> ReadServiceAsync(string ns, string name, CancellationToken ct)
    {
        try
        {
            return await _client.CoreV1.ReadNamespacedServiceAsync(name, ns, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>The function's own Service, once <c>spec.clusterService</c> is off: deleted, with an Event.</summary>
    private async Task DeleteServiceAsync(GpuFunction function, V1Service service, CancellationToken ct)
    {
        try
        {
            // Preconditioned on the UID seen, so a Service made anew under that name meanwhile is not the one deleted.
            await _client.CoreV1.DeleteNamespacedServiceAsync(service.Metadata.Name, service.Metadata.NamespaceProperty,
                new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = service.Metadata.Uid } }, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
        {
            // Gone already, or another one now: the cache brings what is there.
            return;
        }
        catch (System.Text.Json.JsonException)
        {
            // Deleted: older API servers (1.20 here) answer a Service's deletion with a Status, which the client reads
            // as a Service and cannot (an error answer is an HttpOperationException, above).
        }

        await _events.NormalAsync(function, "DeletedService", $"Deleted Service {service.Metadata.Name}: spec.clusterService is off", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Puts the gateways' cold starts into <paramref name="status"/>: the new total when it changed and is due (or
    /// status is written anyway), else the written one. Returns when to look again for a total held back.
    /// </summary>
    private TimeSpan? WithColdStarts(GpuFunction function, ObjectKey key, ref GpuFunctionStatus status, DateTimeOffset now)
    {
        var (total, sources) = (function.Status?.ColdStarts ?? 0, function.Status?.ColdStartSources);
        var written = status with { ColdStarts = total, ColdStartSources = sources };
        var reported = function.Metadata.Uid is { Length: > 0 } uid ? ColdStarts(key, uid) : [];
        var (fresh, freshSources) = ColdStartTally.Take(total, sources, reported);
        if (fresh == total && freshSources.SequenceEqual(sources ?? []))
        {
            status = written;
            return null;
        }

        var last = _coldStartsWritten.TryGetValue(key, out var at) ? at : (DateTimeOffset?)null;
        if (ColdStartTally.Due(last, now, ColdStartStatusInterval) || !Unchanged(function, written))
        {
            _coldStartsWritten[key] = now;
            status = status with { ColdStarts = fresh, ColdStartSources = freshSources };
            return null;
        }

        status = written;
        return Later(last!.Value + ColdStartStatusInterval - now);
    }

    /// <summary>True when <paramref name="status"/> is what the cached function already has (schedule fields aside).</summary>
    private bool Unchanged(GpuFunction function, GpuFunctionStatus status) => function.Status is not null
        && Digest(KubernetesJson.Serialize(Schedules.ScheduleRules.WithoutScheduleFields(status)!)).AsSpan().SequenceEqual(ObservedStatusDigest(function));

    private async Task WriteStatusAsync(GpuFunction function, GpuFunctionStatus status, CancellationToken ct)
    {
        // lastSchedule* belong to the schedule loop: left out of this patch, so a stale cached copy is never written back.
        status = Schedules.ScheduleRules.WithoutScheduleFields(status)!;
        var wanted = KubernetesJson.Serialize(status);
        if (function.Status is not null && Digest(wanted).AsSpan().SequenceEqual(ObservedStatusDigest(function)))
        {
            return;
        }

        var body = $"{{\"status\":{wanted}}}";
        try
        {
            await _client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch(body, V1Patch.PatchType.MergePatch),
                Group.Name, Group.Version, function.Metadata.NamespaceProperty, "gpufunctions", function.Metadata.Name, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // Deleted while this reconcile ran; its Deleted event closes the books.
            return;
        }

        var before = function.Status?.Conditions?.FirstOrDefault(c => c.Type == FunctionConditions.Ready);
        var after = status.Conditions!.First(c => c.Type == FunctionConditions.Ready);
        // A transition, or a first status that is a problem; a new function's first healthy status is no news (and at
        // thousands of functions applied at once, an Event each).
        if ((before?.Status != after.Status || before?.Reason != after.Reason) && (before is not null || FunctionConditions.IsProblem(after.Reason)))
        {
            await (FunctionConditions.IsProblem(after.Reason)
                ? _events.WarningAsync(function, after.Reason, after.Message, ct)
                : _events.NormalAsync(function, after.Reason, after.Message, ct)).ConfigureAwait(false);
        }

        // Extra replicas kept out while the function serves: Ready says nothing, so ScaledUp's own Warning does.
        var scaleBefore = function.Status?.Conditions?.FirstOrDefault(c => c.Type == FunctionConditions.ScaledUp);
        var scaleAfter = status.Conditions!.FirstOrDefault(c => c.Type == FunctionConditions.ScaledUp);
        if (scaleAfter is { Status: "False" } && FunctionConditions.IsProblem(scaleAfter.Reason) && scaleAfter.Reason != after.Reason
            && (scaleBefore?.Status != scaleAfter.Status || scaleBefore?.Reason != scaleAfter.Reason))
        {
            await _events.WarningAsync(function, scaleAfter.Reason, $"not all replicas ready: {scaleAfter.Message}", ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A digest of the cached function's status (schedule fields left out) as JSON, computed once per resourceVersion:
    /// most reconciles see a function that did not change since the last one. A digest, not the JSON, to keep
    /// thousands of functions' statuses out of memory twice.
    /// </summary>
    private byte[] ObservedStatusDigest(GpuFunction function)
    {
        var key = ObjectKey.Of(function);
        var version = function.Metadata.ResourceVersion;
        if (version is not null && _observedStatus.TryGetValue(key, out var seen) && seen.Version == version)
        {
            return seen.Digest;
        }

        var digest = Digest(KubernetesJson.Serialize(Schedules.ScheduleRules.WithoutScheduleFields(function.Status)));
        if (version is not null)
        {
            _observedStatus[key] = (version, digest);
        }

        return digest;
    }

    private static byte[] Digest(string json) => System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(json));

    private sealed record Expectation(IReadOnlyList<string> Created, IReadOnlyList<string> Deleted, IReadOnlyDictionary<string, string> Roles, DateTimeOffset At);
}
