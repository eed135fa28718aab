using System.Collections.Concurrent;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// Reconciles a Sandbox into one hardened pod and one NetworkPolicy, and ends
/// it: at <c>timeout</c> after creation, after <c>idleTimeout</c> without
/// activity, on a terminate request, or when its pod fails or vanishes. An
/// ended sandbox keeps a <c>Finished</c> condition (or is deleted, per
/// <c>expiryPolicy</c>); its pod is never silently recreated.
/// </summary>
public sealed class SandboxReconciler : IReconciler<Sandbox>
{
    private readonly IKubernetes _client;
    private readonly Informer<V1Pod> _pods;
    private readonly Informer<SandboxWarmPool> _pools;
    private readonly GpuCatalog _catalog;
    private readonly SandboxOptions _options;
    private readonly EventRecorder _events;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SandboxPolicies _policies;
    private readonly ConcurrentDictionary<string, (string Pod, DateTimeOffset At)> _claims = new();

    // Why each sandbox ended, by "namespace/name", remembered from the moment it is decided: the pod is deleted
    // next, and a reconcile that sees the deletion before the Finished status reaches the cache must not re-decide
    // the ending (a failed pod would otherwise be reported lost).
    private readonly ConcurrentDictionary<string, (string Uid, string Reason, string Message)> _endings = new();
    private static readonly TimeSpan ClaimPatience = TimeSpan.FromSeconds(10);

    private readonly Usage.PodUsageTracker _usage;
    private readonly ConcurrentDictionary<ObjectKey, double> _counted = new();

    private static readonly Prometheus.Counter SandboxGpuSeconds = Prometheus.Metrics.CreateCounter(
        "pilotlight_sandbox_gpu_seconds_total", "GPU-seconds billed to sandboxes per namespace by the operator's ledger (from pod lifetimes).",
        "namespace");

    private static readonly Prometheus.Counter SandboxClaims = Prometheus.Metrics.CreateCounter(
        "pilotlight_sandbox_warm_claims_total", "Sandboxes that started on a claimed warm pod instead of a new one.", "namespace");

    /// <summary>
    /// A reconciler reading pods from <paramref name="pods"/> (which must have the <see cref="SandboxPodIndexes"/>)
    /// and the pools it may claim warm pods from from <paramref name="pools"/>, keeping policies through <paramref name="policies"/>.
    /// </summary>
    public SandboxReconciler(IKubernetes client, Informer<V1Pod> pods, Informer<SandboxWarmPool> pools, SandboxPolicies policies, GpuCatalog catalog,
        SandboxOptions options, EventRecorder events, TimeProvider? time = null, ILogger? logger = null)
    {
        _client = client;
        _policies = policies;
        _pods = pods;
        _pools = pools;
        _catalog = catalog;
        _options = options;
        _events = events;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _usage = new Usage.PodUsageTracker(pods, _time, CloseInJournal);
    }

    /// <summary>Where closed billing intervals go, for usage over a time window (the functions' journal).</summary>
    public Usage.UsageJournal Journal { get; init; } = new();

    /// <summary>
    /// What the gateways say of sandboxes (activity, calls running, terminate requests); null: an operator with no
    /// gateway, where only the annotations count.
    /// </summary>
    public Scaling.GatewaySignalFeed? Signals { get; init; }

