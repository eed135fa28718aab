using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using static Pilotlight.Operator.Functions.FunctionConditions;

namespace Pilotlight.Operator.Functions;

/// <summary>What the reconciler saw, from which the status is computed purely.</summary>
/// <param name="Function">The function as last read.</param>
/// <param name="Pods">Its pods that are not being deleted.</param>
/// <param name="DesiredReplicas">Replicas the function should have now.</param>
/// <param name="CurrentHash">Template hash of the current spec.</param>
/// <param name="Problems">Why the spec cannot be served; empty when it can.</param>
/// <param name="Catalog">The GPU catalog, to name the GPU type pods run on.</param>
/// <param name="NodeProducts">GPU product label of the nodes the pods are bound to, by node name.</param>
public sealed record FunctionObservation(
    GpuFunction Function,
    IReadOnlyList<V1Pod> Pods,
    int DesiredReplicas,
    string? CurrentHash,
    IReadOnlyList<string> Problems,
    Gpu.GpuCatalog Catalog,
    IReadOnlyDictionary<string, string> NodeProducts);

/// <summary>Computes a function's status from an observation. Pure; time is passed in.</summary>
public static class FunctionStatusBuilder
{
    private static readonly string[] PullFailures = ["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"];

    /// <summary>The status the function should have, keeping transition times of unchanged conditions.</summary>
    public static GpuFunctionStatus Build(FunctionObservation seen, DateTime now, string endpointBase)
    {
        ArgumentNullException.ThrowIfNull(seen);
        var function = seen.Function;
        var previous = function.Status;
        var ready = seen.Pods.Count(PodReadiness.IsReady);
        var a = Assess(seen, ready, now);
        var generation = function.Metadata.Generation;

        var conditions = new List<V1Condition>
        {
            Condition(previous, Ready, a.Ready ? "True" : "False", a.Reason, a.Message, generation, now),
            Condition(previous, Reconciling, a.Reconciling is not null && !a.Stalled ? "True" : "False",
                a.Reconciling is not null && !a.Stalled ? a.Reconciling.Value.Reason : Reasons.PodsReady,
                a.Reconciling is not null && !a.Stalled ? a.Reconciling.Value.Message : "nothing to do", generation, now),
            Condition(previous, Stalled, a.Stalled ? "True" : "False", a.Stalled ? a.Reason : Reasons.PodsReady,
                a.Stalled ? a.Message : "making progress", generation, now),
            Condition(previous, ScaledUp, a.ScaledUp ? "True" : "False", a.ScaleReason, a.ScaleMessage, generation, now),
        };

        return (previous ?? new GpuFunctionStatus()) with
        {
            ObservedGeneration = generation,
            Conditions = conditions,
            Replicas = seen.Pods.Count,
            ReadyReplicas = ready,
            DesiredReplicas = seen.DesiredReplicas,
            Selector = FunctionPods.Selector(function),
            Gpu = ResolvedGpu(seen),
            Endpoint = $"{endpointBase.TrimEnd('/')}/{function.Metadata.NamespaceProperty}/{function.Metadata.Name}",
        };
    }

    /// <summary>
    /// The next moment a replica of the current spec that is not ready yet runs out of <c>startupTimeout</c>
    /// (after <paramref name="now"/>), when the status may turn Stalled with no pod event to say so; null when none will.
    /// </summary>
    public static DateTime? NextStartupDeadline(FunctionObservation seen, DateTime now) =>
        StartingPods(seen)
            .Select(p => p.Deadline)
            .Where(d => d > now)
            .Order()
            .Cast<DateTime?>()
            .FirstOrDefault();

    /// <summary>True when the statuses differ in anything but order-insensitive noise, so a write is needed.</summary>
    public static bool Differs(GpuFunctionStatus? a, GpuFunctionStatus? b) =>
        a is null || b is null ? a is not null || b is not null : k8s.KubernetesJson.Serialize(a) != k8s.KubernetesJson.Serialize(b);

    /// <summary>What the conditions say, before transition times.</summary>
    private readonly record struct Assessment(
        bool Ready, string Reason, string Message, bool Stalled,
        bool ScaledUp, string ScaleReason, string ScaleMessage,
        (string Reason, string Message)? Reconciling);

    private static Assessment Assess(FunctionObservation seen, int ready, DateTime now)
    {
        if (seen.Problems.Count > 0)
        {
            var text = string.Join("; ", seen.Problems);
            return new(false, Reasons.InvalidSpec, text, true, false, Reasons.InvalidSpec, text, null);
        }

        var current = seen.Pods.Where(p => Value(p.Metadata.Labels, FunctionLabels.TemplateHash) == seen.CurrentHash).ToList();
        var currentReady = current.Count(PodReadiness.IsReady);
        var oldPods = seen.Pods.Count - current.Count;
        var counts = $"{ready}/{seen.DesiredReplicas} replicas ready";

        if (seen.DesiredReplicas == 0 && seen.Pods.Count == 0)
        {
            const string zero = "no replicas; the first request wakes the function";
            return new(true, Reasons.ScaledToZero, zero, false, true, Reasons.ScaledToZero, zero, null);
        }

        // Why replicas that are wanted are not ready: the pods' own reason first, then an overdue start.
        var blocked = PodProblem(seen.Pods) ?? StartupOverdue(seen, now);
        var (scaleReason, scaleMessage) = blocked ?? (Reasons.PodsStarting, counts);
        var scaledUp = ready >= seen.DesiredReplicas;
        if (scaledUp)
        {
            (scaleReason, scaleMessage) = (Reasons.PodsReady, counts);
        }

        // Work left: replicas of the current spec to start, or pods of an older one to replace.
        (string, string)? reconciling = currentReady < seen.DesiredReplicas || oldPods > 0
            ? oldPods > 0 && ready >= seen.DesiredReplicas
                ? (Reasons.RollingOut, $"replacing {oldPods} pods of an older spec")
                : (scaleReason == Reasons.PodsReady ? Reasons.PodsStarting : scaleReason, scaledUp ? counts : scaleMessage)
            : null;

        if (ready > 0 || seen.DesiredReplicas == 0)
        {
            // Serving: whatever keeps extra replicas out is ScaledUp's business, never Stalled.
            var (reason, message) = oldPods > 0 && ready >= seen.DesiredReplicas
                ? (Reasons.RollingOut, $"replacing {oldPods} pods of an older spec")
                : (Reasons.PodsReady, counts);
            return new(true, reason, message, false, scaledUp, scaleReason, scaleMessage, reconciling);
        }

        // Nothing serves: stalled when the pods cannot start, else still starting.
        if (blocked is { } why)
        {
            return new(false, why.Reason, why.Message, true, false, why.Reason, why.Message, reconciling);
        }

        return new(false, Reasons.PodsStarting, counts, false, false, Reasons.PodsStarting, counts, reconciling);
    }

