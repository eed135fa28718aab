using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using static Pilotlight.Operator.Functions.FunctionConditions;

namespace Pilotlight.Tests.Operator.Functions;

public sealed class FunctionStatusBuilderTests
{
    private static readonly DateTime Now = new(2026, 11, 23, 10, 0, 0, DateTimeKind.Utc);

    private static GpuFunction Function(GpuFunctionStatus? status = null, string startupTimeout = "5m") => new()
    {
        Metadata = new V1ObjectMeta { Name = "llm", NamespaceProperty = "ml", Generation = 3 },
        Spec = new GpuFunctionSpec { Image = "x", Gpu = new GpuRequirement { Type = GpuType.H100, Fallbacks = [GpuType.A100_80GB] }, StartupTimeout = startupTimeout },
        Status = status,
    };

    private static V1Pod Pod(bool ready = true, string hash = "h1", string? node = null, V1PodCondition? scheduled = null, V1ContainerStateWaiting? waiting = null,
        DateTime? created = null, int restarts = 0, string? name = null) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name ?? Guid.NewGuid().ToString("n"), Labels = new Dictionary<string, string> { [FunctionLabels.TemplateHash] = hash }, CreationTimestamp = created,
        },
        Spec = new V1PodSpec { NodeName = node, Containers = [] },
        Status = new V1PodStatus
        {
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }, .. scheduled is null ? Array.Empty<V1PodCondition>() : [scheduled]],
            ContainerStatuses = waiting is null && restarts == 0 ? null :
            [
                new V1ContainerStatus
                {
                    Name = "function", RestartCount = restarts,
                    State = new V1ContainerState { Waiting = waiting },
                    LastState = restarts == 0 ? null : new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 137, Reason = "Error" } },
                },
            ],
        },
    };

    private static V1PodCondition Unschedulable(string message) => new() { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = message };

    private static FunctionObservation Observe(GpuFunction function, IReadOnlyList<V1Pod> pods, int desired, IReadOnlyList<string>? problems = null, IReadOnlyDictionary<string, string>? nodes = null) =>
        new(function, pods, desired, "h1", problems ?? [], GpuCatalog.Default, nodes ?? new Dictionary<string, string>());

    private static GpuFunctionStatus Build(GpuFunction function, IReadOnlyList<V1Pod> pods, int desired, IReadOnlyList<string>? problems = null, IReadOnlyDictionary<string, string>? nodes = null) =>
        FunctionStatusBuilder.Build(Observe(function, pods, desired, problems, nodes), Now, "http://gateway");

    private static V1Condition Get(GpuFunctionStatus status, string type) => status.Conditions!.Single(c => c.Type == type);

    [Test]
    public void AllDesiredPodsReady()
    {
        var status = Build(Function(), [Pod(node: "n1"), Pod(node: "n2")], 2, nodes: new Dictionary<string, string> { ["n1"] = "NVIDIA-A100-SXM4-80GB", ["n2"] = "NVIDIA-A100-SXM4-80GB" });

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.PodsReady));
        Assert.That(Get(status, Stalled).Status, Is.EqualTo("False"));
        Assert.That(Get(status, Reconciling).Status, Is.EqualTo("False"));
        Assert.That(Get(status, ScaledUp), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.PodsReady));
        Assert.That((status.Replicas, status.ReadyReplicas, status.DesiredReplicas, status.ObservedGeneration), Is.EqualTo((2, 2, 2, (long?)3)));
        Assert.That(status.Selector, Is.EqualTo("pilotlight.dev/function=llm"));
        Assert.That(status.Gpu, Is.EqualTo("A100-80GB"), "the type pods landed on, not the one asked for");
        Assert.That(status.Endpoint, Is.EqualTo("http://gateway/ml/llm"));
    }

    [Test]
    public void ScaledToZeroIsHealthy()
    {
        var status = Build(Function(), [], 0);

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.ScaledToZero));
        Assert.That(Get(status, ScaledUp), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.ScaledToZero));
        Assert.That(Get(status, Stalled).Status, Is.EqualTo("False"));
        Assert.That(status.Gpu, Is.EqualTo("H100"));
    }

    [Test]
    public void InvalidSpecStalls()
    {
        var status = Build(Function(), [], 1, ["GPU type B200 is not in the operator's GPU catalog"]);

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(Reasons.InvalidSpec));
        Assert.That(Get(status, Ready).Message, Does.Contain("B200"));
        Assert.That(Get(status, Stalled), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.InvalidSpec));
    }

    [Test]
    public void UnschedulableCarriesTheSchedulersMessage()
    {
        const string message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";
        var pod = Pod(ready: false, scheduled: new V1PodCondition { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = message });

        var status = Build(Function(), [pod], 1);

        Assert.That(Get(status, Ready), Has.Property("Reason").EqualTo(Reasons.Unschedulable).And.Property("Message").EqualTo(message));
        Assert.That(Get(status, Stalled).Status, Is.EqualTo("True"));
    }

    [TestCase("ErrImagePull", Reasons.ImagePullBackOff)]
    [TestCase("ImagePullBackOff", Reasons.ImagePullBackOff)]
    [TestCase("CrashLoopBackOff", Reasons.CrashLoopBackOff)]
    public void ContainerFailuresHaveTheirReasons(string waiting, string reason)
    {
        var status = Build(Function(), [Pod(ready: false, waiting: new V1ContainerStateWaiting { Reason = waiting, Message = "details" })], 1);

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(reason));
    }

    [Test]
    public void StartingPodsAreReconciling()
    {
        var status = Build(Function(), [Pod(ready: false)], 1);

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(Reasons.PodsStarting));
        Assert.That(Get(status, Reconciling).Status, Is.EqualTo("True"));
    }

    [Test]
    public void ARolloutStaysReadyWhileOldPodsServe()
    {
        var status = Build(Function(), [Pod(hash: "old"), Pod(ready: false)], 1);

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.RollingOut));
        Assert.That(Get(status, Reconciling).Status, Is.EqualTo("True"));
    }

    [Test]
    public void TransitionTimesMoveOnlyWhenTheStatusDoes()
    {
        var first = Build(Function(), [Pod()], 1);
        var earlier = first with { Conditions = first.Conditions!.Select(c => { c.LastTransitionTime = Now.AddHours(-1); return c; }).ToList() };

        var again = Build(Function(earlier), [Pod()], 1);
        var changed = Build(Function(earlier), [Pod(ready: false)], 1);

        Assert.That(Get(again, Ready).LastTransitionTime, Is.EqualTo(Now.AddHours(-1)));
        Assert.That(FunctionStatusBuilder.Differs(earlier, again), Is.False);
        Assert.That(Get(changed, Ready).LastTransitionTime, Is.EqualTo(Now));
    }

    [Test]
    public void AFunctionWithoutStatusYetNeedsAWrite()
    {
        var status = Build(Function(), [], 0);
        Assert.That(FunctionStatusBuilder.Differs(null, status), Is.True);
        Assert.That(FunctionStatusBuilder.Differs(status, null), Is.True);
        Assert.That(FunctionStatusBuilder.Differs(null, null), Is.False);
    }

    // Stalled means the function cannot serve at all; ScaledUp says why extra replicas are missing.
    [TestCase("Unschedulable", Reasons.Unschedulable)]
    [TestCase("CrashLoopBackOff", Reasons.CrashLoopBackOff)]
    [TestCase("ImagePullBackOff", Reasons.ImagePullBackOff)]
    [TestCase("Starting", Reasons.PodsStarting)]
    public void AFunctionThatServesWhileAReplicaCannotStartStaysReady(string trouble, string reason)
    {
        const string message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";
        var extra = trouble switch
        {
            "Unschedulable" => Pod(ready: false, scheduled: Unschedulable(message)),
            "Starting" => Pod(ready: false),
            _ => Pod(ready: false, waiting: new V1ContainerStateWaiting { Reason = trouble, Message = message }),
        };

        var status = Build(Function(), [Pod(), extra], 2);

        Assert.Multiple(() =>
        {
            Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.PodsReady));
            Assert.That(Get(status, Ready).Message, Is.EqualTo("1/2 replicas ready"));
            Assert.That(Get(status, Stalled).Status, Is.EqualTo("False"), "one replica serves: not Stalled (kstatus Failed, Argo CD Degraded)");
            Assert.That(Get(status, ScaledUp), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(reason));
            Assert.That(Get(status, Reconciling), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(reason));
        });
        if (trouble != "Starting")
        {
            Assert.That(Get(status, ScaledUp).Message, Is.EqualTo(message), "the scheduler's (or kubelet's) own words");
        }
    }

    [Test]
    public void AFunctionWhoseReplicaNeverStartsIsStalledPastStartupTimeout()
    {
        var pod = Pod(ready: false, created: Now.AddSeconds(-6), restarts: 1, name: "llm-abc");

        var status = Build(Function(startupTimeout: "5s"), [pod], 1);

        Assert.Multiple(() =>
        {
            Assert.That(Get(status, Stalled), Has.Property("Status").EqualTo("True").And.Property("Reason").EqualTo(Reasons.StartupTimeout));
            Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(Reasons.StartupTimeout));
            Assert.That(Get(status, Ready).Message, Does.Contain("llm-abc").And.Contain("startupTimeout 5s").And.Contain("restarted 1 time"));
            Assert.That(Get(status, ScaledUp), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(Reasons.StartupTimeout));
            Assert.That(Get(status, Reconciling).Status, Is.EqualTo("False"), "kstatus: Stalled, not in progress");
        });
    }

    [Test]
    public void AReplicaWithinStartupTimeoutIsStillStartingAndTheDeadlineIsKnown()
    {
        var created = Now.AddSeconds(-2);
        var seen = Observe(Function(startupTimeout: "5s"), [Pod(ready: false, created: created)], 1);

        var status = FunctionStatusBuilder.Build(seen, Now, "http://gateway");

        Assert.That(Get(status, Ready), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(Reasons.PodsStarting));
        Assert.That(Get(status, Stalled).Status, Is.EqualTo("False"));
        Assert.That(FunctionStatusBuilder.NextStartupDeadline(seen, Now), Is.EqualTo(created.AddSeconds(5)), "the reconciler looks again then");
        Assert.That(FunctionStatusBuilder.NextStartupDeadline(seen, created.AddSeconds(5)), Is.Null, "past it, nothing is left to wait for");
    }

    [Test]
    public void AnOverdueExtraReplicaIsScaledUpFalseNotStalled()
    {
        var status = Build(Function(startupTimeout: "5s"), [Pod(created: Now.AddMinutes(-5)), Pod(ready: false, created: Now.AddSeconds(-30))], 2);

        Assert.That(Get(status, Ready).Status, Is.EqualTo("True"));
        Assert.That(Get(status, Stalled).Status, Is.EqualTo("False"));
        Assert.That(Get(status, ScaledUp), Has.Property("Status").EqualTo("False").And.Property("Reason").EqualTo(Reasons.StartupTimeout));
    }

    [Test]
    public void APodOfAnOlderSpecDoesNotCountAgainstStartupTimeout()
    {
        var status = Build(Function(startupTimeout: "5s"), [Pod(ready: false, hash: "old", created: Now.AddMinutes(-5)), Pod(ready: false, created: Now.AddSeconds(-1))], 1);

        Assert.That(Get(status, Stalled).Status, Is.EqualTo("False"));
        Assert.That(Get(status, Ready).Reason, Is.EqualTo(Reasons.PodsStarting));
    }
}
