using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Tests.Operator.Usage;

public class UsageLedgerTests
{
    private static readonly DateTime T0 = new(2026, 11, 23, 12, 0, 0, DateTimeKind.Utc);
    private static readonly Dictionary<string, DateTime> NoneDeleted = [];

    private static V1Pod Pod(string uid, int gpus, DateTime start, DateTime? deleting = null, bool bound = true) => new()
    {
        Metadata = new V1ObjectMeta { Name = uid, Uid = uid, CreationTimestamp = start.AddSeconds(-1), DeletionTimestamp = deleting },
        Spec = new V1PodSpec
        {
            NodeName = bound ? "node" : null,
            Containers =
            [
                new V1Container
                {
                    Name = "function",
                    Resources = new V1ResourceRequirements { Limits = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new(gpus.ToString(System.Globalization.CultureInfo.InvariantCulture)) } },
                },
                new V1Container { Name = "runtime-shim" },
            ],
        },
        Status = new V1PodStatus { StartTime = start },
    };

    [TestCase(7, 1)]
    [TestCase(61, 2)]
    [TestCase(300, 8)]
    public void A_pod_of_known_lifetime_is_billed_gpus_times_seconds(int seconds, int gpus)
    {
        var pod = Pod("p", gpus, T0);
        var running = UsageLedger.Update(null, [pod], NoneDeleted, T0.AddSeconds(seconds / 2.0));
        var deleted = new Dictionary<string, DateTime> { ["p"] = T0.AddSeconds(seconds) };

        var final = UsageLedger.Update(running, [], deleted, T0.AddSeconds(seconds + 30));

        Assert.That(final.GpuSeconds, Is.EqualTo(gpus * seconds).Within(1e-6));
        Assert.That(final.OpenPods, Is.Empty);
    }

    [Test]
    public void A_terminating_pod_is_billed_until_it_is_gone_not_until_its_grace_deadline()
    {
        // Graceful deletion sets deletionTimestamp to a deadline 45 s ahead; the pod drains and goes after 12 s.
        var draining = UsageLedger.Update(null, [Pod("p", 2, T0, deleting: T0.AddSeconds(55))], NoneDeleted, T0.AddSeconds(12));
        Assert.That(draining.GpuSeconds, Is.EqualTo(24).Within(1e-6));

        var gone = UsageLedger.Update(draining, [], new Dictionary<string, DateTime> { ["p"] = T0.AddSeconds(22) }, T0.AddSeconds(30));
        Assert.That(gone.GpuSeconds, Is.EqualTo(44).Within(1e-6));
    }

    [Test]
    public void A_pod_that_vanished_unseen_is_billed_up_to_when_it_was_last_seen()
    {
        var seen = UsageLedger.Update(null, [Pod("p", 1, T0)], NoneDeleted, T0.AddSeconds(40));
        var later = UsageLedger.Update(seen, [], NoneDeleted, T0.AddSeconds(100));
        Assert.That(later.GpuSeconds, Is.EqualTo(40).Within(1e-6));
    }

    [Test]
    public void An_operator_restart_continues_from_status_and_never_goes_backwards()
    {
        var before = UsageLedger.Update(null, [Pod("a", 8, T0), Pod("b", 1, T0)], NoneDeleted, T0.AddSeconds(60));
        Assert.That(before.GpuSeconds, Is.EqualTo(540).Within(1e-6));

        // A new operator process knows only the status it reads back.
        var restarted = UsageLedger.Update(before, [Pod("a", 8, T0)], new Dictionary<string, DateTime> { ["b"] = T0.AddSeconds(70) }, T0.AddSeconds(90));
        Assert.That(restarted.GpuSeconds, Is.EqualTo((8 * 90) + 70).Within(1e-6));

        // Even a clock that stepped back does not lower the total.
        var skewed = UsageLedger.Update(restarted, [Pod("a", 8, T0)], NoneDeleted, T0.AddSeconds(80));
        Assert.That(skewed.GpuSeconds, Is.GreaterThanOrEqualTo(restarted.GpuSeconds));
    }

    [Test]
    public void Unscheduled_pods_hold_no_gpus_and_are_not_billed()
    {
        var totals = UsageLedger.Update(null, [Pod("p", 4, T0, bound: false)], NoneDeleted, T0.AddSeconds(100));
        Assert.That(totals.GpuSeconds, Is.Zero);
        Assert.That(totals.OpenPods, Is.Empty);
    }

    [Test]
    public void Closed_pods_are_reported_once_with_their_end()
    {
        var closed = new List<(string Uid, DateTime End)>();
        var open = UsageLedger.Update(null, [Pod("a", 1, T0), Pod("b", 2, T0)], NoneDeleted, T0.AddSeconds(10), (p, end) => closed.Add((p.Uid, end)));
        var after = UsageLedger.Update(open, [Pod("a", 1, T0)], new Dictionary<string, DateTime> { ["b"] = T0.AddSeconds(15) }, T0.AddSeconds(20), (p, end) => closed.Add((p.Uid, end)));
        UsageLedger.Update(after, [Pod("a", 1, T0)], NoneDeleted, T0.AddSeconds(30), (p, end) => closed.Add((p.Uid, end)));

        Assert.That(closed, Is.EqualTo(new[] { ("b", T0.AddSeconds(15)) }));
    }

    [Test]
    public void A_deletion_seen_before_the_last_totals_closes_at_those_totals()
    {
        // The previous reconcile read the pod from the cache at 20 s, though the API had deleted it at 19.98 s.
        var closed = new List<(string Uid, DateTime End)>();
        var open = UsageLedger.Update(null, [Pod("p", 2, T0)], NoneDeleted, T0.AddSeconds(20));
        var after = UsageLedger.Update(open, [], new Dictionary<string, DateTime> { ["p"] = T0.AddSeconds(19.98) }, T0.AddSeconds(21),
            (p, end) => closed.Add((p.Uid, end)));

        Assert.That(closed, Is.EqualTo(new[] { ("p", T0.AddSeconds(20)) }), "the journal's interval matches what status already billed");
        Assert.That(after.ClosedGpuSeconds, Is.EqualTo(40).Within(1e-9));
        Assert.That(after.GpuSeconds, Is.EqualTo(open.GpuSeconds));
    }

    private static V1Pod SandboxPod(string uid, int gpus, DateTime start) => new()
    {
        Metadata = new V1ObjectMeta { Name = uid, Uid = uid, CreationTimestamp = start.AddSeconds(-1) },
        Spec = new V1PodSpec
        {
            NodeName = "node",
            Containers =
            [
                new V1Container
                {
                    Name = "sandbox",
                    Resources = new V1ResourceRequirements
                    {
                        // Requests equal limits; the GPU is a limit only.
                        Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("1500m"), ["memory"] = new("2Gi") },
                        Limits = new Dictionary<string, ResourceQuantity>
                        {
                            ["cpu"] = new("1500m"), ["memory"] = new("2Gi"),
                            ["nvidia.com/gpu"] = new(gpus.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                        },
                    },
                },
                new V1Container
                {
                    // Limits only: the API server makes them the requests.
                    Name = "metering",
                    Resources = new V1ResourceRequirements { Limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("500m"), ["memory"] = new("1Gi") } },
                },
            ],
        },
        Status = new V1PodStatus { StartTime = start },
    };

    [Test]
    public void Cpu_and_memory_requests_are_billed_times_lifetime_alongside_gpus()
    {
        var running = UsageLedger.Update(null, [SandboxPod("s", 2, T0)], NoneDeleted, T0.AddSeconds(10));
        Assert.Multiple(() =>
        {
            Assert.That(running.OpenPods!.Single().Cpu, Is.EqualTo(2.0), "1.5 cores requested plus 0.5 limited");
            Assert.That(running.OpenPods!.Single().MemoryBytes, Is.EqualTo(3.0 * 1024 * 1024 * 1024));
            Assert.That(running.GpuSeconds, Is.EqualTo(20).Within(1e-6));
            Assert.That(running.CpuSeconds, Is.EqualTo(20).Within(1e-6));
            Assert.That(running.MemoryByteSeconds, Is.EqualTo(30.0 * 1024 * 1024 * 1024).Within(1));
        });

        var gone = UsageLedger.Update(running, [], new Dictionary<string, DateTime> { ["s"] = T0.AddSeconds(25) }, T0.AddSeconds(40));
        Assert.Multiple(() =>
        {
            Assert.That(gone.GpuSeconds, Is.EqualTo(50).Within(1e-6), "closed at its deletion, not at the next reconcile");
            Assert.That(gone.ClosedCpuSeconds, Is.EqualTo(50).Within(1e-6));
            Assert.That(gone.CpuSeconds, Is.EqualTo(50).Within(1e-6));
            Assert.That(gone.ClosedMemoryByteSeconds, Is.EqualTo(75.0 * 1024 * 1024 * 1024).Within(1));
            Assert.That(gone.MemoryByteSeconds, Is.EqualTo(gone.ClosedMemoryByteSeconds).Within(1));
        });
    }

    [Test]
    public void A_warm_pod_claimed_by_a_sandbox_is_billed_only_from_the_sandbox_s_creation()
    {
        // The pool started the pod 5 minutes before the sandbox that claimed it existed.
        var created = T0.AddMinutes(5);
        var totals = UsageLedger.Update(null, [SandboxPod("w", 1, T0)], NoneDeleted, created.AddSeconds(30), notBefore: created);
        Assert.That(totals.OpenPods!.Single().Start, Is.EqualTo(created));
        Assert.That(totals.GpuSeconds, Is.EqualTo(30).Within(1e-6));

        // A pod started after the sandbox's creation is billed from its own start.
        var own = UsageLedger.Update(null, [SandboxPod("o", 1, T0)], NoneDeleted, T0.AddSeconds(30), notBefore: T0.AddSeconds(-5));
        Assert.That(own.OpenPods!.Single().Start, Is.EqualTo(T0));
    }

    [Test]
    public void A_sandbox_s_bill_survives_a_restart_and_its_pod_s_deletion_while_no_operator_ran()
    {
        // Last written at 60 s; the pod went at some time unseen while no operator ran; the new one reads status back at 300 s.
        var before = UsageLedger.Update(null, [SandboxPod("s", 4, T0)], NoneDeleted, T0.AddSeconds(60), notBefore: T0);
        var closed = new List<(string Uid, DateTime End)>();
        var after = UsageLedger.Update(before, [], NoneDeleted, T0.AddSeconds(300), (p, end) => closed.Add((p.Uid, end)), notBefore: T0);

        Assert.That(closed, Is.EqualTo(new[] { ("s", T0.AddSeconds(60)) }), "billed up to when it was last seen, never past it");
        Assert.That(after.GpuSeconds, Is.EqualTo(240).Within(1e-6));
        Assert.That(after.CpuSeconds, Is.EqualTo(before.CpuSeconds).Within(1e-6));
        Assert.That(after.OpenPods, Is.Empty);
    }

    [Test]
    public void Status_totals_are_rewritten_only_when_a_pod_opens_or_closes_or_they_are_old()
    {
        var interval = TimeSpan.FromMinutes(5);
        var written = UsageLedger.Update(null, [Pod("a", 1, T0)], NoneDeleted, T0.AddSeconds(10));

        // Time alone: the running totals grow, but nothing anyone could not compute from openPods and asOf.
        var later = UsageLedger.Update(written, [Pod("a", 1, T0)], NoneDeleted, T0.AddMinutes(4));
        Assert.That(later.GpuSeconds, Is.GreaterThan(written.GpuSeconds));
        Assert.That(UsageLedger.Worth(written, later, interval), Is.False, "four minutes of the same pod");
        Assert.That(UsageLedger.Worth(written, UsageLedger.Update(written, [Pod("a", 1, T0)], NoneDeleted, T0.AddSeconds(10) + interval), interval),
            Is.True, "written totals as old as the interval");

        // A pod opens (bound to a node), or one closes.
        Assert.That(UsageLedger.Worth(written, UsageLedger.Update(written, [Pod("a", 1, T0), Pod("b", 2, T0.AddMinutes(1))], NoneDeleted, T0.AddMinutes(1)), interval),
            Is.True, "a second pod opened");
        Assert.That(UsageLedger.Worth(written, UsageLedger.Update(written, [Pod("a", 1, T0), Pod("b", 2, T0.AddMinutes(1), bound: false)], NoneDeleted, T0.AddMinutes(1)), interval),
            Is.False, "a pod not yet bound to a node bills nothing yet");
        Assert.That(UsageLedger.Worth(written, UsageLedger.Update(written, [], new Dictionary<string, DateTime> { ["a"] = T0.AddMinutes(1) }, T0.AddMinutes(1)), interval),
            Is.True, "the pod closed");
        Assert.That(UsageLedger.Worth(null, written, interval), Is.True, "nothing written yet");
    }
}
