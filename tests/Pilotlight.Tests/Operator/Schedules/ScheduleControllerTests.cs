using System.Runtime.CompilerServices;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Tests.Operator.Schedules;

/// <summary>
/// The schedule loop with a fake API server (a store with resourceVersions and
/// conflicts) and a fake gateway: each tick is sent once, across a leader
/// change, a restart between claim and answer, and racing status writes.
/// </summary>
public class ScheduleControllerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 30, TimeSpan.Zero);
    private static readonly ObjectKey Key = new("team", "fn");

    private static DateTimeOffset Minute(int minute) => new(2026, 11, 23, 10, minute, 0, TimeSpan.Zero);

    [Test]
    public async Task A_due_tick_is_claimed_sent_once_and_its_answer_recorded()
    {
        var time = new FakeTimeProvider(T0);
        var store = new FakeStore(ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0)));
        var gateway = new FakeGateway(time, 200) { Observe = () => store.Function.Status };
        var controller = new ScheduleController(Informers.Of(), store, gateway, time: time);

        time.SetUtcNow(Minute(1).AddSeconds(1));
        Assert.That(await controller.HandleAsync(Key, Minute(1), CancellationToken.None), Is.True);

        var status = store.Function.Status!;
        Assert.That(gateway.Sent, Is.EqualTo(new[] { Minute(1) }));
        Assert.That(status.LastScheduleTime, Is.EqualTo(Minute(1).UtcDateTime));
        Assert.That(status.LastScheduleResult, Is.EqualTo(new ScheduleResult
        {
            ScheduleTime = Minute(1).UtcDateTime, Outcome = "Succeeded", StatusCode = 200,
            StartTime = Minute(1).AddSeconds(1).UtcDateTime, FinishTime = Minute(1).AddSeconds(3).UtcDateTime,
        }));
        Assert.That(store.Writes, Is.EqualTo(2), "a claim before the request, the result after it");
        Assert.That(gateway.StatusSeenWhileSending!.LastScheduleTime, Is.EqualTo(Minute(1).UtcDateTime), "claimed before it was sent");
        Assert.That(gateway.StatusSeenWhileSending.LastScheduleResult!.Outcome, Is.EqualTo("Pending"));

        Assert.That(await controller.HandleAsync(Key, Minute(1), CancellationToken.None), Is.False, "asked again: already taken");
        Assert.That(gateway.Sent, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_new_leader_does_not_send_a_tick_the_old_one_sent()
    {
        var time = new FakeTimeProvider(Minute(1).AddSeconds(1));
        var store = new FakeStore(ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0)));
        var gateway = new FakeGateway(time, 200);
        var old = new ScheduleController(Informers.Of(), store, gateway, time: time);
        var next = new ScheduleController(Informers.Of(), store, gateway, time: time);

        Assert.That(await old.HandleAsync(Key, Minute(1), CancellationToken.None), Is.True);
        // The new leader's cache still shows 10:00: it reads fresh before claiming, finds 10:01 taken.
        Assert.That(await next.HandleAsync(Key, Minute(1), CancellationToken.None), Is.False);
        Assert.That(gateway.Sent, Is.EqualTo(new[] { Minute(1) }));

        time.SetUtcNow(Minute(2));
        Assert.That(await next.HandleAsync(Key, Minute(2), CancellationToken.None), Is.True, "the next tick is the new leader's");
        Assert.That(gateway.Sent, Is.EqualTo(new[] { Minute(1), Minute(2) }));
    }

    [Test]
    public async Task A_leader_stopped_mid_request_records_it_and_its_successor_does_not_send_the_tick_again()
    {
        var time = new FakeTimeProvider(Minute(1).AddSeconds(1));
        var store = new FakeStore(ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0)));
        var hanging = new FakeGateway(time, 200) { Hang = true };
        var old = new ScheduleController(Informers.Of(), store, hanging, time: time);
        using var leading = new CancellationTokenSource();

        var running = old.HandleAsync(Key, Minute(1), leading.Token);
        await hanging.Started.Task;
        await leading.CancelAsync();
        Assert.That(await running, Is.True);
        Assert.That(store.Function.Status!.LastScheduleResult!.Outcome, Is.EqualTo("Failed"));
        Assert.That(store.Function.Status.LastScheduleResult.Message, Does.Contain("stopped leading"));

        var gateway = new FakeGateway(time, 200);
        var restarted = new ScheduleController(Informers.Of(), store, gateway, time: time);
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.That(await restarted.HandleAsync(Key, Minute(1), CancellationToken.None), Is.False);
        Assert.That(gateway.Sent, Is.Empty, "at most once: the tick was claimed, so it is not sent again");
    }

    [Test]
    public async Task A_conflicting_write_by_someone_else_is_read_again_and_the_tick_still_sent_once()
    {
        var time = new FakeTimeProvider(Minute(1).AddSeconds(1));
        var store = new FakeStore(ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0)));
        // The reconciler writes status (replicas, usage) between our read and our claim.
        store.BeforeNextWrite = f => f with { Status = f.Status! with { ReadyReplicas = 1 } };
        var gateway = new FakeGateway(time, 200);
        var controller = new ScheduleController(Informers.Of(), store, gateway, time: time);

        Assert.That(await controller.HandleAsync(Key, Minute(1), CancellationToken.None), Is.True);
        Assert.That(store.Conflicts, Is.EqualTo(1));
        Assert.That(gateway.Sent, Is.EqualTo(new[] { Minute(1) }));
        Assert.That(store.Function.Status!.ReadyReplicas, Is.EqualTo(1), "the other write stands");
    }

    [Test]
    public async Task A_claim_lost_to_another_operator_is_never_sent()
    {
        var time = new FakeTimeProvider(Minute(1).AddSeconds(1));
        var store = new FakeStore(ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0)));
        // Another operator (an old leader that has not noticed yet) claims 10:01 first.
        store.BeforeNextWrite = f => f with
        {
            Status = f.Status! with { LastScheduleTime = Minute(1).UtcDateTime, LastScheduleResult = new ScheduleResult { Outcome = "Pending" } },
        };
        var gateway = new FakeGateway(time, 200);
        var controller = new ScheduleController(Informers.Of(), store, gateway, time: time);

        Assert.That(await controller.HandleAsync(Key, Minute(1), CancellationToken.None), Is.False);
        Assert.That(store.Conflicts, Is.EqualTo(1));
        Assert.That(gateway.Sent, Is.Empty);
    }

    [TestCase(500, "Failed")]
    [TestCase(404, "Failed")]
    [TestCase(202, "Succeeded")]
    public async Task The_answer_decides_the_outcome(int code, string outcome)
    {
        var time = new FakeTimeProvider(Minute(1));
        var store = new FakeStore(ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0)));
        var controller = new ScheduleController(Informers.Of(), store, new FakeGateway(time, code), time: time);

        await controller.HandleAsync(Key, Minute(1), CancellationToken.None);

        Assert.That((store.Function.Status!.LastScheduleResult!.Outcome, store.Function.Status.LastScheduleResult.StatusCode), Is.EqualTo((outcome, (int?)code)));
    }

    [Test]
    public async Task A_tick_too_old_after_an_outage_is_recorded_missed_and_not_sent()
    {
        var nightly = ScheduleRulesTests.Function("0 2 * * *", lastScheduleTime: new DateTimeOffset(2026, 11, 22, 2, 0, 0, TimeSpan.Zero));
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 23, 2, 30, 0, TimeSpan.Zero));
        var store = new FakeStore(nightly);
        var gateway = new FakeGateway(time, 200);
        var controller = new ScheduleController(Informers.Of(), store, gateway, time: time);
        var tick = new DateTimeOffset(2026, 11, 23, 2, 0, 0, TimeSpan.Zero);

        Assert.That(await controller.HandleAsync(Key, tick, CancellationToken.None), Is.False);

        Assert.That(gateway.Sent, Is.Empty);
        Assert.That(store.Function.Status!.LastScheduleTime, Is.EqualTo(tick.UtcDateTime));
        Assert.That(store.Function.Status.LastScheduleResult!.Outcome, Is.EqualTo("Missed"));
        Assert.That(await controller.HandleAsync(Key, tick, CancellationToken.None), Is.False, "reported once");
        Assert.That(store.Writes, Is.EqualTo(1));
    }

    [Test]
    public async Task The_loop_sends_each_tick_once_however_stale_its_cache_and_however_often_it_polls()
    {
        var time = new FakeTimeProvider(T0);
        var function = ScheduleRulesTests.Function("* * * * *", lastScheduleTime: Minute(0));
        var store = new FakeStore(function);
        var gateway = new FakeGateway(time, 200);
        // The cache keeps the function as first listed: it never sees the claims.
        var informer = Informers.Of(function);
        using var run = new CancellationTokenSource();
        var informing = informer.RunAsync(run.Token);
        await informer.Synced;
        var controller = new ScheduleController(informer, store, gateway, time: time);

        for (var second = 0; second < 120; second++)
        {
            controller.Tick(CancellationToken.None);
            await Task.WhenAll(controller.Running);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.That(gateway.Sent, Is.EqualTo(new[] { Minute(1), Minute(2) }));
        await run.CancelAsync();
        await informing;
    }

    /// <summary>The API server's part: a function with a resourceVersion that every write bumps, and conditional writes.</summary>
    private sealed class FakeStore(GpuFunction function) : IScheduleStore
    {
        private readonly Lock _lock = new();
        private int _version = 1;

        public GpuFunction Function { get; private set; } = function;

        public int Writes { get; private set; }

        public int Conflicts { get; private set; }

        /// <summary>A write by someone else, made once just before our next write.</summary>
        public Func<GpuFunction, GpuFunction>? BeforeNextWrite { get; set; }

        public Task<GpuFunction?> GetAsync(ObjectKey key, CancellationToken ct)
        {
            lock (_lock)
            {
                return Task.FromResult<GpuFunction?>(Copy(Function));
            }
        }

        public Task<bool> TryWriteAsync(ObjectKey key, string resourceVersion, DateTimeOffset tick, ScheduleResult result, CancellationToken ct)
        {
            lock (_lock)
            {
                if (BeforeNextWrite is { } other)
                {
                    BeforeNextWrite = null;
                    Function = Bump(other(Function));
                }

                if (resourceVersion != Function.Metadata.ResourceVersion)
                {
                    Conflicts++;
                    return Task.FromResult(false);
                }

                Writes++;
                Function = Bump(Function with
                {
                    Status = (Function.Status ?? new GpuFunctionStatus()) with { LastScheduleTime = tick.UtcDateTime, LastScheduleResult = result },
                });
                return Task.FromResult(true);
            }
        }

        private GpuFunction Bump(GpuFunction f)
        {
            var copy = Copy(f);
            copy.Metadata.ResourceVersion = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return copy;
        }

        private static GpuFunction Copy(GpuFunction f) => KubernetesJson.Deserialize<GpuFunction>(KubernetesJson.Serialize(f));
    }

    /// <summary>The gateway's part: answers after two seconds, or hangs until cancelled.</summary>
    private sealed class FakeGateway(FakeTimeProvider time, int code) : IScheduledInvoker
    {
        public List<DateTimeOffset> Sent { get; } = [];

        public bool Hang { get; init; }

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public GpuFunctionStatus? StatusSeenWhileSending { get; private set; }

        /// <summary>What the API server holds, looked at while the request is sent.</summary>
        public Func<GpuFunctionStatus?> Observe { get; init; } = () => null;

        public async Task<InvocationOutcome> InvokeAsync(GpuFunction function, DateTimeOffset tick, CancellationToken ct)
        {
            lock (Sent)
            {
                Sent.Add(tick);
            }

            StatusSeenWhileSending = Observe();
            Started.TrySetResult();
            if (Hang)
            {
                await Task.Delay(Timeout.Infinite, ct);
            }

            time.Advance(TimeSpan.FromSeconds(2));
            return new InvocationOutcome(code, null);
        }
    }
}

/// <summary>Informers over fixed objects, for controllers whose cache is not the point of the test.</summary>
internal static class Informers
{
    public static Informer<GpuFunction> Of(params GpuFunction[] functions) => new(new ListWatch<GpuFunction>("gpufunctions",
        (_, _, _) => Task.FromResult(new ListPage<GpuFunction>([.. functions], "1", null)),
        (_, _, _, ct) => Never(ct)));

    private static async IAsyncEnumerable<(WatchEventType, GpuFunction)> Never([EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
        yield break;
    }
}