    /// <inheritdoc />
    public async Task<ReconcileResult> ReconcileAsync(Sandbox sandbox, CancellationToken cancellationToken)
    {
        if (sandbox.Metadata.DeletionTimestamp is not null)
        {
            return ReconcileResult.Done;
        }

        var now = _time.GetUtcNow().UtcDateTime;
        var ns = sandbox.Metadata.NamespaceProperty;
        // Its pod: the one it created (named after it) or a warm pod it claimed, labelled and owned either way.
        var pod = _pods.OwnedBy(ns, sandbox.Metadata.Uid).FirstOrDefault(p =>
            p.Metadata.Labels?.TryGetValue(SandboxAnnotations.SandboxLabel, out var owner) == true && owner == sandbox.Metadata.Name);
        if (pod is not null)
        {
            _claims.TryRemove(sandbox.Metadata.Uid, out _);
        }
        else if (_claims.TryGetValue(sandbox.Metadata.Uid, out var claim) && _time.GetUtcNow() - claim.At < ClaimPatience)
        {
            // Claimed a moment ago; the cache has not caught up. Neither claim nor create again.
            return ReconcileResult.After(TimeSpan.FromMilliseconds(200));
        }

        var previous = sandbox.Status;
        var usage = Bill(sandbox, now);
        if (previous?.Conditions?.FirstOrDefault(c => c.Type == SandboxConditions.Finished) is { Status: "True" })
        {
            // Ended for good: make sure nothing runs, and bill the pod until it is gone.
            await DeletePodAsync(pod, cancellationToken).ConfigureAwait(false);
            await WriteStatusAsync(sandbox, previous with { Usage = usage }, cancellationToken).ConfigureAwait(false);
            return usage?.OpenPods is { Count: > 0 } ? ReconcileResult.After(UsageRefresh) : ReconcileResult.Done;
        }

        var (runtimeClass, placement, timeout, idle, problems) = Validate(sandbox);
        var created = sandbox.Metadata.CreationTimestamp ?? now;
        var expiresAt = created + timeout;
        var lastActivity = LastActivity(sandbox, pod);
        var heard = Signals?.Sandbox(ObjectKey.Of(sandbox), sandbox.Metadata.Uid) ?? (null, 0, false);
        if (heard.LastActivity?.UtcDateTime > lastActivity)
        {
            lastActivity = heard.LastActivity.Value.UtcDateTime;
        }

        if (heard.Active > 0)
        {
            // A call is running through a gateway: active now, however long it has run.
            lastActivity = now;
        }

        // Idle only on what every gateway said: after a start or failover, one not yet heard may hold newer activity.
        var mayEndIdle = Signals?.Complete ?? true;
        // A claimed warm pod started before the sandbox existed: the sandbox starts at its creation then.
        var startTime = pod?.Status?.StartTime is { } podStart ? (podStart > created ? podStart : created) : previous?.StartTime;

        var endingKey = $"{ns}/{sandbox.Metadata.Name}";
        var end = problems.Count > 0 ? null
            : _endings.TryGetValue(endingKey, out var decided) && decided.Uid == sandbox.Metadata.Uid ? (decided.Reason, decided.Message)
            : Ending(sandbox, pod, previous, now, expiresAt, mayEndIdle ? idle : null, lastActivity, heard.TerminateRequested);
        if (end is { } ending)
        {
            _endings[endingKey] = (sandbox.Metadata.Uid, ending.Item1, ending.Item2);
        }

        SandboxStatus status;
        string? rejected = null;
        if (problems.Count > 0)
        {
            var message = string.Join("; ", problems);
            status = Status(sandbox, startTime, null, null,
                ("False", SandboxConditions.Reasons.InvalidSpec, message), ("False", SandboxConditions.Reasons.InvalidSpec, message), now);
        }
        else if (end is { } e)
        {
            await DeletePodAsync(pod, cancellationToken).ConfigureAwait(false);
            status = Status(sandbox, startTime, previous?.PodName, expiresAt,
                ("False", e.Reason, e.Message), ("True", e.Reason, e.Message), now);
            await (e.Reason is SandboxConditions.Reasons.PodFailed or SandboxConditions.Reasons.PodLost
                ? _events.WarningAsync(sandbox, e.Reason, e.Message, cancellationToken)
                : _events.NormalAsync(sandbox, e.Reason, e.Message, cancellationToken)).ConfigureAwait(false);
            if (sandbox.Spec.ExpiryPolicy == SandboxExpiryPolicy.Delete)
            {
                await DeleteSandboxAsync(sandbox, cancellationToken).ConfigureAwait(false);
                return ReconcileResult.Done;
            }
        }
        else
        {
            await EnsurePolicyAsync(sandbox, cancellationToken).ConfigureAwait(false);
            var conflict = _pods.Get(new ObjectKey(ns, SandboxPods.PodName(sandbox))) is { } other && pod is null
                && other.Metadata.OwnerReferences?.Any(o => o.Uid == sandbox.Metadata.Uid) != true;
            if (pod is null && !conflict && previous?.StartTime is null)
            {
                pod = await ClaimAsync(sandbox, runtimeClass, cancellationToken).ConfigureAwait(false);
                if (pod is null)
                {
                    var wasRejected = previous?.Conditions?.FirstOrDefault(c => c.Type == SandboxConditions.Ready)?.Reason == SandboxConditions.Reasons.PodRejected;
                    rejected = await CreatePodAsync(sandbox, runtimeClass, placement, warnIfRejected: !wasRejected, cancellationToken).ConfigureAwait(false);
                }
            }

            var ready = pod is not null && PodReadiness.IsReady(pod);
            var running = conflict
                ? ("False", SandboxConditions.Reasons.PodConflict, $"a pod named {SandboxPods.PodName(sandbox)} exists and is not this sandbox's")
                : rejected is not null
                ? ("False", SandboxConditions.Reasons.PodRejected, $"the API server refused the sandbox's pod: {rejected}")
                : ready
                    ? ("True", SandboxConditions.Reasons.Running, "the agent is ready")
                    : ("False", SandboxConditions.Reasons.PodStarting, PendingMessage(pod));
            status = Status(sandbox, startTime, pod?.Metadata.Name ?? SandboxPods.PodName(sandbox), expiresAt, running,
                ("False", SandboxConditions.Reasons.Running, "not finished"), now);
        }

        await WriteStatusAsync(sandbox, status with { Usage = usage }, cancellationToken).ConfigureAwait(false);
        if (rejected is not null)
        {
            // Not an error to back off from: the cause (a RuntimeClass, a quota) is fixed outside, so ask again calmly.
            return ReconcileResult.After(RejectedRetry);
        }

        if (problems.Count > 0 || end is not null)
        {
            // An ended sandbox's pod is still being deleted: its Deleted event (an owned pod) closes its bill.
            return usage?.OpenPods is { Count: > 0 } ? ReconcileResult.After(UsageRefresh) : ReconcileResult.Done;
        }

        // Wake for whichever deadline comes first.
        var next = expiresAt;
        if (idle is { } i)
        {
            // Idle already but not every gateway heard yet: look again shortly, when they may have been.
            var idleAt = !mayEndIdle && lastActivity + i <= now ? now + TimeSpan.FromSeconds(2) : lastActivity + i;
            next = idleAt < next ? idleAt : next;
        }

        var wait = next - now;
        if (usage?.OpenPods is { Count: > 0 } && wait > UsageRefresh)
        {
            wait = UsageRefresh;
        }

        return ReconcileResult.After(wait < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50) : wait);
    }

    /// <inheritdoc />
    public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        _endings.TryRemove($"{key.Namespace}/{key.Name}", out _);
        Signals?.Forget(key);
        // Its pod outlives it until the garbage collector (or the ending) removes it, and is billed to its own deletion.
        _usage.OwnerDeleted(key);
        _counted.TryRemove(key, out _);
        return Task.CompletedTask;
    }

    /// <summary>How soon a sandbox whose pod the API server refused asks again.</summary>
    internal static readonly TimeSpan RejectedRetry = TimeSpan.FromSeconds(15);

    /// <summary>How often usage in status is refreshed while a sandbox's pod is billed.</summary>
    public static readonly TimeSpan UsageRefresh = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The sandbox's usage now: every pod it controls (by owner UID, terminating ones included) from the later of
    /// the pod's start and the sandbox's creation (a claimed warm pod ran for the pool before) until it is gone.
    /// </summary>
    private UsageTotals? Bill(Sandbox sandbox, DateTime now)
    {
        var key = ObjectKey.Of(sandbox);
        var owned = string.IsNullOrEmpty(sandbox.Metadata.Uid) ? []
            : _pods.ByIndex(Indexers.ControllerUid, sandbox.Metadata.Uid).Where(p => p.Metadata.NamespaceProperty == sandbox.Metadata.NamespaceProperty);
        var previous = sandbox.Status?.Usage;
        var usage = _usage.Update(key, previous, owned, now, sandbox.Metadata.CreationTimestamp);
        if (usage.OpenPods is not { Count: > 0 } && previous?.OpenPods is not { Count: > 0 }
            && usage.GpuSeconds == (previous?.GpuSeconds ?? 0) && usage.CpuSeconds == (previous?.CpuSeconds ?? 0))
        {
            // Nothing billed since: keep status as it is (no write for a new asOf alone).
            return previous;
        }

        // The counter follows what this process counted, not the status read back (which may be stale in the cache).
        var counted = _counted.GetValueOrDefault(key, previous?.GpuSeconds ?? 0);
        if (usage.GpuSeconds > counted)
        {
            SandboxGpuSeconds.WithLabels(key.Namespace ?? "").Inc(usage.GpuSeconds - counted);
            _counted[key] = usage.GpuSeconds;
        }

        return usage;
    }

    private void CloseInJournal(ObjectKey key, BilledPod pod, DateTime end) => Journal.Record(new Usage.ClosedPod
    {
        Namespace = key.Namespace ?? "", Kind = Sandbox.KindName, Name = key.Name, Uid = pod.Uid, Gpus = pod.Gpus, Start = pod.Start, End = end,
    });

    private (string? RuntimeClass, FunctionPlacement? Placement, TimeSpan Timeout, TimeSpan? Idle, List<string> Problems) Validate(Sandbox sandbox) =>
        Validate(sandbox, _options, _catalog);

    /// <summary>
    /// Everything that decides whether a sandbox may run, and how: the admission webhook refuses on the same
    /// problems, and this reconciler marks a sandbox that got past it <c>InvalidSpec</c>.
    /// </summary>
    public static (string? RuntimeClass, FunctionPlacement? Placement, TimeSpan Timeout, TimeSpan? Idle, List<string> Problems) Validate(
        Sandbox sandbox, SandboxOptions options, GpuCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(sandbox);
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (Admission.SpecRules.NameProblem(sandbox.Metadata?.Name) is { } name)
        {
            problems.Add($"metadata.name: {name}");
        }

        var (runtimeClass, runtimeProblem) = SandboxPods.RuntimeClass(sandbox, options);
        if (runtimeProblem is not null)
        {
            problems.Add(runtimeProblem);
        }

        problems.AddRange(SandboxPods.EnvProblems(sandbox.Spec));
        problems.AddRange(SandboxPods.SchedulingProblems(sandbox.Spec, options));
        problems.AddRange(SandboxEgress.Problems(sandbox.Spec.Network.AllowCidrs, options));
        if (SandboxPods.WorkspaceProblem(sandbox.Spec.WorkspaceSize, options) is { } workspace)
        {
            problems.Add(workspace);
        }

        FunctionPlacement? placement = null;
        if (sandbox.Spec.Gpu is { Count: > 0 } gpu)
        {
            var (p, gpuProblems) = FunctionPlacement.Resolve(gpu, catalog);
            placement = p;
            problems.AddRange(gpuProblems);
        }

        var timeout = options.MaxTimeout;
        if (!DurationString.TryParse(sandbox.Spec.Timeout, out var asked) || asked <= TimeSpan.Zero)
        {
            problems.Add($"timeout '{sandbox.Spec.Timeout}' is not a positive duration");
        }
        else if (asked < timeout)
        {
            timeout = asked;
        }

        TimeSpan? idle = null;
        if (sandbox.Spec.IdleTimeout is { } idleText)
        {
            if (DurationString.TryParse(idleText, out var i) && i > TimeSpan.Zero)
            {
                idle = i;
            }
            else
            {
                problems.Add($"idleTimeout '{idleText}' is not a positive duration");
            }
        }

        return (runtimeClass, placement, timeout, idle, problems);
    }

    /// <summary>Why the sandbox ends now, if it does.</summary>
    private static (string Reason, string Message)? Ending(Sandbox sandbox, V1Pod? pod, SandboxStatus? previous, DateTime now, DateTime expiresAt,
        TimeSpan? idle, DateTime lastActivity, bool terminateRequested)
    {
        if (terminateRequested || sandbox.Metadata.Annotations?.ContainsKey(SandboxAnnotations.TerminateRequested) == true)
        {
            return (SandboxConditions.Reasons.Terminated, "terminated on request");
        }

        if (now >= expiresAt)
        {
            return (SandboxConditions.Reasons.Expired, $"timeout reached at {expiresAt:O}");
        }

        if (idle is { } i && now >= lastActivity + i)
        {
            return (SandboxConditions.Reasons.IdleTimeout, $"no activity for {i.TotalSeconds:0} s (last at {lastActivity:O})");
        }

        switch (pod?.Status?.Phase)
        {
            case "Failed":
                return (SandboxConditions.Reasons.PodFailed, $"the sandbox pod failed: {Termination(pod)}");
            case "Succeeded":
                return (SandboxConditions.Reasons.Completed, "the sandbox's command exited with code 0");
        }

        if (pod is null && previous?.StartTime is not null)
        {
            return (SandboxConditions.Reasons.PodLost, "the sandbox pod was deleted outside the operator; it is not recreated");
        }

        return null;
    }

    private static string Termination(V1Pod pod)
    {
        var terminated = pod.Status?.ContainerStatuses?.Select(c => c.State?.Terminated).FirstOrDefault(t => t is not null);
        return terminated is null
            ? pod.Status?.Reason ?? pod.Status?.Message ?? "no reason given"
            : $"exit code {terminated.ExitCode}{(terminated.Reason is { } r ? $" ({r})" : "")}";
    }

    private DateTime LastActivity(Sandbox sandbox, V1Pod? pod)
    {
        // Idle counts from when the agent could first be used: a pod still pulling its image or starting is not idle.
        if (pod is null || !PodReadiness.IsReady(pod))
        {
            return _time.GetUtcNow().UtcDateTime;
        }

        var created = sandbox.Metadata.CreationTimestamp ?? DateTime.MinValue;
        var readyAt = pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready")?.LastTransitionTime ?? pod.Status?.StartTime ?? created;
        var last = readyAt > created ? readyAt : created;
        if (sandbox.Metadata.Annotations?.TryGetValue(SandboxAnnotations.LastActivity, out var text) == true
            && DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at)
            && at.UtcDateTime > last)
        {
            last = at.UtcDateTime;
        }

        return last;
    }

    private static string PendingMessage(V1Pod? pod)
    {
        if (pod?.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled" && c.Status == "False") is { } unscheduled)
        {
            return $"not scheduled: {unscheduled.Message}";
        }

        var waiting = pod?.Status?.ContainerStatuses?.Select(c => c.State?.Waiting).FirstOrDefault(w => w is not null);
        return waiting is not null ? $"{waiting.Reason}: {waiting.Message}" : "the pod is starting";
    }

    private static SandboxStatus Status(Sandbox sandbox, DateTime? startTime, string? podName, DateTime? expiresAt,
        (string Status, string Reason, string Message) ready, (string Status, string Reason, string Message) finished, DateTime now)
    {
        V1Condition Condition(string type, (string Status, string Reason, string Message) c)
        {
            var old = sandbox.Status?.Conditions?.FirstOrDefault(x => x.Type == type);
            return new V1Condition
            {
                Type = type,
                Status = c.Status,
                Reason = c.Reason,
                Message = c.Message,
                ObservedGeneration = sandbox.Metadata.Generation,
                LastTransitionTime = old is not null && old.Status == c.Status ? old.LastTransitionTime : now,
            };
        }

        // kstatus: starting is InProgress, a sandbox that cannot run or whose pod failed is Failed, a running or
        // normally ended one is Current; so Flux (and kstatus-based tools) read its health with no custom check.
        var isStalled = ready.Reason is SandboxConditions.Reasons.InvalidSpec or SandboxConditions.Reasons.PodConflict or SandboxConditions.Reasons.PodRejected
            || (finished.Status == "True" && finished.Reason is SandboxConditions.Reasons.PodFailed or SandboxConditions.Reasons.PodLost);
        var isStarting = !isStalled && ready.Status != "True" && finished.Status != "True";
        var settled = ready.Status == "True" ? ready : finished.Status == "True" ? finished : ready;
        var reconciling = isStarting ? ("True", ready.Reason, ready.Message) : ("False", settled.Reason, settled.Message);
        var stalled = isStalled
            ? ("True", finished.Status == "True" ? finished.Reason : ready.Reason, finished.Status == "True" ? finished.Message : ready.Message)
            : ("False", settled.Reason, settled.Message);

        return new SandboxStatus
        {
            ObservedGeneration = sandbox.Metadata.Generation,
            Conditions =
            [
                Condition(SandboxConditions.Ready, ready), Condition(SandboxConditions.Finished, finished),
                Condition(SandboxConditions.Reconciling, reconciling), Condition(SandboxConditions.Stalled, stalled),
            ],
            PodName = podName,
            StartTime = startTime,
            ExpiresAt = expiresAt,
        };
    }

    /// <summary>
    /// Takes a ready warm pod of the sandbox's shape from a pool in its namespace:
    /// relabels it as the sandbox's (which moves it from the pool's deny-all policy
    /// to the sandbox's) and makes the sandbox its owner. Optimistic: a pod another
    /// sandbox claimed first is skipped. Null when there is none to take.
    /// Labels only point at candidates: a pod is taken only when its controller is a
    /// pool in the operator's cache (by UID) and its spec is that pool's template
    /// (<see cref="Candidates"/>), so a look-alike pod made by anyone else is never claimed.
    /// </summary>
    private async Task<V1Pod?> ClaimAsync(Sandbox sandbox, string? runtimeClass, CancellationToken ct)
    {
        if (SandboxPods.Shape(sandbox, runtimeClass, _options) is not { } shape)
        {
            return null;
        }

        var candidates = Candidates(_pods.ByIndex(SandboxPodIndexes.WarmShape, SandboxPodIndexes.WarmShapeValue(sandbox.Metadata.NamespaceProperty, shape)),
            _pools.List(sandbox.Metadata.NamespaceProperty), shape, _options,
            (pod, why) => _logger.LogInformation("Not claiming pod {Namespace}/{Pod} for a sandbox: {Reason}", pod.Metadata.NamespaceProperty, pod.Metadata.Name, why));
        foreach (var candidate in candidates)
        {
            var patch = new
            {
                metadata = new Dictionary<string, object?>
                {
                    ["resourceVersion"] = candidate.Metadata.ResourceVersion,
                    ["labels"] = new Dictionary<string, string?> { [SandboxAnnotations.SandboxLabel] = sandbox.Metadata.Name, [SandboxPods.PoolLabel] = null },
                    ["annotations"] = new Dictionary<string, string> { ["pilotlight.dev/claimed-from"] = candidate.Metadata.Labels[SandboxPods.PoolLabel] },
                    ["ownerReferences"] = new[] { SandboxPods.Owner(sandbox) },
                },
            };
            try
            {
                var claimed = await _client.CoreV1.PatchNamespacedPodAsync(new V1Patch(KubernetesJson.Serialize(patch), V1Patch.PatchType.MergePatch),
                    candidate.Metadata.Name, candidate.Metadata.NamespaceProperty, cancellationToken: ct).ConfigureAwait(false);
                _claims[sandbox.Metadata.Uid] = (claimed.Metadata.Name, _time.GetUtcNow());
                SandboxClaims.WithLabels(sandbox.Metadata.NamespaceProperty).Inc();
                await _events.NormalAsync(sandbox, "ClaimedWarmPod", $"Claimed warm pod {claimed.Metadata.Name}", ct).ConfigureAwait(false);
                return claimed;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.NotFound)
            {
                // Another sandbox got it first, or it went away: try the next.
            }
        }

        return null;
    }

    /// <summary>
    /// The warm pods a sandbox of <paramref name="shape"/> may claim, oldest first, purely: ready, not being
    /// deleted, labelled with a pool and the shape, and trusted (<see cref="WarmPodTrust.Distrust"/>) against
    /// the pool of that name in <paramref name="pools"/>, whose own shape must be <paramref name="shape"/> too.
    /// A look-alike is passed to <paramref name="refused"/> with the reason, and left alone.
    /// </summary>
    public static IReadOnlyList<V1Pod> Candidates(IEnumerable<V1Pod> pods, IEnumerable<SandboxWarmPool> pools, string shape, SandboxOptions options,
        Action<V1Pod, string>? refused = null)
    {
        ArgumentNullException.ThrowIfNull(pods);
        ArgumentNullException.ThrowIfNull(pools);
        var byName = pools.Where(p => p.Metadata.DeletionTimestamp is null).ToDictionary(p => p.Metadata.Name, StringComparer.Ordinal);
        var trusted = new List<V1Pod>();
        foreach (var pod in pods)
        {
            if (pod.Metadata.Labels?.TryGetValue(SandboxPods.PoolLabel, out var poolName) != true || poolName is null
                || !(pod.Metadata.Labels.TryGetValue(SandboxPods.ShapeLabel, out var s) && s == shape)
                || pod.Metadata.DeletionTimestamp is not null || !PodReadiness.IsReady(pod))
            {
                continue;
            }

            if (!byName.TryGetValue(poolName, out var pool))
            {
                refused?.Invoke(pod, $"no SandboxWarmPool {poolName} is known in its namespace");
                continue;
            }

            var (poolRuntimeClass, problems) = SandboxWarmPoolReconciler.Resolve(pool, options);
            var why = problems.Count > 0 ? "its pool's spec is invalid"
                : SandboxPods.Shape(pool.Spec.Image, pool.Spec.Resources, poolRuntimeClass, pool.Spec.WorkspaceSize, options) != shape ? "its pool has another shape"
                : WarmPodTrust.Distrust(pod, pool, poolRuntimeClass, options);
            if (why is not null)
            {
                refused?.Invoke(pod, why);
                continue;
            }

            trusted.Add(pod);
        }

        return [.. trusted.OrderBy(p => p.Metadata.CreationTimestamp).ThenBy(p => p.Metadata.Name, StringComparer.Ordinal)];
    }

    /// <summary>Creates the sandbox's pod; null, or why the API server refused it (403 or 422: its admission said no).</summary>
    private async Task<string?> CreatePodAsync(Sandbox sandbox, string? runtimeClass, FunctionPlacement? placement, bool warnIfRejected, CancellationToken ct)
    {
        try
        {
            await _client.CoreV1.CreateNamespacedPodAsync(SandboxPods.MakePod(sandbox, runtimeClass, placement, _options),
                sandbox.Metadata.NamespaceProperty, cancellationToken: ct).ConfigureAwait(false);
            await _events.NormalAsync(sandbox, "CreatedPod", $"Created pod {SandboxPods.PodName(sandbox)}", ct).ConfigureAwait(false);
            return null;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            // Already there; the cache will show it.
            return null;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.Forbidden or System.Net.HttpStatusCode.UnprocessableEntity)
        {
            var why = RejectionMessage(e.Response.Content);
            if (!warnIfRejected)
            {
                // Said once, when it began; the condition carries it while it lasts.
                return why;
            }

            await _events.WarningAsync(sandbox, SandboxConditions.Reasons.PodRejected, $"The API server refused pod {SandboxPods.PodName(sandbox)}: {why}", ct)
                .ConfigureAwait(false);
            return why;
        }
    }

    /// <summary>The message of the API server's Status in <paramref name="body"/> (its own words: no secret is in them), bounded.</summary>
    internal static string RejectionMessage(string? body)
    {
        string? message = null;
        try
        {
            using var status = System.Text.Json.JsonDocument.Parse(body ?? "");
            message = status.RootElement.TryGetProperty("message", out var m) ? m.GetString() : null;
        }
        catch (System.Text.Json.JsonException)
        {
        }

        message = string.IsNullOrWhiteSpace(message) ? "no reason given" : message.Trim();
        return message.Length <= 300 ? message : message[..300] + "...";
    }

    private Task EnsurePolicyAsync(Sandbox sandbox, CancellationToken ct) =>
        _policies.EnsureAsync(SandboxPods.MakeNetworkPolicy(sandbox, _options), sandbox, ct);

    private async Task DeletePodAsync(V1Pod? pod, CancellationToken ct)
    {
        if (pod is null || pod.Metadata.DeletionTimestamp is not null)
        {
            return;
        }

        try
        {
            await _client.CoreV1.DeleteNamespacedPodAsync(pod.Metadata.Name, pod.Metadata.NamespaceProperty,
                new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = pod.Metadata.Uid } }, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
        {
        }
    }

    private async Task DeleteSandboxAsync(Sandbox sandbox, CancellationToken ct)
    {
        try
        {
            await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, sandbox.Metadata.NamespaceProperty, "sandboxes",
                sandbox.Metadata.Name, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }
    }

    private async Task WriteStatusAsync(Sandbox sandbox, SandboxStatus status, CancellationToken ct)
    {
        if (sandbox.Status is not null && KubernetesJson.Serialize(sandbox.Status) == KubernetesJson.Serialize(status))
        {
            return;
        }

        try
        {
            await _client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch(KubernetesJson.Serialize(new { status }), V1Patch.PatchType.MergePatch),
                Group.Name, Group.Version, sandbox.Metadata.NamespaceProperty, "sandboxes", sandbox.Metadata.Name, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            _logger.LogDebug("Sandbox {Namespace}/{Name} went away before its status was written", sandbox.Metadata.NamespaceProperty, sandbox.Metadata.Name);
        }
    }
}
