using Microsoft.Extensions.Time.Testing;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>The gateway's signal board: long polls, activity counting, and what it forgets.</summary>
public sealed class SignalBoardTests
{
    private static readonly ObjectKey Function = new("team", "llm");
    private static readonly ObjectKey Box = new("team", "box");
    private FakeTimeProvider _time = null!;
    private SignalBoard _board = null!;

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 3, 0, 0, 411, TimeSpan.Zero));
        _board = new SignalBoard(_time);
    }

    [Test]
    public async Task A_poll_from_another_epoch_is_answered_at_once_and_one_up_to_date_waits_for_a_change()
    {
        var first = await _board.ReadAsync("old-epoch", 99, TimeSpan.FromSeconds(20), CancellationToken.None);
        Assert.That((first.Epoch, first.Version, first.Wakes.Count), Is.EqualTo((_board.Epoch, 0L, 0)));

        var waiting = _board.ReadAsync(first.Epoch, first.Version, TimeSpan.FromSeconds(20), CancellationToken.None);
        await Task.Delay(50);
        Assert.That(waiting.IsCompleted, Is.False, "nothing new: the poll is held");

        _board.Wake(Function, _time.GetUtcNow(), 3);
        var woken = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(woken.Version, Is.GreaterThan(first.Version));
        Assert.That(woken.Wakes.Single(), Is.EqualTo(new Pilotlight.Contracts.WakeSignal { Namespace = "team", Name = "llm", At = _time.GetUtcNow(), Held = 3 }));
    }

    [Test]
    public async Task A_held_poll_with_nothing_new_is_answered_after_its_wait()
    {
        var now = await _board.ReadAsync(_board.Epoch, -1, TimeSpan.FromSeconds(20), CancellationToken.None);
        var waiting = _board.ReadAsync(now.Epoch, now.Version, TimeSpan.FromSeconds(20), CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(19));
        Assert.That(waiting.IsCompleted, Is.False);
        _time.Advance(TimeSpan.FromSeconds(1));
        var same = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(same.Version, Is.EqualTo(now.Version));
    }

    [Test]
    public async Task Calls_count_while_they_run_and_a_new_sandbox_of_the_same_name_starts_afresh()
    {
        _board.Activity(Box, "uid-1", 1);
        _board.Activity(Box, "uid-1", 1);
        _time.Advance(TimeSpan.FromSeconds(30));
        _board.Activity(Box, "uid-1", -1);
        var signal = (await _board.ReadAsync("", 0, TimeSpan.Zero, CancellationToken.None)).Sandboxes.Single();
        Assert.That((signal.Active, signal.LastActivity, signal.Uid), Is.EqualTo((1, _time.GetUtcNow(), "uid-1")), "one still runs; its end is activity");

        _board.Terminate(Box, "uid-1");
        Assert.That(_board.TerminateRequested(Box, "uid-1"), Is.True);
        Assert.That(_board.TerminateRequested(Box, "uid-2"), Is.False, "another Sandbox of that name");

        _board.Activity(Box, "uid-2", 1);
        signal = (await _board.ReadAsync("", 0, TimeSpan.Zero, CancellationToken.None)).Sandboxes.Single();
        Assert.That((signal.Uid, signal.Active, signal.TerminateRequested), Is.EqualTo(("uid-2", 1, (DateTimeOffset?)null)));
    }

    [Test]
    public async Task Gone_sandboxes_and_old_wakes_leave_the_board()
    {
        _board.Wake(Function, _time.GetUtcNow(), 1);
        _board.Activity(Box, "uid-1", 1);
        _board.Activity(new ObjectKey("team", "kept"), "uid-k", 1);
        _time.Advance(SignalBoard.WakeKeptFor + TimeSpan.FromSeconds(1));
        _board.Retain(s => s.Name == "kept");
        var left = await _board.ReadAsync("", 0, TimeSpan.Zero, CancellationToken.None);
        Assert.That(left.Wakes, Is.Empty);
        Assert.That(left.Sandboxes.Select(s => s.Name), Is.EqualTo(new[] { "kept" }));
    }

    [Test]
    public async Task Cold_starts_count_per_function_uid_and_a_deleted_function_is_forgotten()
    {
        var first = await _board.ReadAsync("", 0, TimeSpan.Zero, CancellationToken.None);
        _board.ColdStart(Function, "uid-1");
        _board.ColdStart(Function, "uid-1");
        var counted = await _board.ReadAsync(first.Epoch, first.Version, TimeSpan.FromSeconds(20), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(counted.ColdStarts.Single() with { At = default }, Is.EqualTo(new Pilotlight.Contracts.ColdStartSignal { Namespace = "team", Name = "llm", Uid = "uid-1", Count = 2 }));

        _board.ColdStart(Function, "uid-2");
        var recreated = await _board.ReadAsync("", 0, TimeSpan.Zero, CancellationToken.None);
        Assert.That((recreated.ColdStarts.Single().Uid, recreated.ColdStarts.Single().Count), Is.EqualTo(("uid-2", 1L)), "a new function of the name starts from zero");

        _board.ForgetFunction(Function);
        var forgotten = await _board.ReadAsync("", 0, TimeSpan.Zero, CancellationToken.None);
        Assert.That(forgotten.ColdStarts, Is.Empty);
        Assert.That(forgotten.Version, Is.GreaterThan(recreated.Version), "forgetting is a change the operator hears of");
    }
}
