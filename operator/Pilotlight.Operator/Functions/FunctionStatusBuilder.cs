using k8s.Models;
using Pilotlight.Api.V1Alpha1;
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
        var function = seen.Function;
        var previous = function.Status;
        var ready = seen.Pods.Count(IsReady);
        var current = seen.Pods.Where(p => Value(p.Metadata.Labels, FunctionLabels.TemplateHash) == seen.CurrentHash).ToList();
        var (readyStatus, reason, message) = Assess(seen, ready, current);
        var generation = function.Metadata.Generation;

        var rollingOut = seen.Problems.Count == 0 && (current.Count(IsReady) < seen.DesiredReplicas || current.Count != seen.Pods.Count);
        var stalled = reason is Reasons.InvalidSpec or Reasons.Unschedulable or Reasons.ImagePullBackOff or Reasons.CrashLoopBackOff;
        var conditions = new List<V1Condition>
        {
            Condition(previous, Ready, readyStatus ? "True" : "False", reason, message, generation, now),
            Condition(previous, Reconciling, rollingOut && !stalled ? "True" : "False",
                rollingOut && !stalled ? reason : Reasons.PodsReady,
                rollingOut && !stalled ? message : "nothing to do", generation, now),
            Condition(previous, Stalled, stalled ? "True" : "False", stalled ? reason : Reasons.PodsReady,
                stalled ? message : "making progress", generation, now),
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

    /// <summary>True when the statuses differ in anything but order-insensitive noise, so a write is needed.</summary>
    public static bool Differs(GpuFunctionStatus? a, GpuFunctionStatus? b) =>
        a is null || b is null ? a is not null || b is not null : k8s.KubernetesJson.Serialize(a) != k8s.KubernetesJson.Serialize(b);

    /// <summary>True when the pod's Ready condition is True.</summary>
    public static bool IsReady(V1Pod pod) =>
        pod.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true;

    private static (bool Ready, string Reason, string Message) Assess(FunctionObservation seen, int ready, IReadOnlyList<V1Pod> current)
    {
        if (seen.Problems.Count > 0)
        {
            return (false, Reasons.InvalidSpec, string.Join("; ", seen.Problems));
        }

        foreach (var pod in seen.Pods)
        {
            var scheduled = pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
            if (scheduled is { Status: "False", Reason: "Unschedulable" })
            {
                return (false, Reasons.Unschedulable, scheduled.Message ?? "no node fits the pod");
            }
        }

        foreach (var waiting in seen.Pods.SelectMany(p => p.Status?.ContainerStatuses ?? []).Select(s => s.State?.Waiting).OfType<V1ContainerStateWaiting>())
        {
            if (PullFailures.Contains(waiting.Reason))
            {
                return (false, Reasons.ImagePullBackOff, waiting.Message ?? waiting.Reason);
            }

            if (waiting.Reason == "CrashLoopBackOff")
            {
                return (false, Reasons.CrashLoopBackOff, waiting.Message ?? "the container keeps exiting");
            }
        }

        if (seen.DesiredReplicas == 0 && seen.Pods.Count == 0)
        {
            return (true, Reasons.ScaledToZero, "no replicas; the first request wakes the function");
        }

        var currentReady = current.Count(IsReady);
        if (currentReady >= seen.DesiredReplicas && current.Count == seen.Pods.Count)
        {
            return (true, Reasons.PodsReady, $"{ready}/{seen.DesiredReplicas} replicas ready");
        }

        if (current.Count != seen.Pods.Count && ready >= seen.DesiredReplicas)
        {
            // Old pods still serve while new ones start: ready, but not done.
            return (true, Reasons.RollingOut, $"replacing {seen.Pods.Count - current.Count} pods of an older spec");
        }

        return (false, Reasons.PodsStarting, $"{ready}/{seen.DesiredReplicas} replicas ready");
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
            .Select(t => t.ToWireName())
            .Order(StringComparer.Ordinal)
            .ToList();
        return landed.Count > 0 ? string.Join(",", landed) : seen.Function.Spec.Gpu.Type.ToWireName();
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
