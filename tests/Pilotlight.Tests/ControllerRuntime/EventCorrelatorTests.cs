using Microsoft.Extensions.Time.Testing;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Tests.ControllerRuntime;

/// <summary>How repeated events fold into Event objects (client-go's EventCorrelator rules).</summary>
public class EventCorrelatorTests
{
    private static EventCorrelator.Facts Facts(string reason = "Failed", string message = "boom", string name = "f", string type = "Warning") =>
        new("pilotlight-operator", $"uid-{name}", "GpuFunction", "ns", name, type, reason, message);

    [Test]
    public void Repeats_within_the_window_count_on_one_series_and_a_later_one_starts_another()
    {
        var time = new FakeTimeProvider();
        var correlator = new EventCorrelator(new EventRecorderOptions(), time);
        var first = correlator.Observe(Facts())!;
        for (var i = 0; i < 9; i++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            Assert.That(correlator.Observe(Facts()), Is.SameAs(first));
        }

        Assert.That(first.Count, Is.EqualTo(10));
        Assert.That(first.Last - first.First, Is.EqualTo(TimeSpan.FromMinutes(9)));

        time.Advance(TimeSpan.FromMinutes(11));
        var later = correlator.Observe(Facts())!;
        Assert.That(later, Is.Not.SameAs(first));
        Assert.That(later.Count, Is.EqualTo(1));
    }

    [Test]
    public void Different_reasons_types_and_objects_are_different_series()
    {
        var correlator = new EventCorrelator(new EventRecorderOptions(), new FakeTimeProvider());
        var series = new[]
        {
            correlator.Observe(Facts())!, correlator.Observe(Facts(reason: "Other"))!, correlator.Observe(Facts(type: "Normal"))!,
            correlator.Observe(Facts(name: "g"))!, correlator.Observe(Facts(message: "other"))!,
        };
        Assert.That(series.Distinct().Count(), Is.EqualTo(5));
    }

    [Test]
    public void Past_ten_distinct_messages_for_one_reason_the_rest_share_one_combined_series()
    {
        var correlator = new EventCorrelator(new EventRecorderOptions(), new FakeTimeProvider());
        var own = Enumerable.Range(0, 10).Select(i => correlator.Observe(Facts(message: $"m{i}"))!).ToList();
        Assert.That(own.Select(s => s.Message), Is.EqualTo(Enumerable.Range(0, 10).Select(i => $"m{i}")));

        var combined = correlator.Observe(Facts(message: "m10"))!;
        var again = correlator.Observe(Facts(message: "m11"))!;
        Assert.That(again, Is.SameAs(combined));
        Assert.That(again.Count, Is.EqualTo(2));
        Assert.That(again.Message, Is.EqualTo(EventCorrelator.CombinedPrefix + "m11"));
        Assert.That(correlator.Observe(Facts(message: "m3")), Is.SameAs(own[3]), "one of the first ten keeps its own Event");
    }

    [Test]
    public void The_rate_limit_allows_a_burst_then_one_per_interval_per_object()
    {
        var time = new FakeTimeProvider();
        var correlator = new EventCorrelator(new EventRecorderOptions(), time);
        var passed = Enumerable.Range(0, 30).Count(i => correlator.Observe(Facts(message: $"m{i % 3}")) is not null);
        Assert.That(passed, Is.EqualTo(25));
        Assert.That(correlator.Observe(Facts(name: "another")), Is.Not.Null, "the limit is per object");

        time.Advance(TimeSpan.FromMinutes(4));
        Assert.That(correlator.Observe(Facts()), Is.Null);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That(correlator.Observe(Facts()), Is.Not.Null, "one token after five minutes");
        Assert.That(correlator.Observe(Facts()), Is.Null);
    }

    [Test]
    public void State_is_bounded_least_recently_used_first_out()
    {
        var correlator = new EventCorrelator(new EventRecorderOptions { CacheSize = 2 }, new FakeTimeProvider());
        var a = correlator.Observe(Facts(name: "a"))!;
        correlator.Observe(Facts(name: "b"));
        Assert.That(correlator.Observe(Facts(name: "a")), Is.SameAs(a), "a is the most recent now");
        correlator.Observe(Facts(name: "c"));
        Assert.That(correlator.Observe(Facts(name: "a")), Is.SameAs(a));
        Assert.That(correlator.Observe(Facts(name: "b"))!.Count, Is.EqualTo(1), "b was evicted: a new series");
    }
}
