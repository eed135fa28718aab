using System.Text.Json.Nodes;
using k8s.Models;

namespace Pilotlight.Client.Deploy;

/// <summary>Where a function's rollout stands, in the order a replica goes through.</summary>
public enum DeployStage
{
    /// <summary>The operator has not yet observed the applied spec (no status, or an older observedGeneration).</summary>
    WaitingForOperator,

    /// <summary>Replicas are wanted but no pod exists yet.</summary>
    Requested,

    /// <summary>A pod waits for the scheduler (or cannot be placed: the scheduler's reason is the detail).</summary>
    Scheduling,

    /// <summary>A pod is placed; its image is being pulled and its containers created.</summary>
    PullingImage,

    /// <summary>Containers run; the model is loading (not ready yet).</summary>
    Starting,

    /// <summary>Done: the function is Ready with replicas serving.</summary>
    Ready,

    /// <summary>Done: the function is Ready with no replica wanted; the first request wakes it.</summary>
    ScaledToZero,

    /// <summary>The operator says it cannot progress without someone acting (Stalled=True).</summary>
    Stalled,
}

/// <summary>What the GpuFunction's status says, read from its JSON (the fields the progress needs).</summary>
public sealed record FunctionSnapshot(
    long Generation,
    long? ObservedGeneration,
    int Replicas,
    int ReadyReplicas,
    int DesiredReplicas,
    IReadOnlyList<FunctionCondition> Conditions)
{
    /// <summary>Reads a GpuFunction object as the API server returns it.</summary>
    public static FunctionSnapshot FromJson(JsonNode function)
    {
        ArgumentNullException.ThrowIfNull(function);
        var status = function["status"];
        int Count(string field) => status?[field] is JsonValue v && v.TryGetValue<int>(out var n) ? n : 0;
        var conditions = (status?["conditions"] as JsonArray ?? [])
            .OfType<JsonObject>()
            .Select(c => new FunctionCondition(
                c["type"]?.GetValue<string>() ?? "", c["status"]?.GetValue<string>() ?? "Unknown",
                c["reason"]?.GetValue<string>(), c["message"]?.GetValue<string>()))
            .ToList();
        return new FunctionSnapshot(
            function["metadata"]?["generation"]?.GetValue<long>() ?? 0,
            status?["observedGeneration"] is JsonValue g && g.TryGetValue<long>(out var observed) ? observed : null,
            Count("replicas"), Count("readyReplicas"), Count("desiredReplicas"), conditions);
    }

    /// <summary>The condition of <paramref name="type"/>, if present.</summary>
    public FunctionCondition? Condition(string type) => Conditions.FirstOrDefault(c => c.Type == type);
}

/// <summary>One status condition.</summary>
public sealed record FunctionCondition(string Type, string Status, string? Reason, string? Message);

/// <summary>A function's progress at one moment: the stage, a line for people, and whether waiting is over.</summary>
/// <param name="Stage">Where the rollout stands.</param>
/// <param name="Summary">Counts of pods per step, e.g. <c>1 requested, 1 scheduled, 0 ready</c>.</param>
/// <param name="Detail">Why it is where it is (the scheduler's or the operator's words); empty when nothing to say.</param>
public sealed record FunctionProgressReport(DeployStage Stage, string Summary, string Detail)
{
    /// <summary>True once waiting is over: Ready or scaled to zero.</summary>
    public bool Succeeded => Stage is DeployStage.Ready or DeployStage.ScaledToZero;

    /// <summary>The report on one line.</summary>
    public override string ToString() => Detail.Length == 0 ? $"{StageText(Stage)} ({Summary})" : $"{StageText(Stage)} ({Summary}): {Detail}";

    /// <summary>A stage in words.</summary>
    public static string StageText(DeployStage stage) => stage switch
    {
        DeployStage.WaitingForOperator => "waiting for the operator",
        DeployStage.Requested => "pods requested",
        DeployStage.Scheduling => "scheduling",
        DeployStage.PullingImage => "pulling image",
        DeployStage.Starting => "starting",
        DeployStage.Ready => "Ready",
        DeployStage.ScaledToZero => "Ready, scaled to zero",
        DeployStage.Stalled => "Stalled",
        _ => stage.ToString(),
    };
}

/// <summary>
/// Turns what the API shows of a function (its status, its pods) into a <see cref="FunctionProgressReport"/>. Pure:
/// the operator's conditions decide Ready and Stalled (kstatus); the pods say which step the replicas are at.
/// </summary>
public static class FunctionProgress
{
    /// <summary>Condition and reason names the operator writes (Pilotlight.Operator's FunctionConditions).</summary>
    public static class Conditions
    {
        /// <summary>Condition: the function can serve (or wake to serve).</summary>
        public const string Ready = "Ready";