    /// <summary>A pod's own reason for not running: unschedulable, image not pullable, crash looping.</summary>
    private static (string Reason, string Message)? PodProblem(IReadOnlyList<V1Pod> pods)
    {
        foreach (var pod in pods)
        {
            var scheduled = pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
            if (scheduled is { Status: "False", Reason: "Unschedulable" })
            {
                return (Reasons.Unschedulable, scheduled.Message ?? "no node fits the pod");
            }
        }

        foreach (var waiting in pods.SelectMany(p => p.Status?.ContainerStatuses ?? []).Select(s => s.State?.Waiting).OfType<V1ContainerStateWaiting>())
        {
            if (PullFailures.Contains(waiting.Reason))
            {
                return (Reasons.ImagePullBackOff, waiting.Message ?? waiting.Reason);
            }

            if (waiting.Reason == "CrashLoopBackOff")
            {
                return (Reasons.CrashLoopBackOff, waiting.Message ?? "the container keeps exiting");
            }
        }

        return null;
    }

    /// <summary>The first replica of the current spec still not ready past its <c>startupTimeout</c>, described.</summary>
    private static (string Reason, string Message)? StartupOverdue(FunctionObservation seen, DateTime now)
    {
        var overdue = StartingPods(seen).Where(p => p.Deadline <= now).OrderBy(p => p.Deadline).FirstOrDefault();
        if (overdue.Pod is null)
        {
            return null;
        }

        var pod = overdue.Pod;
        var function = pod.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == FunctionPods.FunctionContainer);
        var restarts = function?.RestartCount ?? 0;
        var last = function?.LastState?.Terminated?.Reason;
        var notReady = pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready")?.Message;
        var detail = string.Join("; ", new[]
        {
            restarts > 0 ? $"its function container restarted {restarts} time(s){(last is null ? "" : $", last {last}")}" : null,
            string.IsNullOrEmpty(notReady) ? null : notReady,
        }.OfType<string>());
        return (Reasons.StartupTimeout,
            $"pod {pod.Metadata.Name} did not become ready within startupTimeout {seen.Function.Spec.StartupTimeout}{(detail.Length > 0 ? $" ({detail})" : "")}");
    }

    /// <summary>Replicas of the current spec that are not ready, with the moment their startupTimeout runs out (from creation).</summary>
    private static IEnumerable<(V1Pod Pod, DateTime Deadline)> StartingPods(FunctionObservation seen)
    {
        if (!Pilotlight.Api.Schema.DurationString.TryParse(seen.Function.Spec.StartupTimeout, out var budget))
        {
            return [];
        }

        return seen.Pods
            .Where(p => Value(p.Metadata.Labels, FunctionLabels.TemplateHash) == seen.CurrentHash && !PodReadiness.IsReady(p))
            .Where(p => p.Metadata.CreationTimestamp is not null)
            .Select(p => (p, DateTime.SpecifyKind(p.Metadata.CreationTimestamp!.Value, DateTimeKind.Utc) + budget));
    }

    private static string? ResolvedGpu(FunctionObservation seen)
    {
        if (seen.Function.Spec.Gpu is null)
        {
            return null;
        }

        // Report the type pods actually landed on; before any did, the requested one.
        var landed = seen.Pods
            .Select(p => p.Spec?.NodeName is { } node ? seen.NodeProducts.GetValueOrDefault(node) : null)
            .OfType<string>()
            .Select(seen.Catalog.TypeOfProduct)
            .OfType<GpuType>()
            .Distinct()
            .Select(t => t.Name)
            .Order(StringComparer.Ordinal)
            .ToList();
        return landed.Count > 0 ? string.Join(",", landed) : (seen.Catalog.Find(seen.Function.Spec.Gpu.Type) ?? seen.Function.Spec.Gpu.Type).Name;
    }

    private static string? Value(IDictionary<string, string>? map, string key) =>
        map is not null && map.TryGetValue(key, out var value) ? value : null;

    internal static V1Condition Condition(GpuFunctionStatus? previous, string type, string status, string reason, string message, long? generation, DateTime now)
    {
        var old = previous?.Conditions?.FirstOrDefault(c => c.Type == type);
        return new V1Condition
        {
            Type = type,
            Status = status,
            Reason = reason,
            Message = message,
            ObservedGeneration = generation,
            LastTransitionTime = old is not null && old.Status == status ? old.LastTransitionTime : now,
        };
    }
}
