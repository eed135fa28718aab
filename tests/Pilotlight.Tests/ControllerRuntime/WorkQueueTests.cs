using Microsoft.Extensions.Time.Testing;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Tests.ControllerRuntime;

public class WorkQueueTests
{
    private static readonly Backoff NoJitter = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), Jitter: 0);

    private static async Task<string?> TryTakeAsync(WorkQueue<string> queue)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        try
        {
            return await queue.TakeAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    [Test]
    public async Task Duplicate_adds_are_merged()
    {
        using var queue = new WorkQueue<string>(new FakeTimeProvider(), NoJitter);
        queue.Add("a");
        queue.Add("a");
        queue.Add("b");
        queue.Add("a");

        Assert.That(queue.Depth, Is.EqualTo(2));
        Assert.That(await queue.TakeAsync(CancellationToken.None), Is.EqualTo("a"));
        Assert.That(await queue.TakeAsync(CancellationToken.None), Is.EqualTo("b"));
        Assert.That(await TryTakeAsync(queue), Is.Null);
    }

    [Test]
    public async Task A_key_in_flight_is_not_handed_out_again_until_done_then_requeued_once()
    {
        using var queue = new WorkQueue<string>(new FakeTimeProvider(), NoJitter);
        queue.Add("a");
        var key = await queue.TakeAsync(CancellationToken.None);

        queue.Add("a");
        queue.Add("a");
        Assert.That(await TryTakeAsync(queue), Is.Null, "the key is in flight");

        queue.Done(key);
        Assert.That(await queue.TakeAsync(CancellationToken.None), Is.EqualTo("a"));
        queue.Done("a");
        Assert.That(await TryTakeAsync(queue), Is.Null, "two adds while in flight make one more reconcile");
    }

    [Test]
    public async Task AddAfter_waits_for_the_injected_clock()
    {
        var time = new FakeTimeProvider();
        using var queue = new WorkQueue<string>(time, NoJitter);
        queue.AddAfter("a", TimeSpan.FromSeconds(10));

        time.Advance(TimeSpan.FromSeconds(9));
        Assert.That(queue.Depth, Is.Zero);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(queue.Depth, Is.EqualTo(1));
        Assert.That(await queue.TakeAsync(CancellationToken.None), Is.EqualTo("a"));
    }

    [Test]
    public void The_earlier_of_two_delayed_adds_wins()
    {
        var time = new FakeTimeProvider();
        using var queue = new WorkQueue<string>(time, NoJitter);
        queue.AddAfter("a", TimeSpan.FromSeconds(30));
        queue.AddAfter("a", TimeSpan.FromSeconds(5));
        queue.AddAfter("a", TimeSpan.FromSeconds(20));

        time.Advance(TimeSpan.FromSeconds(5));
        Assert.That(queue.Depth, Is.EqualTo(1));
    }

    [Test]
    public void An_immediate_add_cancels_a_pending_delayed_one()
    {
        var time = new FakeTimeProvider();
        using var queue = new WorkQueue<string>(time, NoJitter);
        queue.AddAfter("a", TimeSpan.FromSeconds(5));
        queue.Add("a");
        Assert.That(queue.Depth, Is.EqualTo(1));
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.That(queue.Depth, Is.EqualTo(1));
    }

    [Test]
    public void Failures_back_off_exponentially_and_forget_resets()
    {
        var time = new FakeTimeProvider();
        using var queue = new WorkQueue<string>(time, NoJitter);
        var delays = Enumerable.Range(0, 7).Select(_ => queue.AddRateLimited("a")).ToList();

        Assert.That(delays.Select(d => d.TotalSeconds), Is.EqualTo(new double[] { 1, 2, 4, 8, 16, 30, 30 }));
        Assert.That(queue.Failures("a"), Is.EqualTo(7));
        queue.Forget("a");
        Assert.That(queue.AddRateLimited("a"), Is.EqualTo(TimeSpan.FromSeconds(1)));
    }

    [Test]
    public async Task Shutdown_ends_takers_and_drops_timers()
    {
        var time = new FakeTimeProvider();
        var queue = new WorkQueue<string>(time, NoJitter);
        var taker = queue.TakeAsync(CancellationToken.None).AsTask();
        queue.AddAfter("a", TimeSpan.FromSeconds(1));
        queue.ShutDown();

        Assert.That(async () => await taker, Throws.InstanceOf<System.Threading.Channels.ChannelClosedException>());
        time.Advance(TimeSpan.FromSeconds(1));
        queue.Add("b");
        Assert.That(queue.Depth, Is.Zero);
        await Task.CompletedTask;
    }
}

public class BackoffTests
{
    [Test]
    public void Jitter_stays_within_its_fraction_below_the_capped_delay()
    {
        var backoff = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1), Jitter: 0.5, Random: new Random(7));
        for (var failures = 0; failures < 12; failures++)
        {
            var raw = Math.Min(100 * Math.Pow(2, failures), 1000);
            var delay = backoff.Delay(failures).TotalMilliseconds;
            Assert.That(delay, Is.InRange(raw * 0.5, raw), $"attempt {failures}");
        }
    }

    [Test]
    public void Seeded_randomness_makes_delays_repeatable()
    {
        var a = new Backoff(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1), Random: new Random(42));
        var b = new Backoff(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1), Random: new Random(42));
        Assert.That(Enumerable.Range(0, 5).Select(a.Delay), Is.EqualTo(Enumerable.Range(0, 5).Select(b.Delay)));
    }

    [Test]
    public void Huge_failure_counts_do_not_overflow()
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5), Jitter: 0);
        Assert.That(backoff.Delay(int.MaxValue), Is.EqualTo(TimeSpan.FromMinutes(5)));
    }
}
