using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Usage;

namespace Pilotlight.Tests.Operator.Usage;

public class UsageQueryTests
{
    private static readonly DateTime T0 = new(2026, 11, 23, 12, 0, 0, DateTimeKind.Utc);

    [Test]
    public void Each_second_holds_the_gpus_held_in_it_split_at_pod_edges()
    {
        var report = UsageQuery.Build("ns", "fn", T0, T0.AddSeconds(5),
        [
            (T0.AddSeconds(0.5), T0.AddSeconds(3), 2),
            (T0.AddSeconds(2), T0.AddSeconds(10), 1),
        ]);

        Assert.That(report.Seconds.Select(p => p.GpuSeconds), Is.EqualTo(new[] { 1.0, 2.0, 3.0, 1.0, 1.0 }));
        Assert.That(report.GpuSeconds, Is.EqualTo(8.0));
        Assert.That(report.Seconds[3].At, Is.EqualTo(T0.AddSeconds(3)));
    }

    [Test]
    public void Intervals_are_clipped_to_the_window()
    {
        var report = UsageQuery.Build("ns", "fn", T0, T0.AddSeconds(2), [(T0.AddHours(-1), T0.AddHours(1), 8)]);
        Assert.That(report.GpuSeconds, Is.EqualTo(16.0));
        Assert.That(report.Seconds, Has.Count.EqualTo(2));
    }

    [Test]
    public void Empty_inverted_and_oversized_windows_are_refused()
    {
        Assert.That(() => UsageQuery.Build("ns", "fn", T0, T0, []), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => UsageQuery.Build("ns", "fn", T0, T0.AddSeconds(-1), []), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => UsageQuery.Build("ns", "fn", T0, T0.AddDays(2), []), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void The_journal_records_a_pod_once_persists_and_skips_unreadable_lines()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("pilotlight-journal-").FullName, "usage.jsonl");
        var pod = new ClosedPod { Namespace = "ns", Name = "fn", Uid = "u1", Gpus = 2, Start = T0, End = T0.AddSeconds(61) };
        var journal = new UsageJournal(path);
        journal.Record(pod);
        journal.Record(pod);
        File.AppendAllText(path, "{torn line\n");

        var reloaded = new UsageJournal(path);

        Assert.That(File.ReadAllLines(path), Has.Length.EqualTo(2), "one record and the torn line");
        Assert.That(reloaded.SkippedLines, Is.EqualTo(1));
        Assert.That(reloaded.Of("ns", "fn", T0, T0.AddMinutes(5)).Single(), Is.EqualTo(pod));
        Assert.That(reloaded.Of("ns", "fn", T0.AddSeconds(61), T0.AddMinutes(5)), Is.Empty, "ends before the window");
        Assert.That(reloaded.Of("ns", "other", T0, T0.AddMinutes(5)), Is.Empty);
    }

    [Test]
    public void A_sandbox_s_pods_are_kept_apart_from_a_function_of_the_same_name_and_old_lines_read_as_functions()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("pilotlight-journal-").FullName, "usage.jsonl");
        // A line written before sandboxes were billed: no kind.
        File.WriteAllText(path, """{"namespace":"ns","function":"x","uid":"f1","gpus":1,"start":"2026-11-23T12:00:00Z","end":"2026-11-23T12:00:10Z"}""" + "\n");
        var journal = new UsageJournal(path);
        journal.Record(new ClosedPod { Namespace = "ns", Kind = Sandbox.KindName, Name = "x", Uid = "s1", Gpus = 2, Start = T0, End = T0.AddSeconds(5) });

        var reloaded = new UsageJournal(path);
        Assert.That(reloaded.SkippedLines, Is.Zero);
        Assert.That(reloaded.Of("ns", "x", T0, T0.AddMinutes(1)).Select(p => p.Uid), Is.EqualTo(new[] { "f1" }));
        Assert.That(reloaded.Of("ns", "x", T0, T0.AddMinutes(1), Sandbox.KindName).Select(p => p.Uid), Is.EqualTo(new[] { "s1" }));
    }
}

public class UsageApiTests
{
    // Only inputs refused before the API server is asked: no client is needed.
    private static readonly UsageApi Api = new(null!, new UsageJournal(), TimeProvider.System);

    [TestCase(null, "fn", null, null, "namespace and function are required")]
    [TestCase("ns", "fn", "yesterday", null, "RFC 3339")]
    [TestCase("ns", "fn", "2026-11-23T12:00:00Z", "2026-11-23T11:00:00Z", "window must be positive")]
    [TestCase("ns", "fn", "2026-11-20T12:00:00Z", "2026-11-23T12:00:00Z", "at most 24 h")]
    public async Task Bad_queries_get_400_with_the_reason(string? ns, string? fn, string? from, string? to, string reason)
    {
        var (report, error, status) = await Api.QueryAsync(ns, fn, from, to, CancellationToken.None);
        Assert.That(report, Is.Null);
        Assert.That(status, Is.EqualTo(400));
        Assert.That(error, Does.Contain(reason));
    }

    [TestCase("Sandbox", "ns", null, "namespace and sandbox are required")]
    [TestCase("SandboxWarmPool", "ns", "pool", "not SandboxWarmPool")]
    public async Task Bad_sandbox_queries_get_400_with_the_reason(string kind, string? ns, string? name, string reason)
    {
        var (report, error, status) = await Api.QueryAsync(kind, ns, name, null, null, CancellationToken.None);
        Assert.That(report, Is.Null);
        Assert.That(status, Is.EqualTo(400));
        Assert.That(error, Does.Contain(reason));
    }
}
