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

    private static async Task<List<AppliedObject>> ListAsync(Kubectl kubectl, string ns) =>
        AppliedObject.ParseList((await kubectl.RunAsync(["get", "gpufunctions,sandboxes,sandboxwarmpools", "-n", ns, "-o", "json", "--show-managed-fields"])).EnsureSuccess().StandardOutput);
}
