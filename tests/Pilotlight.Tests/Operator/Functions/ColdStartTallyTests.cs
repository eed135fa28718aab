using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Operator.Functions;

/// <summary>status.coldStarts from per-gateway counts: deltas per gateway process, never a count taken twice.</summary>
public sealed class ColdStartTallyTests
{
    private static ColdStartSource S(string gateway, long count) => new() { Gateway = gateway, Count = count };

    [Test]
    public void Counts_of_two_gateways_add_up()
    {
        var (total, sources) = ColdStartTally.Take(0, null, [S("a", 2), S("b", 3)]);
        Assert.That(total, Is.EqualTo(5));
        Assert.That(sources, Is.EqualTo(new[] { S("a", 2), S("b", 3) }));
    }

    [Test]
    public void The_same_report_taken_again_adds_nothing()
    {
        var first = ColdStartTally.Take(0, null, [S("a", 2)]);
        var again = ColdStartTally.Take(first.Total, first.Sources, [S("a", 2)]);
        Assert.That((again.Total, again.Sources), Is.EqualTo((2L, first.Sources)).Using<(long, IReadOnlyList<ColdStartSource>)>(
            (x, y) => x.Item1 == y.Item1 && x.Item2.SequenceEqual(y.Item2)));
    }

    [Test]
    public void Only_what_a_gateway_counted_since_it_was_last_taken_is_added()
    {
        var (total, sources) = ColdStartTally.Take(10, [S("a", 4)], [S("a", 7)]);
        Assert.That(total, Is.EqualTo(13));
        Assert.That(sources.Single(), Is.EqualTo(S("a", 7)));
    }

    [Test]
    public void A_stale_status_gives_the_same_total_as_the_fresh_one()
    {
        // The reconciler may start from a cached status older than its own last write: the total and the counts
        // taken travel together, so the result is the same either way.
        var older = ColdStartTally.Take(0, null, [S("a", 1)]);
        var newer = ColdStartTally.Take(older.Total, older.Sources, [S("a", 3), S("b", 1)]);
        var fromOlder = ColdStartTally.Take(older.Total, older.Sources, [S("a", 5), S("b", 2)]);
        var fromNewer = ColdStartTally.Take(newer.Total, newer.Sources, [S("a", 5), S("b", 2)]);
        Assert.That(fromOlder.Total, Is.EqualTo(fromNewer.Total).And.EqualTo(7));
        Assert.That(fromOlder.Sources, Is.EqualTo(fromNewer.Sources));
    }

    [Test]
    public void A_restarted_gateway_counts_from_zero_under_a_new_epoch_and_only_adds()
    {
        var before = ColdStartTally.Take(0, null, [S("a-1", 6)]);
        var (total, sources) = ColdStartTally.Take(before.Total, before.Sources, [S("a-2", 1)]);
        Assert.That(total, Is.EqualTo(7), "the old process's 6 stay counted; the new one adds its 1");
        Assert.That(sources, Is.EqualTo(new[] { S("a-1", 6), S("a-2", 1) }), "the old process is kept: it may still be out of the Endpoints only");
    }

    [Test]
    public void A_gateway_absent_from_a_report_keeps_its_count_and_is_not_counted_again_when_back()
    {
        var first = ColdStartTally.Take(0, null, [S("a", 3), S("b", 2)]);
        var without = ColdStartTally.Take(first.Total, first.Sources, [S("b", 2)]);
        var back = ColdStartTally.Take(without.Total, without.Sources, [S("a", 3), S("b", 2)]);
        Assert.That((without.Total, back.Total), Is.EqualTo((5L, 5L)));
    }

    [Test]
    public void A_count_below_the_one_taken_adds_nothing_until_it_passes_it()
    {
        var dropped = ColdStartTally.Take(5, [S("a", 5)], [S("a", 1)]);
        Assert.That((dropped.Total, dropped.Sources.Single().Count), Is.EqualTo((5L, 5L)));
        var passed = ColdStartTally.Take(dropped.Total, dropped.Sources, [S("a", 6)]);
        Assert.That(passed.Total, Is.EqualTo(6));
    }

    [Test]
    public void Gone_gateways_are_kept_up_to_the_bound_the_oldest_dropped_first_and_reporting_ones_always()
    {
        var sources = Enumerable.Range(0, ColdStartTally.KeptSources + 5).Select(i => S($"old-{i}", 1)).ToList();
        var (total, kept) = ColdStartTally.Take(sources.Count, sources, [S("old-0", 1), S("new", 1)]);
        Assert.That(total, Is.EqualTo(sources.Count + 1));
        Assert.That(kept.Select(s => s.Gateway), Does.Contain("old-0").And.Contain("new"), "reporting now: kept");
        Assert.That(kept.Count(s => s.Gateway != "old-0" && s.Gateway != "new"), Is.EqualTo(ColdStartTally.KeptSources));
        Assert.That(kept.Select(s => s.Gateway), Does.Not.Contain("old-1"), "the oldest absent one went first");
        Assert.That(kept.Select(s => s.Gateway), Does.Contain($"old-{sources.Count - 1}"));
    }

    [Test]
    public void A_changed_total_is_due_at_once_after_a_quiet_spell_then_at_most_once_per_interval()
    {
        var now = new DateTimeOffset(2026, 12, 3, 9, 0, 0, TimeSpan.Zero);
        var interval = TimeSpan.FromSeconds(10);
        Assert.That(ColdStartTally.Due(null, now, interval), Is.True, "never written by this process");
        Assert.That(ColdStartTally.Due(now.AddSeconds(-3), now, interval), Is.False);
        Assert.That(ColdStartTally.Due(now.AddSeconds(-10), now, interval), Is.True);
    }
}