        /// <summary>Condition: it cannot progress without someone acting.</summary>
        public const string Stalled = "Stalled";

        /// <summary>Condition: every desired replica is ready.</summary>
        public const string ScaledUp = "ScaledUp";

        /// <summary>Reason of Ready: no replica is wanted.</summary>
        public const string ScaledToZero = "ScaledToZero";
    }

    private static readonly string[] PullFailures = ["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"];

    /// <summary>
    /// The report for <paramref name="function"/> (null while it is not there yet) and its <paramref name="pods"/>,
    /// given the generation the apply produced (the status must have observed at least that one).
    /// </summary>
    public static FunctionProgressReport Assess(FunctionSnapshot? function, IReadOnlyList<V1Pod> pods, long appliedGeneration)
    {
        ArgumentNullException.ThrowIfNull(pods);
        var live = pods.Where(p => p.Metadata?.DeletionTimestamp is null && p.Status?.Phase is not ("Succeeded" or "Failed")).ToList();
        var scheduled = live.Count(p => !string.IsNullOrEmpty(p.Spec?.NodeName));
        var ready = live.Count(IsReady);
        var desired = function?.DesiredReplicas ?? 0;
        var summary = $"{Math.Max(desired, live.Count)} requested, {scheduled} scheduled, {ready} ready";

        if (function is null || function.ObservedGeneration is not { } observed || observed < Math.Max(appliedGeneration, function.Generation))
        {
            return new(DeployStage.WaitingForOperator, summary, "");
        }

        if (function.Condition(Conditions.Stalled) is { Status: "True" } stalled)
        {
            return new(DeployStage.Stalled, summary, Reason(stalled));
        }

        if (function.Condition(Conditions.Ready) is { Status: "True" } readyCondition)
        {
            if (readyCondition.Reason == Conditions.ScaledToZero || (desired == 0 && live.Count == 0))
            {
                return new(DeployStage.ScaledToZero, summary, readyCondition.Message ?? "");
            }

            // Ready while some desired replicas wait: say why (ScaledUp=False carries the reason).
            var scaledUp = function.Condition(Conditions.ScaledUp);
            return new(DeployStage.Ready, summary, scaledUp is { Status: "False" } ? $"not all replicas yet: {Reason(scaledUp)}" : "");
        }

        return PodStage(live, summary);
    }

    /// <summary>The earliest step any replica is at, with what holds it there.</summary>
    private static FunctionProgressReport PodStage(List<V1Pod> pods, string summary)
    {
        if (pods.Count == 0)
        {
            return new(DeployStage.Requested, summary, "");
        }

        var unscheduled = pods.Where(p => string.IsNullOrEmpty(p.Spec?.NodeName)).ToList();
        if (unscheduled.Count > 0)
        {
            var why = unscheduled
                .Select(p => p.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled" && c.Status == "False"))
                .FirstOrDefault(c => c is not null);
            return new(DeployStage.Scheduling, summary, why is null ? "" : $"{why.Reason}: {why.Message}");
        }

        var waiting = pods.SelectMany(p => p.Status?.ContainerStatuses ?? []).Select(s => s.State?.Waiting).OfType<V1ContainerStateWaiting>().ToList();
        if (waiting.FirstOrDefault(w => PullFailures.Contains(w.Reason)) is { } pullFailure)
        {
            return new(DeployStage.PullingImage, summary, $"{pullFailure.Reason}: {pullFailure.Message}");
        }

        var notStarted = pods.Where(p => p.Status?.ContainerStatuses is not { Count: > 0 } statuses || statuses.Any(s => s.State?.Running is null && s.State?.Terminated is null)).ToList();
        if (notStarted.Count > 0 && waiting.All(w => w.Reason is null or "ContainerCreating" or "PodInitializing"))
        {
            return new(DeployStage.PullingImage, summary, "");
        }

        var crash = waiting.FirstOrDefault(w => w.Reason == "CrashLoopBackOff");
        return new(DeployStage.Starting, summary, crash is null ? "" : $"CrashLoopBackOff: {crash.Message}");
    }

    private static bool IsReady(V1Pod pod) => pod.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true;

    private static string Reason(FunctionCondition condition) =>
        string.IsNullOrEmpty(condition.Message) ? condition.Reason ?? "" : $"{condition.Reason}: {condition.Message}";
}
