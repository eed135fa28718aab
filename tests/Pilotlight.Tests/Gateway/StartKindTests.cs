using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public class StartKindTests
{
    private static readonly DateTimeOffset Arrived = new(2026, 12, 1, 10, 0, 30, 700, TimeSpan.Zero);

    [Test]
    public void A_pod_serving_at_arrival_is_a_ready_start_however_old()
    {
        Assert.That(StartKinds.Classify(true, Arrived, Arrived.AddHours(-1), Arrived.AddHours(-1)), Is.EqualTo(StartKind.Ready));
    }

    [Test]
    public void A_pod_created_after_arrival_is_a_cold_start()
    {
        Assert.That(StartKinds.Classify(false, Arrived, Arrived.AddSeconds(1), Arrived.AddSeconds(9)), Is.EqualTo(StartKind.Cold));
    }

    [Test]
    public void A_pod_that_was_still_starting_at_arrival_is_a_cold_start()
    {
        // Created for an earlier request, Ready only after this one arrived (or only in the gateway's own probe).
        Assert.That(StartKinds.Classify(false, Arrived, Arrived.AddSeconds(-3), Arrived.AddSeconds(5)), Is.EqualTo(StartKind.Cold));
        Assert.That(StartKinds.Classify(false, Arrived, Arrived.AddSeconds(-3), null), Is.EqualTo(StartKind.Cold));
    }

    [Test]
    public void A_standby_ready_before_arrival_and_claimed_for_the_request_is_a_warm_start()
    {
        Assert.That(StartKinds.Classify(false, Arrived, Arrived.AddMinutes(-5), Arrived.AddMinutes(-4)), Is.EqualTo(StartKind.Warm));
    }

    [Test]
    public void Readiness_within_the_apis_one_second_resolution_of_arrival_counts_as_cold()
    {
        // The API truncates to whole seconds: 10:00:30 may mean 10:00:30.9, after the arrival at 10:00:30.7.
        var truncated = new DateTimeOffset(2026, 12, 1, 10, 0, 30, TimeSpan.Zero);
        Assert.That(StartKinds.Classify(false, Arrived, truncated.AddSeconds(-2), truncated), Is.EqualTo(StartKind.Cold));
    }

    [Test]
    public void Header_values_are_cold_warm_and_ready()
    {
        Assert.That(Enum.GetValues<StartKind>().Select(k => k.Value()), Is.EquivalentTo(new[] { "cold", "warm", "ready" }));
    }
}
