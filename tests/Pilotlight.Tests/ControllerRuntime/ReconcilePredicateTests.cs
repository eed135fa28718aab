using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Tests.ControllerRuntime;

public class ReconcilePredicateTests
{
    private static GpuFunction Fn(long generation, Action<V1ObjectMeta>? change = null)
    {
        var meta = new V1ObjectMeta { Name = "f", NamespaceProperty = "ns", Generation = generation, ResourceVersion = "1" };
        change?.Invoke(meta);
        return new GpuFunction { Metadata = meta };
    }

    private static bool Should(GpuFunction old, GpuFunction now) =>
        Controller<GpuFunction>.ShouldReconcile(new InformerEvent<GpuFunction>(WatchEventType.Modified, old, now));

    [Test]
    public void A_status_only_write_does_not_reconcile() =>
        Assert.That(Should(Fn(3), Fn(3, m => m.ResourceVersion = "2")), Is.False);

    [Test]
    public void A_spec_change_reconciles() => Assert.That(Should(Fn(3), Fn(4)), Is.True);

    [Test]
    public void Deletion_labels_annotations_and_finalizers_reconcile()
    {
        Assert.That(Should(Fn(3), Fn(3, m => m.DeletionTimestamp = DateTime.UtcNow)), Is.True);
        Assert.That(Should(Fn(3), Fn(3, m => m.Labels = new Dictionary<string, string> { ["a"] = "b" })), Is.True);
        Assert.That(Should(Fn(3, m => m.Labels = new Dictionary<string, string> { ["a"] = "b" }),
            Fn(3, m => m.Labels = new Dictionary<string, string> { ["a"] = "c" })), Is.True);
        Assert.That(Should(Fn(3), Fn(3, m => m.Annotations = new Dictionary<string, string> { ["a"] = "b" })), Is.True);
        Assert.That(Should(Fn(3), Fn(3, m => m.Finalizers = ["x"])), Is.True);
    }

    [Test]
    public void Additions_deletions_and_kinds_without_generation_always_reconcile()
    {
        Assert.That(Controller<GpuFunction>.ShouldReconcile(new InformerEvent<GpuFunction>(WatchEventType.Added, null, Fn(1))), Is.True);
        Assert.That(Controller<GpuFunction>.ShouldReconcile(new InformerEvent<GpuFunction>(WatchEventType.Deleted, Fn(1), Fn(1))), Is.True);
        Assert.That(Should(Fn(1, m => m.Generation = null), Fn(1, m => m.Generation = null)), Is.True);
    }
}
