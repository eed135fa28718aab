using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Tests.Integration;

/// <summary>The controller runtime against the real API server.</summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class ControllerRuntimeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private ControlPlane _plane = null!;
    private Kubernetes _client = null!;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        _plane = await SharedControlPlane.GetAsync();
        // Admin, not the chart's roles: these test the controller runtime with recording reconcilers
        // (Leases in test namespaces included), not the operator; SharedOperator runs that under the chart's RBAC.
        _client = _plane.CreateClient();
    }

    [OneTimeTearDown]
    public void TearDown() => _client.Dispose();

    internal static GpuFunction Function(string ns, string name, string image = "example/server:1") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
        Spec = new GpuFunctionSpec { Image = image, Gpu = new GpuRequirement { Type = GpuType.L4 } },
    };

    internal static Task CreateAsync(IKubernetes client, GpuFunction fn) =>
        client.CustomObjects.CreateNamespacedCustomObjectAsync(fn, Group.Name, Group.Version, fn.Metadata.NamespaceProperty, "gpufunctions");

    internal static Task SetImageAsync(IKubernetes client, string ns, string name, string image) =>
        client.CustomObjects.PatchNamespacedCustomObjectAsync(
            new V1Patch($"{{\"spec\":{{\"image\":\"{image}\"}}}}", V1Patch.PatchType.MergePatch),
            Group.Name, Group.Version, ns, "gpufunctions", name);

    /// <summary>A host with one GpuFunction controller over one namespace, running until disposed.</summary>
    internal sealed class RunningHost : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _run;

        public RunningHost(IKubernetes client, string ns, RecordingReconciler reconciler, ControllerHostOptions? options = null,
            ControllerOptions? controllerOptions = null, bool watchPods = false)
        {
            Metrics = new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry());
            Informer = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(client, ns));
            var controller = new Controller<GpuFunction>("gpufunction", Informer, reconciler, controllerOptions);
            if (watchPods)
            {
                controller.Owns(new Informer<V1Pod>(ListWatch.ForPods(client, fieldSelector: $"metadata.namespace={ns}")), GpuFunction.KindName);
            }

            Host = new ControllerHost(client, options, Metrics);
            Host.Add(controller);
            _run = Host.RunAsync(_stop.Token);
        }

        public ControllerHost Host { get; }

        public ControllerMetrics Metrics { get; }

        public Informer<GpuFunction> Informer { get; }

        public Task Completion => _run;

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _run;
            _stop.Dispose();
        }
    }

    [Test]
    public async Task Each_change_is_reconciled_once_and_status_writes_do_not_trigger_more()
    {
        var ns = await _plane.CreateNamespaceAsync("once");
        var reconciler = new RecordingReconciler(_client, writeStatus: true);
        await using var host = new RunningHost(_client, ns, reconciler, controllerOptions: new ControllerOptions { Workers = 1 });

        await CreateAsync(_client, Function(ns, "fn"));
        await Eventually.HoldsAsync(() => reconciler.StatusGeneration(ns, "fn") == 1, Timeout, "first reconcile");
        await SetImageAsync(_client, ns, "fn", "example/server:2");
        await Eventually.HoldsAsync(() => reconciler.StatusGeneration(ns, "fn") == 2, Timeout, "second reconcile");

        // A marker created after the last status write is reconciled after any
        // reconcile that status write could have caused (one worker, FIFO, one watch stream).
        await CreateAsync(_client, Function(ns, "marker"));
        await Eventually.HoldsAsync(() => reconciler.Count(ns, "marker") == 1, Timeout, "marker reconcile");

        Assert.That(reconciler.Count(ns, "fn"), Is.EqualTo(2));
    }

    [Test]
    public async Task Nothing_is_reconciled_before_the_initial_list_completes()
    {
        var ns = await _plane.CreateNamespaceAsync("sync");
        for (var i = 0; i < 30; i++)
        {
            await CreateAsync(_client, Function(ns, $"fn-{i}"));
        }

        var reconciler = new RecordingReconciler(_client);
        RunningHost? host = null;
        reconciler.OnFirstReconcile = () => host!.Informer.List().Count;
        await using (host = new RunningHost(_client, ns, reconciler))
        {
            await Eventually.HoldsAsync(() => reconciler.Total == 30, Timeout, "all 30 reconciled");
        }

        Assert.That(reconciler.SeenAtFirstReconcile, Is.EqualTo(30));
    }

    [Test]
    public async Task A_reconcile_that_throws_is_retried_with_backoff_and_does_not_block_other_keys()
    {
        var ns = await _plane.CreateNamespaceAsync("throw");
        var reconciler = new RecordingReconciler(_client) { FailingNames = { "bad" } };
        var options = new ControllerOptions { Workers = 1, Backoff = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2)) };
        await using var host = new RunningHost(_client, ns, reconciler, controllerOptions: options);

        await CreateAsync(_client, Function(ns, "bad"));
        await Eventually.HoldsAsync(() => reconciler.Failures >= 1, Timeout, "first failure");
        for (var i = 0; i < 5; i++)
        {
            await CreateAsync(_client, Function(ns, $"good-{i}"));
        }

        await Eventually.HoldsAsync(() => Enumerable.Range(0, 5).All(i => reconciler.Count(ns, $"good-{i}") == 1), Timeout,
            "good keys reconciled while bad keeps failing");
        await Eventually.HoldsAsync(() => reconciler.Failures >= 4, Timeout, "bad retried");
        Assert.That(host.Metrics.ReconcileErrors.WithLabels("gpufunction").Value, Is.GreaterThanOrEqualTo(4));

        // Fixing the object (no longer failing) lets the next retry succeed.
        reconciler.FailingNames.Clear();
        var failuresBefore = reconciler.Count(ns, "bad");
        await Eventually.HoldsAsync(() => reconciler.Count(ns, "bad") > failuresBefore, Timeout, "a successful retry");
        Assert.That(host.Metrics.ReconcileTotal.WithLabels("gpufunction", "success").Value, Is.GreaterThanOrEqualTo(6));
    }

    [Test]
    public async Task A_change_to_an_owned_pod_reconciles_its_owner()
    {
        var ns = await _plane.CreateNamespaceAsync("owned");
        var reconciler = new RecordingReconciler(_client);
        await using var host = new RunningHost(_client, ns, reconciler, watchPods: true);
        await CreateAsync(_client, Function(ns, "owner"));
        await CreateAsync(_client, Function(ns, "bystander"));
        await Eventually.HoldsAsync(() => reconciler.Count(ns, "owner") == 1 && reconciler.Count(ns, "bystander") == 1, Timeout, "initial reconciles");

        var owner = await _client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", "owner");
        await _client.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta
            {
                Name = "child",
                OwnerReferences = [new V1OwnerReference
                {
                    ApiVersion = Group.ApiVersion, Kind = GpuFunction.KindName, Name = "owner", Uid = owner.Metadata.Uid, Controller = true,
                }],
            },
            Spec = new V1PodSpec { Containers = [new V1Container { Name = "c", Image = "example/server:1" }] },
        }, ns);

        await Eventually.HoldsAsync(() => reconciler.Count(ns, "owner") >= 2, Timeout, "owner reconciled for its pod");
        Assert.That(reconciler.Count(ns, "bystander"), Is.EqualTo(1));
    }

    [Test]
    public async Task Deleting_an_object_calls_DeletedAsync()
    {
        var ns = await _plane.CreateNamespaceAsync("deleted");
        var reconciler = new RecordingReconciler(_client);
        await using var host = new RunningHost(_client, ns, reconciler);
        await CreateAsync(_client, Function(ns, "gone"));
        await Eventually.HoldsAsync(() => reconciler.Count(ns, "gone") == 1, Timeout, "reconciled");

        await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "gpufunctions", "gone");

        await Eventually.HoldsAsync(() => reconciler.Deleted.Contains(new ObjectKey(ns, "gone")), Timeout, "DeletedAsync");
    }

    [Test]
    public async Task Only_the_leader_reconciles_and_a_follower_takes_over_when_it_dies()
    {
        var ns = await _plane.CreateNamespaceAsync("leader");
        var election = new LeaderElectionOptions(ns, "pilotlight-operator")
        {
            LeaseDuration = TimeSpan.FromSeconds(4), RenewDeadline = TimeSpan.FromSeconds(3), RetryPeriod = TimeSpan.FromMilliseconds(500),
        };
        var first = new RecordingReconciler(_client);
        var second = new RecordingReconciler(_client);

        // The first instance is "killed": it stops without releasing the lease,
        // so the second must wait for the lease to expire.
        using var firstClient = _plane.CreateClient();
        var a = new RunningHost(firstClient, ns, first, new ControllerHostOptions { Identity = "a", LeaderElection = election, ReleaseOnShutdown = false });
        await Eventually.HoldsAsync(() => a.Host.IsLeader, Timeout, "a leads");
        await using var b = new RunningHost(_client, ns, second, new ControllerHostOptions { Identity = "b", LeaderElection = election });

        await CreateAsync(_client, Function(ns, "one"));
        await Eventually.HoldsAsync(() => first.Count(ns, "one") == 1, Timeout, "leader reconciles");
        await CreateAsync(_client, Function(ns, "marker"));
        await Eventually.HoldsAsync(() => first.Count(ns, "marker") == 1, Timeout, "leader reconciles the marker");
        Assert.That(second.Total, Is.Zero, "the follower reconciled nothing");
        Assert.That(b.Host.IsLeader, Is.False);

        await a.DisposeAsync();
        await CreateAsync(_client, Function(ns, "two"));

        await Eventually.HoldsAsync(() => second.Count(ns, "two") == 1, election.LeaseDuration * 3, "the follower takes over within the lease duration");
        Assert.That(b.Host.IsLeader, Is.True);
        Assert.That(first.Count(ns, "two"), Is.Zero);
    }

    [Test]
    public async Task A_graceful_stop_with_the_default_options_hands_leadership_to_the_other_replica_within_seconds()
    {
        // The chart's path: default election timings, ReleaseOnShutdown on (the default).
        var ns = await _plane.CreateNamespaceAsync("handover");
        var election = new LeaderElectionOptions(ns, "pilotlight-operator");
        var first = new RecordingReconciler(_client);
        var second = new RecordingReconciler(_client);
        using var firstClient = _plane.CreateClient();
        using var secondClient = _plane.CreateClient();

        var a = new RunningHost(firstClient, ns, first, new ControllerHostOptions { Identity = "a", LeaderElection = election });
        await Eventually.HoldsAsync(() => a.Host.IsLeader, Timeout, "a leads");
        var b = new RunningHost(secondClient, ns, second, new ControllerHostOptions { Identity = "b", LeaderElection = election });
        await Eventually.HoldsAsync(() => b.Informer.HasSynced, Timeout, "b is a synced follower");
        Assert.That(b.Host.IsLeader, Is.False);

        await a.DisposeAsync();
        var released = await _client.CoordinationV1.ReadNamespacedLeaseAsync("pilotlight-operator", ns);
        Assert.That(released.Spec.HolderIdentity, Is.EqualTo("").Or.EqualTo("b"), "released (or already taken over), never null");

        // Well inside the 15 s lease: without the release b would wait for expiry (or, with a null holder, forever).
        await Eventually.HoldsAsync(() => b.Host.IsLeader, election.LeaseDuration - election.RetryPeriod * 2, "b leads within seconds of a's graceful stop");
        await CreateAsync(_client, Function(ns, "after-handover"));
        await Eventually.HoldsAsync(() => second.Count(ns, "after-handover") == 1, Timeout, "the new leader reconciles");

        // What the API server stores for a released Lease: holder "" (not absent), renew time and the 1 s duration.
        await b.DisposeAsync();
        var stored = await _client.CoordinationV1.ReadNamespacedLeaseAsync("pilotlight-operator", ns);
        Assert.That(stored.Spec.HolderIdentity, Is.Not.Null.And.Empty);
        Assert.That(stored.Spec.RenewTime, Is.Not.Null);
        Assert.That(stored.Spec.AcquireTime, Is.Not.Null);
        Assert.That(stored.Spec.LeaseDurationSeconds, Is.EqualTo(1));

        // And a candidate that starts later takes the released Lease at once.
        await using var c = new RunningHost(firstClient, ns, new RecordingReconciler(_client), new ControllerHostOptions { Identity = "c", LeaderElection = election });
        await Eventually.HoldsAsync(() => c.Host.IsLeader, election.LeaseDuration - election.RetryPeriod * 2, "a later candidate takes the released Lease");
    }
}
