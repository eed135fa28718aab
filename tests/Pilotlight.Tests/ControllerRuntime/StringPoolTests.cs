using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;

namespace Pilotlight.Tests.ControllerRuntime;

/// <summary>The operator's cache transform: repeated strings shared, nothing a consumer reads changed.</summary>
public sealed class StringPoolTests
{
    private static GpuFunction Function(string name) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name, NamespaceProperty = "team-a", Uid = $"uid-{name}", ResourceVersion = "7",
            Labels = new Dictionary<string, string> { ["app"] = "llm", ["tier"] = "gpu" },
            Annotations = new Dictionary<string, string> { ["note"] = $"about {name}" },
            ManagedFields = [new V1ManagedFieldsEntry { Manager = "kubectl", Operation = "Apply" }],
        },
        Spec = new GpuFunctionSpec { Image = "example/llm:1" },
        Status = new GpuFunctionStatus
        {
            ObservedGeneration = 1,
            Conditions =
            [
                new V1Condition { Type = "Ready", Status = "True", Reason = "ScaledToZero", Message = "no replicas wanted", LastTransitionTime = new DateTime(2026, 12, 3, 0, 0, 0, DateTimeKind.Utc) },
            ],
        },
    };

    /// <summary>As an informer gets it: a fresh deserialised copy, every string its own instance.</summary>
    private static GpuFunction FromServer(GpuFunction f) => KubernetesJson.Deserialize<GpuFunction>(KubernetesJson.Serialize(f));

    [Test]
    public void Objects_from_the_server_share_their_repeated_strings_and_keep_every_value()
    {
        var transform = PilotlightOperator.PooledTransform(new StringPool());
        var a = FromServer(Function("a"));
        var b = FromServer(Function("b"));
        Assert.That(a.Metadata.NamespaceProperty, Is.Not.SameAs(b.Metadata.NamespaceProperty), "deserialised: copies");

        var unpooled = Function("a");
        unpooled.Metadata.ManagedFields = null;
        var expectedA = KubernetesJson.Serialize(FromServer(unpooled));
        a = (GpuFunction)transform(a);
        b = (GpuFunction)transform(b);

        Assert.That(KubernetesJson.Serialize(a), Is.EqualTo(expectedA), "same values, managedFields aside");
        Assert.That(a.Metadata.ManagedFields, Is.Null);
        Assert.That(a.Metadata.NamespaceProperty, Is.SameAs(b.Metadata.NamespaceProperty));
        Assert.That(a.ApiVersion, Is.SameAs(b.ApiVersion));
        Assert.That(a.Kind, Is.SameAs(b.Kind));
        Assert.That(a.Metadata.Labels["app"], Is.SameAs(b.Metadata.Labels["app"]));
        Assert.That(a.Metadata.Labels.Keys.First(), Is.SameAs(b.Metadata.Labels.Keys.First()));
        Assert.That(a.Metadata.Annotations["note"], Is.EqualTo("about a"), "annotation values are kept as they are");
        var (ca, cb) = (a.Status!.Conditions![0], b.Status!.Conditions![0]);
        Assert.That(ca.Type, Is.SameAs(cb.Type));
        Assert.That(ca.Status, Is.SameAs(cb.Status));
        Assert.That(ca.Reason, Is.SameAs(cb.Reason));
        Assert.That(ca.Message, Is.SameAs(cb.Message));
        Assert.That(a.Metadata.Uid, Is.Not.EqualTo(b.Metadata.Uid), "unique values are not pooled (nor changed)");
    }

    [Test]
    public void A_full_pool_keeps_new_strings_as_they_are()
    {
        var pool = new StringPool(capacity: 2, maxLength: 8);
        var first = pool.Get(new string('a', 3));
        Assert.That(pool.Get(new string('a', 3)), Is.SameAs(first));
        pool.Get("b");
        var third = new string('c', 3);
        Assert.That(pool.Get(third), Is.SameAs(third), "past capacity: not added");
        Assert.That(pool.Count, Is.EqualTo(2));
        var longer = new string('d', 9);
        Assert.That(pool.Get(longer), Is.SameAs(longer), "longer than maxLength: not pooled");
        Assert.That(pool.Get(null), Is.Null);
    }
}
