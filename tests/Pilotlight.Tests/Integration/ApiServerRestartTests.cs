using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Tests.Integration;

/// <summary>Watches survive an API server restart: its own control plane, so other tests are not disturbed.</summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class ApiServerRestartTests
{
    [Test]
    public async Task After_the_api_server_restarts_the_controller_relists_and_converges()
    {
        await using var plane = await ControlPlane.StartAsync();
        await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
        // Admin, not the chart's roles: this tests the controller runtime (a recording reconciler
        // writing status), not the operator; SharedOperator runs the operator under the chart's RBAC.
        using var client = plane.CreateClient();
        var ns = await plane.CreateNamespaceAsync("restart");
        var reconciler = new RecordingReconciler(client, writeStatus: true);
        var timeout = TimeSpan.FromSeconds(60);
        await using var host = new ControllerRuntimeTests.RunningHost(client, ns, reconciler);

        await ControllerRuntimeTests.CreateAsync(client, ControllerRuntimeTests.Function(ns, "before"));
        await Eventually.HoldsAsync(() => reconciler.StatusGeneration(ns, "before") == 1, timeout, "reconciled before the restart");

        await plane.RestartApiServerAsync();
        await ControllerRuntimeTests.SetImageAsync(client, ns, "before", "example/server:2");
        await ControllerRuntimeTests.CreateAsync(client, ControllerRuntimeTests.Function(ns, "after"));

        await Eventually.HoldsAsync(() => reconciler.StatusGeneration(ns, "before") == 2 && reconciler.StatusGeneration(ns, "after") == 1,
            timeout, "changes made after the restart reconciled");
        Assert.That(host.Metrics.WatchRestarts.WithLabels("gpufunctions", "error").Value
            + host.Metrics.WatchRestarts.WithLabels("gpufunctions", "gone").Value, Is.GreaterThanOrEqualTo(1));
        Assert.That(host.Completion.IsCompleted, Is.False, "the host keeps running");
    }
}
