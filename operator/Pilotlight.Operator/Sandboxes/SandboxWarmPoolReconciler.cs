using k8s;
using k8s.Autorest;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// Keeps a SandboxWarmPool's ready pods at <c>spec.replicas</c>: pods of the
/// pool's shape, fenced by a deny-all NetworkPolicy until a Sandbox claims one
/// (and takes it out of the pool), replaced when claimed, failed or reshaped.
/// <paramref name="pods"/> must have the <see cref="SandboxPodIndexes"/>.
/// </summary>
public sealed class SandboxWarmPoolReconciler(IKubernetes client, Informer<V1Pod> pods, SandboxPolicies policies, SandboxOptions options, EventRecorder events,
    TimeProvider time)
    : IReconciler<SandboxWarmPool>
{
    private readonly Lock _gate = new();

    /// <summary>What the admission webhook refuses a pool for, and this reconciler marks it InvalidSpec for.</summary>
    public static IReadOnlyList<string> Validate(SandboxWarmPool pool, SandboxOptions options) => Resolve(pool, options).Problems;

    /// <summary>The runtime class the pool's pods get, and what is wrong with the pool's spec (nothing: empty).</summary>
    public static (string? RuntimeClass, IReadOnlyList<string> Problems) Resolve(SandboxWarmPool pool, SandboxOptions options)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var problems = new List<string>();
        if (Admission.SpecRules.NameProblem(pool.Metadata?.Name) is { } name)
        {
            problems.Add($"metadata.name: {name}");
        }

        var stand = new Sandbox { Metadata = new V1ObjectMeta { Name = pool.Metadata?.Name }, Spec = new SandboxSpec { Image = pool.Spec.Image, RuntimeClassName = pool.Spec.RuntimeClassName } };
        var (runtimeClass, problem) = SandboxPods.RuntimeClass(stand, options);
        if (problem is not null)
        {
            problems.Add(problem);
        }

        if (SandboxPods.WorkspaceProblem(pool.Spec.WorkspaceSize, options) is { } workspace)
        {
            problems.Add(workspace);
        }

        return (runtimeClass, problems);
    }

    /// <inheritdoc />
    public async Task<ReconcileResult> ReconcileAsync(SandboxWarmPool pool, CancellationToken cancellationToken)
    {
        if (pool.Metadata.DeletionTimestamp is not null)
        {
            return ReconcileResult.Done;
        }

        var ns = pool.Metadata.NamespaceProperty;
        var (runtimeClass, problems) = Resolve(pool, options);
        var problem = problems.Count > 0 ? string.Join("; ", problems) : null;
        var members = pods.OwnedBy(ns, pool.Metadata.Uid)
            .Where(p => p.Metadata.Labels?.TryGetValue(SandboxPods.PoolLabel, out var name) == true && name == pool.Metadata.Name)
            .ToList();

        var live = members.Where(p => p.Metadata.DeletionTimestamp is null).ToList();
        (string Status, string Reason, string Message) ready;
        if (problem is not null)
        {
            await DeleteAsync(live, cancellationToken).ConfigureAwait(false);
            ready = ("False", SandboxConditions.Reasons.InvalidSpec, problem);
            live = [];
        }
        else
        {
            await EnsurePolicyAsync(pool, cancellationToken).ConfigureAwait(false);
            var shape = SandboxPods.Shape(pool.Spec.Image, pool.Spec.Resources, runtimeClass, pool.Spec.WorkspaceSize, options);
            var stale = live.Where(p => p.Status?.Phase is "Failed" or "Succeeded"
                || !(p.Metadata.Labels!.TryGetValue(SandboxPods.ShapeLabel, out var s) && s == shape)).ToList();
            // A pod naming the pool as its controller but not made from its template (someone else's, or edited):
            // not counted as warm, never claimed (the Sandbox reconciler checks the same), and removed.
            var foreign = live.Except(stale).Select(p => (Pod: p, Why: WarmPodTrust.Distrust(p, pool, runtimeClass, options)))
                .Where(x => x.Why is not null).ToList();
            foreach (var (pod, why) in foreign)
            {
                await events.WarningAsync(pool, "ForeignPod", $"Removing pod {pod.Metadata.Name}: {why}", cancellationToken).ConfigureAwait(false);
            }

            stale.AddRange(foreign.Select(x => x.Pod));
            live = [.. live.Except(stale)];
            var surplus = live.OrderBy(PodReadiness.IsReady).ThenByDescending(p => p.Metadata.CreationTimestamp)
                .Take(Math.Max(0, live.Count - pool.Spec.Replicas)).ToList();
            await DeleteAsync([.. stale, .. surplus], cancellationToken).ConfigureAwait(false);
            live = [.. live.Except(surplus)];

            var missing = pool.Spec.Replicas - live.Count;
            if (missing > 0 && !Pending(pool))
            {
                for (var i = 0; i < missing; i++)
                {
                    await client.CoreV1.CreateNamespacedPodAsync(SandboxPods.MakePoolPod(pool, runtimeClass, options), ns, cancellationToken: cancellationToken)
                        .ConfigureAwait(false);
                }

                Expect(pool, live.Count + missing);
                await events.NormalAsync(pool, "CreatedPods", $"Created {missing} warm sandbox pod(s)", cancellationToken).ConfigureAwait(false);
            }

            var readyCount = live.Count(PodReadiness.IsReady);
            ready = readyCount >= pool.Spec.Replicas
                ? ("True", "PoolReady", $"{readyCount}/{pool.Spec.Replicas} warm pods ready")
                : ("False", "PoolFilling", $"{readyCount}/{pool.Spec.Replicas} warm pods ready");
        }

        var old = pool.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
        var now = time.GetUtcNow().UtcDateTime;
        var status = new SandboxWarmPoolStatus
        {
            ObservedGeneration = pool.Metadata.Generation,
            Conditions =
            [
                new V1Condition
                {
                    Type = "Ready", Status = ready.Status, Reason = ready.Reason, Message = ready.Message, ObservedGeneration = pool.Metadata.Generation,
                    LastTransitionTime = old is not null && old.Status == ready.Status ? old.LastTransitionTime : now,
                },
            ],
            Replicas = live.Count,
            ReadyReplicas = live.Count(PodReadiness.IsReady),
        };
        if (pool.Status is null || KubernetesJson.Serialize(pool.Status) != KubernetesJson.Serialize(status))
        {
            try
            {
                await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch(KubernetesJson.Serialize(new { status }), V1Patch.PatchType.MergePatch),
                    Group.Name, Group.Version, ns, "sandboxwarmpools", pool.Metadata.Name, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
            }
        }

        return Pending(pool) ? ReconcileResult.After(TimeSpan.FromSeconds(1)) : ReconcileResult.Done;
    }

    /// <inheritdoc />
    public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _expected.Remove($"{key.Namespace}/{key.Name}");
        }

        return Task.CompletedTask;
    }

    private readonly Dictionary<string, (int Count, DateTimeOffset At)> _expected = [];

    /// <summary>True while pods this reconciler created are not yet in the cache (acting on it would create them twice).</summary>
    private bool Pending(SandboxWarmPool pool)
    {
        var key = $"{pool.Metadata.NamespaceProperty}/{pool.Metadata.Name}";
        lock (_gate)
        {
            if (!_expected.TryGetValue(key, out var expected))
            {
                return false;
            }

            var seen = pods.OwnedBy(pool.Metadata.NamespaceProperty, pool.Metadata.Uid).Count(p => p.Metadata.DeletionTimestamp is null);
            if (seen >= expected.Count || time.GetUtcNow() - expected.At > TimeSpan.FromSeconds(30))
            {
                _expected.Remove(key);
                return false;
            }

            return true;
        }
    }

    private void Expect(SandboxWarmPool pool, int count)
    {
        lock (_gate)
        {
            _expected[$"{pool.Metadata.NamespaceProperty}/{pool.Metadata.Name}"] = (count, time.GetUtcNow());
        }
    }

    private Task EnsurePolicyAsync(SandboxWarmPool pool, CancellationToken ct) =>
        policies.EnsureAsync(SandboxPods.MakePoolPolicy(pool), pool, ct);

    private async Task DeleteAsync(IEnumerable<V1Pod> doomed, CancellationToken ct)
    {
        foreach (var pod in doomed)
        {
            try
            {
                await client.CoreV1.DeleteNamespacedPodAsync(pod.Metadata.Name, pod.Metadata.NamespaceProperty,
                    new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = pod.Metadata.Uid } }, cancellationToken: ct).ConfigureAwait(false);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
            {
            }
        }
    }
}
