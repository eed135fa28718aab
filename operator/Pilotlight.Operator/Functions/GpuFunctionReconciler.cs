using System.Collections.Concurrent;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Api.V1Alpha1;
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
    private readonly ConcurrentDictionary<string, DateTime> _deletedAt = new();
    private readonly ConcurrentDictionary<ObjectKey, IReadOnlyList<BilledPod>> _openPods = new();
    private readonly ConcurrentDictionary<string, (ObjectKey Key, BilledPod Pod)> _orphans = new();

    private static readonly Prometheus.Counter GpuSeconds = Prometheus.Metrics.CreateCounter(
        "pilotlight_function_gpu_seconds_total", "GPU-seconds billed per function by the operator's ledger (from pod lifetimes).",
        "namespace", "function");

    /// <summary>How often usage in status is refreshed while a function has pods.</summary>
    public static readonly TimeSpan UsageRefresh = TimeSpan.FromSeconds(30);

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
        pods.AddHandler(e =>
        {
            if (e.Type == k8s.WatchEventType.Deleted && e.Object.Metadata.Uid is { } uid)
            {
                // Gone now: a graceful deletion's deletionTimestamp is a deadline, not when the GPUs were freed.
                var now = _time.GetUtcNow().UtcDateTime;
                _deletedAt[uid] = now;
                if (_orphans.TryRemove(uid, out var orphan))
                {
                    // A pod of a deleted function: no status is left to close it in, so the journal gets it here.
                    CloseInJournal(orphan.Key, orphan.Pod, now);
                }

                foreach (var old in _deletedAt.Where(kv => now - kv.Value > TimeSpan.FromMinutes(10)).Select(kv => kv.Key).ToList())
                {
                    _deletedAt.TryRemove(old, out _);
                }
            }
        });
    }

    /// <summary>Replicas the function should have now: the autoscaler's decision, or minReplicas without one.</summary>
    public Func<GpuFunction, int> DesiredReplicas { get; init; } = f => f.Spec.Scaling.MinReplicas;

    /// <summary>In-flight requests per pod name, so scale-down removes idle pods first.</summary>
    public Func<ObjectKey, IReadOnlyDictionary<string, int>> PodLoad { get; init; } = _ => new Dictionary<string, int>();

    /// <summary>Where closed billing intervals go, for usage over a time window.</summary>
    public Usage.UsageJournal Journal { get; init; } = new();

    /// <summary>When the function last had a request, for status.</summary>
    public Func<ObjectKey, DateTimeOffset?> LastRequest { get; init; } = _ => null;

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
        var (placement, problems) = FunctionPlacement.Resolve(function.Spec.Gpu, _catalog);
        var desired = problems.Count == 0 ? DesiredReplicas(function) : 0;
        string? hash = null;

        if (placement is not null && problems.Count == 0)
        {
            await EnsureServiceAsync(function, cancellationToken).ConfigureAwait(false);
            var template = FunctionPods.MakePod(function, placement, _podOptions);
            hash = template.Metadata.Labels[FunctionLabels.TemplateHash];
            if (Settled(key, pods))
            {
                var load = PodLoad(key);
                var plan = FunctionRollout.Plan(pods, desired, hash, p => load.GetValueOrDefault(p.Metadata.Name));
                await ApplyPlanAsync(function, key, template, plan, cancellationToken).ConfigureAwait(false);
            }
        }

        // Status from what was observed at the start of this reconcile; the
        // pod events our changes cause bring the next one.
        var live = pods.Where(p => p.Metadata.DeletionTimestamp is null).ToList();
        var status = FunctionStatusBuilder.Build(
            new FunctionObservation(function, live, desired, hash, problems, _catalog, NodeProducts(live)),
            _time.GetUtcNow().UtcDateTime, _endpointBase);
        if (LastRequest(key) is { } last)
        {
            status = status with { LastRequestTime = last.UtcDateTime };
        }

        var usage = Usage.UsageLedger.Update(function.Status?.Usage, pods, _deletedAt, _time.GetUtcNow().UtcDateTime,
            (pod, end) => CloseInJournal(key, pod, end));
        status = status with { Usage = usage };
        _openPods[key] = usage.OpenPods ?? [];
        GpuSeconds.WithLabels(key.Namespace ?? "", key.Name).IncTo(usage.GpuSeconds);

        await WriteStatusAsync(function, status, cancellationToken).ConfigureAwait(false);
        return _expectations.ContainsKey(key) ? ReconcileResult.After(TimeSpan.FromSeconds(5))
            : usage.OpenPods is { Count: > 0 } ? ReconcileResult.After(UsageRefresh)
            : ReconcileResult.Done;
    }

    /// <inheritdoc />
    public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        _expectations.TryRemove(key, out _);
        GpuSeconds.RemoveLabelled(key.Namespace ?? "", key.Name);

        // The function's pods outlive it until the garbage collector removes them; each is
        // billed to its own deletion (or now, if that was already seen or it is gone already).
        if (_openPods.TryRemove(key, out var open))
        {
            var present = _pods.List().Select(p => p.Metadata.Uid).ToHashSet();
            var now = _time.GetUtcNow().UtcDateTime;
            foreach (var pod in open)
            {
                if (present.Contains(pod.Uid))
                {
                    _orphans[pod.Uid] = (key, pod);
                }
                else
                {
                    CloseInJournal(key, pod, _deletedAt.TryGetValue(pod.Uid, out var seen) ? seen : now);
                }
            }
        }

        return Task.CompletedTask;
    }

    private void CloseInJournal(ObjectKey key, BilledPod pod, DateTime end) => Journal.Record(new Usage.ClosedPod
    {
        Namespace = key.Namespace ?? "", Function = key.Name, Uid = pod.Uid, Gpus = pod.Gpus, Start = pod.Start, End = end,
    });

    private List<V1Pod> OwnedPods(GpuFunction function) =>
        _pods.List(function.Metadata.NamespaceProperty)
            .Where(p => p.Metadata.OwnerReferences?.Any(o => o.Controller == true && o.Uid == function.Metadata.Uid) == true)
            .ToList();

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
            && expected.Deleted.All(n => !names.TryGetValue(n, out var p) || p.Metadata.DeletionTimestamp is not null);
        if (settled || _time.GetUtcNow() - expected.At > ExpectationTimeout)
        {
            _expectations.TryRemove(key, out _);
            return true;
        }

        return false;
    }

    private async Task ApplyPlanAsync(GpuFunction function, ObjectKey key, V1Pod template, RolloutPlan plan, CancellationToken ct)
    {
        if (plan.IsSteady)
        {
            return;
        }

        var created = new List<string>();
        var deleted = new List<string>();
        try
        {
            for (var i = 0; i < plan.Create; i++)
            {
                var pod = await _client.CoreV1.CreateNamespacedPodAsync(template, function.Metadata.NamespaceProperty, cancellationToken: ct).ConfigureAwait(false);
                created.Add(pod.Metadata.Name);
            }

            foreach (var pod in plan.Delete)
            {
                try
                {
                    await _client.CoreV1.DeleteNamespacedPodAsync(pod.Metadata.Name, pod.Metadata.NamespaceProperty,
                        new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = pod.Metadata.Uid } }, cancellationToken: ct).ConfigureAwait(false);
                }
                catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
                {
                }

                deleted.Add(pod.Metadata.Name);
            }
        }
        finally
        {
            if (created.Count + deleted.Count > 0)
            {
                _expectations[key] = new Expectation(created, deleted, _time.GetUtcNow());
            }
        }

        if (created.Count > 0)
        {
            await _events.NormalAsync(function, "CreatedPods", $"Created {created.Count} pod(s): {string.Join(", ", created)}", ct).ConfigureAwait(false);
        }

        if (deleted.Count > 0)
        {
            await _events.NormalAsync(function, "DeletedPods", $"Deleted {deleted.Count} pod(s): {string.Join(", ", deleted)}", ct).ConfigureAwait(false);
        }
    }

    private async Task EnsureServiceAsync(GpuFunction function, CancellationToken ct)
    {
        var want = FunctionPods.MakeService(function, _podOptions);
        var ns = function.Metadata.NamespaceProperty;
        V1Service? have;
        try
        {
            have = await _client.CoreV1.ReadNamespacedServiceAsync(want.Metadata.Name, ns, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            have = null;
        }

        if (have is null)
        {
            await _client.CoreV1.CreateNamespacedServiceAsync(want, ns, cancellationToken: ct).ConfigureAwait(false);
            return;
        }

        if (have.Metadata.OwnerReferences?.Any(o => o.Uid == function.Metadata.Uid) != true)
        {
            throw new InvalidOperationException($"Service {ns}/{want.Metadata.Name} exists and is not owned by this function");
        }

        if (KubernetesJson.Serialize(have.Spec.Selector) != KubernetesJson.Serialize(want.Spec.Selector)
            || have.Spec.Ports?.FirstOrDefault()?.TargetPort?.Value != want.Spec.Ports[0].TargetPort.Value)
        {
            var patch = new { spec = new { selector = want.Spec.Selector, ports = want.Spec.Ports } };
            await _client.CoreV1.PatchNamespacedServiceAsync(new V1Patch(KubernetesJson.Serialize(patch), V1Patch.PatchType.MergePatch),
                want.Metadata.Name, ns, cancellationToken: ct).ConfigureAwait(false);
        }
    }

    private async Task WriteStatusAsync(GpuFunction function, GpuFunctionStatus status, CancellationToken ct)
    {
        if (!FunctionStatusBuilder.Differs(function.Status, status))
        {
            return;
        }

        var body = KubernetesJson.Serialize(new { status });
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
        if (before?.Status != after.Status || before?.Reason != after.Reason)
        {
            var warning = after.Reason is FunctionConditions.Reasons.InvalidSpec or FunctionConditions.Reasons.Unschedulable
                or FunctionConditions.Reasons.ImagePullBackOff or FunctionConditions.Reasons.CrashLoopBackOff;
            await (warning
                ? _events.WarningAsync(function, after.Reason, after.Message, ct)
                : _events.NormalAsync(function, after.Reason, after.Message, ct)).ConfigureAwait(false);
        }
    }

    private sealed record Expectation(IReadOnlyList<string> Created, IReadOnlyList<string> Deleted, DateTimeOffset At);
}
