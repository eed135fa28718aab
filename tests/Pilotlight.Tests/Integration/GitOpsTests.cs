namespace Pilotlight.Tests.Integration;

/// <summary>
/// What a GitOps tool sees: the samples applied server-side twice change nothing the second time, and nothing
/// but the applier owns any field of their spec once the operator has reconciled them (it writes status only).
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class GitOpsTests
{
    private const string Manager = "gitops-sync";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Test]
    public async Task Applying_the_samples_server_side_twice_changes_nothing_and_the_operator_owns_no_spec_field()
    {
        await SharedOperator.GetAsync();
        var plane = await SharedControlPlane.GetAsync();
        var kubectl = new Kubectl(plane.KubeconfigPath);
        var ns = await plane.CreateNamespaceAsync("gitops");
        // Namespaced samples only: the cluster-scoped ClusterRole in samples/rbac is shared with other tests.
        var files = new[] { "functions", "sandboxes", "demo" }
            .SelectMany(d => Directory.GetFiles(Path.Combine(RepositoryRoot.Path, "samples", d), "*.yaml"))
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.That(files, Has.Count.GreaterThanOrEqualTo(6));
        string[] Apply() => ["apply", "--server-side", $"--field-manager={Manager}", "-n", ns, .. files.SelectMany(f => new[] { "-f", f })];

        (await kubectl.RunAsync(Apply())).EnsureSuccess();
        var first = await Eventually.GetAsync(async () =>
        {
            var objects = await ListAsync(kubectl, ns);
            return objects.Count == files.Count && objects.All(o => o.ObservedGeneration == o.Generation) ? objects : null;
        }, Timeout, "every sample reconciled (observedGeneration caught up)");

        await AssertSchedulesAcceptedAsync(plane, ns);

        var again = (await kubectl.RunAsync(Apply())).EnsureSuccess();
        Assert.That(again.StandardOutput, Does.Contain("serverside-applied"));
        var second = await ListAsync(kubectl, ns);

        Assert.Multiple(() =>
        {
            foreach (var before in first)
            {
                var after = second.Single(o => o.Key == before.Key);
                Assert.That(after.Generation, Is.EqualTo(before.Generation), $"{before.Key}: the second apply is a no-op");
                Assert.That(after.Spec, Is.EqualTo(before.Spec), $"{before.Key}: spec unchanged");
                Assert.That(after.SpecOwners, Is.EqualTo(new[] { Manager }), $"{before.Key}: only the applier owns spec fields");
            }
        });
    }

    /// <summary>The samples that advertise a schedule carry one the operator runs: valid, in their zone, not refused as InvalidSpec.</summary>
    private static async Task AssertSchedulesAcceptedAsync(ControlPlane plane, string ns)
    {
        using var client = plane.CreateClient();
        using var list = await client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync<Pilotlight.ControllerRuntime.CustomResourceList<Pilotlight.Api.V1Alpha1.GpuFunction>>(
            Pilotlight.Api.V1Alpha1.Group.Name, Pilotlight.Api.V1Alpha1.Group.Version, ns, "gpufunctions");
        var functions = list.Body;
        var scheduled = functions.Items.Where(f => f.Spec.Schedule is not null).ToList();
        Assert.That(scheduled, Is.Not.Empty, "a sample shows spec.schedule");
        Assert.Multiple(() =>
        {
            foreach (var f in scheduled)
            {
                var ready = f.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
                Assert.That(ready?.Reason, Is.Not.EqualTo("InvalidSpec"), $"{f.Metadata.Name}: {ready?.Message}");
                Assert.That(Pilotlight.Operator.Schedules.FunctionSchedule.TryCreate(f.Spec.Schedule!, out var schedule, out var problems), Is.True,
                    string.Join("; ", problems));
                Assert.That(schedule!.NextAfter(DateTimeOffset.UtcNow), Is.Not.Null, $"{f.Metadata.Name}: the schedule fires");
            }
        });
    }

    private static async Task<List<AppliedObject>> ListAsync(Kubectl kubectl, string ns) =>
        AppliedObject.ParseList((await kubectl.RunAsync(["get", "gpufunctions,sandboxes,sandboxwarmpools", "-n", ns, "-o", "json", "--show-managed-fields"])).EnsureSuccess().StandardOutput);
}
