using k8s.Models;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Sandboxes;

/// <summary>The pod cache's indexes the sandbox controllers read: by every owner's UID, and warm pods by shape.</summary>
public class SandboxPodIndexesTests
{
    private static V1Pod Pod(Dictionary<string, string>? labels = null, params V1OwnerReference[] owners) => new()
    {
        Metadata = new V1ObjectMeta { Name = "p", NamespaceProperty = "ns", Labels = labels, OwnerReferences = owners.Length == 0 ? null : owners },
    };

    private static V1OwnerReference Owner(string uid, bool controller = true) =>
        new() { Uid = uid, Controller = controller, Kind = "Sandbox", Name = "s", ApiVersion = "pilotlight.dev/v1alpha1" };

    [Test]
    public void A_pod_is_filed_under_every_owner_it_names_controller_or_not()
    {
        Assert.That(SandboxPodIndexes.ByOwnerUid(Pod(null, Owner("a"), Owner("b", controller: false), Owner("a"))), Is.EqualTo(new[] { "a", "b" }));
        Assert.That(SandboxPodIndexes.ByOwnerUid(Pod()), Is.Empty);
        Assert.That(SandboxPodIndexes.ByOwnerUid(Pod(null, Owner(""))), Is.Empty, "an owner with no UID files nothing");
    }

    [Test]
    public void Only_an_unclaimed_warm_pod_is_filed_by_its_shape()
    {
        var warm = new Dictionary<string, string> { [SandboxPods.PoolLabel] = "pool", [SandboxPods.ShapeLabel] = "abc" };
        var claimed = new Dictionary<string, string> { [SandboxPods.ShapeLabel] = "abc" };
        var shapeless = new Dictionary<string, string> { [SandboxPods.PoolLabel] = "pool" };

        Assert.That(SandboxPodIndexes.ByWarmShape(Pod(warm)), Is.EqualTo(new[] { SandboxPodIndexes.WarmShapeValue("ns", "abc") }));
        Assert.That(SandboxPodIndexes.ByWarmShape(Pod(claimed)), Is.Empty, "a claimed pod has left its pool");
        Assert.That(SandboxPodIndexes.ByWarmShape(Pod(shapeless)), Is.Empty);
        Assert.That(SandboxPodIndexes.ByWarmShape(Pod()), Is.Empty);
    }

    [Test]
    public void The_indexes_are_added_once_whoever_adds_them()
    {
        var pods = new Informer<V1Pod>(new ListWatch<V1Pod>("pods", (_, _, _) => Task.FromResult(new ListPage<V1Pod>([], "1", null)),
            (_, _, _, _) => AsyncEnumerable.Empty<(k8s.WatchEventType, V1Pod)>()));
        SandboxPodIndexes.AddTo(pods);
        pods.AddIndex(Indexers.ControllerUid, Indexers.ByControllerUid);
        SandboxPodIndexes.AddTo(pods);

        Assert.That(pods.ByIndex(SandboxPodIndexes.OwnerUid, "x"), Is.Empty);
        Assert.That(pods.ByIndex(SandboxPodIndexes.WarmShape, "ns/abc"), Is.Empty);
        Assert.That(pods.ByIndex(Indexers.ControllerUid, "x"), Is.Empty);
    }
}
