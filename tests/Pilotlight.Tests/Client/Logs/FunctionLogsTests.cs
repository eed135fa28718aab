using k8s.Models;
using Pilotlight.Client.Logs;

namespace Pilotlight.Tests.Client.Logs;

/// <summary>Which container of a pod the logs show, and when it has a log to show.</summary>
public class FunctionLogsTests
{
    private static V1Pod Pod(string? defaultContainer, params V1ContainerStatus[] statuses) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = "p",
            Annotations = defaultContainer is null ? null : new Dictionary<string, string> { ["kubectl.kubernetes.io/default-container"] = defaultContainer },
        },
        Spec = new V1PodSpec { Containers = [new V1Container { Name = "runtime-shim" }, new V1Container { Name = "function" }] },
        Status = new V1PodStatus { ContainerStatuses = statuses },
    };

    private static readonly LogsRequest Any = new("ns", "echo", null, Follow: true, Since: null);

    [Test]
    public void The_container_is_the_one_asked_for_else_the_pod_default_else_the_first()
    {
        Assert.That(FunctionLogs.ContainerOf(Pod("function"), Any with { Container = "runtime-shim" }), Is.EqualTo("runtime-shim"));
        Assert.That(FunctionLogs.ContainerOf(Pod("function"), Any), Is.EqualTo("function"));
        Assert.That(FunctionLogs.ContainerOf(Pod(null), Any), Is.EqualTo("runtime-shim"));
    }

    [Test]
    public void A_container_has_a_log_once_it_runs_or_ran()
    {
        V1ContainerStatus Status(V1ContainerState state, string? id = "sim://1") => new() { Name = "function", ContainerID = id, State = state };

        Assert.Multiple(() =>
        {
            Assert.That(FunctionLogs.ContainerId(Pod(null), "function"), Is.Null, "no status yet");
            Assert.That(FunctionLogs.ContainerId(Pod(null, Status(new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ContainerCreating" } }, null)), "function"), Is.Null);
            Assert.That(FunctionLogs.ContainerId(Pod(null, Status(new V1ContainerState { Running = new V1ContainerStateRunning() })), "function"), Is.EqualTo("sim://1"));
            Assert.That(FunctionLogs.ContainerId(Pod(null, Status(new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 1 } })), "function"), Is.EqualTo("sim://1"));
            Assert.That(FunctionLogs.ContainerId(Pod(null, Status(new V1ContainerState { Running = new V1ContainerStateRunning() })), "runtime-shim"), Is.Null, "another container");
        });
    }
}
