using k8s;
using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Tests.Operator.Usage;

/// <summary>
/// The tracker between the ledger and the live GPU-seconds series: what the series exported up to a scrape, the ledger
/// must not bill less of when the pod closes.
/// </summary>
public class PodUsageTrackerTests
{
    private static readonly DateTime T0 = new(2026, 12, 3, 12, 0, 0, DateTimeKind.Utc);
    private static readonly ObjectKey Key = new("ns", "billed");

    private static V1Pod Pod(string uid) => new()
    {
        Metadata = new V1ObjectMeta { Name = uid, NamespaceProperty = "ns", Uid = uid, CreationTimestamp = T0 },
        Spec = new V1PodSpec
        {
            NodeName = "node",
            Containers =
            [
                new V1Container
                {
                    Name = "function",
                    Resources = new V1ResourceRequirements { Limits = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new("1") } },
                },
            ],
        },
        Status = new V1PodStatus { StartTime = T0 },
    };

    private static PodUsageTracker Tracker(List<(string Uid, DateTime End)> closed)
    {
        // Never run: the test plays the moment between the informer dropping a pod from its cache and its handlers
        // hearing of it, so no Deleted event reaches the tracker.
        var pods = new Informer<V1Pod>(new ListWatch<V1Pod>("pods",
            (_, _, _) => Task.FromResult(new ListPage<V1Pod>([], "1", null)),
            (_, _, _, _) => AsyncEnumerable.Empty<(WatchEventType, V1Pod)>()));
        return new PodUsageTracker(pods, new FakeTimeProvider(T0), (_, pod, end) => closed.Add((pod.Uid, end)));
    }

    [Test]
    public void A_pod_gone_from_the_cache_before_its_deletion_is_heard_is_billed_no_less_than_the_series_exported()
    {
        var closed = new List<(string Uid, DateTime End)>();
        var tracker = Tracker(closed);
        var written = tracker.Update(Key, null, [Pod("p")], T0.AddSeconds(10));

        // Scrapes carry the open pod on to their own time.
        var exported = tracker.LiveGpuSeconds(T0.AddSeconds(50)).Single().GpuSeconds;
        Assert.That(exported, Is.EqualTo(50).Within(1e-6));

        // A reconcile 60 s in reads the cache after the pod left it; status still has the totals of 10 s.
        var final = tracker.Update(Key, written, [], T0.AddSeconds(60));

        Assert.Multiple(() =>
        {
            Assert.That(final.OpenPods, Is.Empty);
            Assert.That(final.GpuSeconds, Is.GreaterThanOrEqualTo(exported), "never less than the series already exported");
            Assert.That(final.GpuSeconds, Is.EqualTo(60).Within(1e-3), "billed to when the reconcile found it gone");
            Assert.That(closed, Is.EqualTo(new[] { ("p", T0.AddSeconds(60)) }));
            Assert.That(tracker.LiveGpuSeconds(T0.AddSeconds(90)).Single().GpuSeconds, Is.EqualTo(final.GpuSeconds).Within(1e-6),
                "the series stops where the ledger closed");
        });
    }

    [Test]
    public void A_pod_this_replica_never_saw_open_is_billed_to_the_last_written_totals_when_its_deletion_was_missed()
    {
        // A new leader (or a restarted operator) whose status says the pod was open 10 s in, and the pod is gone with no
        // deletion heard: when it went is unknown, and nothing was exported for it here, so the totals stand as written.
        var closed = new List<(string Uid, DateTime End)>();
        var before = Tracker([]).Update(Key, null, [Pod("p")], T0.AddSeconds(10));
        var tracker = Tracker(closed);

        var final = tracker.Update(Key, before, [], T0.AddSeconds(600));

        Assert.That(final.GpuSeconds, Is.EqualTo(10).Within(1e-3));
        Assert.That(closed, Is.EqualTo(new[] { ("p", T0.AddSeconds(10)) }));
    }
}
