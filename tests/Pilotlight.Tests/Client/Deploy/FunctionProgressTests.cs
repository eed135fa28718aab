using k8s.Models;
using Pilotlight.Client.Deploy;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Client.Deploy;

/// <summary>The deploy progress read from a function's status and pods, table-tested.</summary>
public class FunctionProgressTests
{
    private static FunctionSnapshot Function(long generation = 2, long? observed = 2, int desired = 1, int ready = 0, params FunctionCondition[] conditions) =>
        new(generation, observed, 0, ready, desired, conditions);

    private static FunctionCondition C(string type, string status, string? reason = null, string? message = null) => new(type, status, reason, message);

    private static V1Pod Pod(string? node = null, string? ready = null, V1PodCondition? scheduled = null, params V1ContainerStatus[] containers) => new()
    {
        Metadata = new V1ObjectMeta { Name = "p" },
        Spec = new V1PodSpec { NodeName = node, Containers = [] },
        Status = new V1PodStatus
        {
            Phase = node is null ? "Pending" : "Running",
            Conditions = [.. new[] { scheduled, ready is null ? null : new V1PodCondition { Type = "Ready", Status = ready } }.OfType<V1PodCondition>()],
            ContainerStatuses = containers,
        },
    };

    private static V1ContainerStatus Waiting(string reason, string? message = null) => new() { Name = "function", State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = reason, Message = message } } };

    private static V1ContainerStatus Running() => new() { Name = "function", State = new V1ContainerState { Running = new V1ContainerStateRunning() } };

    [Test]
    public void The_names_it_reads_are_the_ones_the_operator_writes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(FunctionProgress.Conditions.Ready, Is.EqualTo(FunctionConditions.Ready));
            Assert.That(FunctionProgress.Conditions.Stalled, Is.EqualTo(FunctionConditions.Stalled));
            Assert.That(FunctionProgress.Conditions.ScaledUp, Is.EqualTo(FunctionConditions.ScaledUp));
            Assert.That(FunctionProgress.Conditions.ScaledToZero, Is.EqualTo(FunctionConditions.Reasons.ScaledToZero));
            Assert.That(ApiFunctionObserver.FunctionLabel, Is.EqualTo(FunctionLabels.Function));
        });
    }

    [Test]
    public void Before_the_operator_observed_the_applied_generation_it_waits_whatever_the_old_status_says()
    {
        var stale = Function(generation: 3, observed: 2, conditions: C("Ready", "True", "PodsReady"));

        Assert.That(FunctionProgress.Assess(null, [], 1).Stage, Is.EqualTo(DeployStage.WaitingForOperator));
        Assert.That(FunctionProgress.Assess(Function(observed: null), [], 1).Stage, Is.EqualTo(DeployStage.WaitingForOperator));
        Assert.That(FunctionProgress.Assess(stale, [], 3).Stage, Is.EqualTo(DeployStage.WaitingForOperator));
    }

    public static IEnumerable<TestCaseData> Stages()
    {
        var starting = C("Ready", "False", "PodsStarting", "0/1 replicas ready");
        yield return new TestCaseData(Function(conditions: starting), Array.Empty<V1Pod>(), DeployStage.Requested, "").SetName("No pod yet: requested");
        yield return new TestCaseData(Function(conditions: starting), new[] { Pod() }, DeployStage.Scheduling, "").SetName("Pod not bound: scheduling");
        yield return new TestCaseData(Function(conditions: starting),
                new[] { Pod(scheduled: new V1PodCondition { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = "0/3 nodes are available" }) },
                DeployStage.Scheduling, "Unschedulable: 0/3 nodes are available")
            .SetName("Scheduler's reason while the operator does not call it Stalled yet");
        yield return new TestCaseData(Function(conditions: starting), new[] { Pod(node: "n") }, DeployStage.PullingImage, "").SetName("Bound, no container status: pulling");
        yield return new TestCaseData(Function(conditions: starting), new[] { Pod("n", "False", null, Waiting("ContainerCreating")) }, DeployStage.PullingImage, "").SetName("ContainerCreating: pulling");
        yield return new TestCaseData(Function(conditions: starting), new[] { Pod("n", "False", null, Waiting("ErrImagePull", "not found")) }, DeployStage.PullingImage, "ErrImagePull: not found").SetName("Pull failing");
        yield return new TestCaseData(Function(conditions: starting), new[] { Pod("n", "False", null, Running()) }, DeployStage.Starting, "").SetName("Running, not ready: starting");
        yield return new TestCaseData(Function(ready: 1, conditions: [C("Ready", "True", "PodsReady"), C("ScaledUp", "True", "PodsReady")]), new[] { Pod("n", "True", null, Running()) }, DeployStage.Ready, "").SetName("Ready");
        yield return new TestCaseData(Function(desired: 2, ready: 1, conditions: [C("Ready", "True", "PodsReady"), C("ScaledUp", "False", "Unschedulable", "Insufficient nvidia.com/gpu")]),
                new[] { Pod("n", "True", null, Running()), Pod() }, DeployStage.Ready, "not all replicas yet: Unschedulable: Insufficient nvidia.com/gpu").SetName("Ready with a replica missing");
        yield return new TestCaseData(Function(desired: 0, conditions: C("Ready", "True", "ScaledToZero", "no replicas")), Array.Empty<V1Pod>(), DeployStage.ScaledToZero, "no replicas").SetName("Scaled to zero");
        yield return new TestCaseData(Function(conditions: [C("Ready", "False", "Unschedulable", "0/3 nodes"), C("Stalled", "True", "Unschedulable", "0/3 nodes")]), new[] { Pod() }, DeployStage.Stalled, "Unschedulable: 0/3 nodes").SetName("Stalled wins");
    }

    [TestCaseSource(nameof(Stages))]
    public void The_stage_is_the_earliest_step_a_replica_is_at(FunctionSnapshot function, V1Pod[] pods, DeployStage stage, string detail)
    {
        var report = FunctionProgress.Assess(function, pods, 2);

        Assert.That((report.Stage, report.Detail), Is.EqualTo((stage, detail)));
    }

    [Test]
    public void Pods_being_deleted_are_not_counted()
    {
        var leaving = Pod("n", "True", null, Running());
        leaving.Metadata.DeletionTimestamp = DateTime.UtcNow;

        var report = FunctionProgress.Assess(Function(desired: 1, conditions: C("Ready", "False", "PodsStarting")), [leaving], 2);

        Assert.That(report.Summary, Is.EqualTo("1 requested, 0 scheduled, 0 ready"));
        Assert.That(report.Stage, Is.EqualTo(DeployStage.Requested));
    }

    [Test]
    public void A_snapshot_is_read_from_the_function_json()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse("""
            {"metadata": {"name": "f", "generation": 4},
             "status": {"observedGeneration": 4, "replicas": 2, "readyReplicas": 1, "desiredReplicas": 2,
                        "conditions": [{"type": "Ready", "status": "True", "reason": "PodsReady", "message": "1/2 replicas ready"}]}}
            """)!;

        var snapshot = FunctionSnapshot.FromJson(json);

        Assert.That((snapshot.Generation, snapshot.ObservedGeneration, snapshot.Replicas, snapshot.ReadyReplicas, snapshot.DesiredReplicas), Is.EqualTo((4L, (long?)4, 2, 1, 2)));
        Assert.That(snapshot.Condition("Ready"), Is.EqualTo(new FunctionCondition("Ready", "True", "PodsReady", "1/2 replicas ready")));
    }
}
