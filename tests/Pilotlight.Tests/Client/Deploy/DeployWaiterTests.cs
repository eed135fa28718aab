using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Client.Deploy;

namespace Pilotlight.Tests.Client.Deploy;

/// <summary>The wait: done on Ready, failed once Stalled has lasted the grace, timed out otherwise; time is a fake clock.</summary>
public class DeployWaiterTests
{
    private static readonly AppliedResource Echo = new(new ApiResource("pilotlight.dev", "v1alpha1", "GpuFunction", "gpufunctions", true), "ns", "echo", 1, "echo.yaml");

    private static FunctionObservation Seen(params FunctionCondition[] conditions) => new(new FunctionSnapshot(1, 1, 0, 0, 1, conditions), []);

    private static readonly FunctionObservation Starting = Seen(new FunctionCondition("Ready", "False", "PodsStarting", null));
    private static readonly FunctionObservation Ready = Seen(new FunctionCondition("Ready", "True", "PodsReady", null));
    private static readonly FunctionObservation Stalled = Seen(new FunctionCondition("Stalled", "True", "Unschedulable", "0/1 nodes are available"));

    /// <summary>Answers the observations in turn, the last one again and again.</summary>
    private sealed class Script(params FunctionObservation[] steps) : IFunctionObserver
    {
        private int _next;

        public int Calls => Volatile.Read(ref _next);

        public Task<FunctionObservation> ObserveAsync(AppliedResource function, CancellationToken cancellationToken)
        {
            var step = steps[Math.Min(Interlocked.Increment(ref _next) - 1, steps.Length - 1)];
            return Task.FromResult(step);
        }
    }

    private static async Task<(DeployOutcome Outcome, List<DeployStage> Seen)> RunAsync(TimeSpan timeout, params FunctionObservation[] steps)
    {
        var time = new FakeTimeProvider();
        var script = new Script(steps);
        var waiter = new DeployWaiter(script, time) { PollInterval = TimeSpan.FromSeconds(1), StallGrace = TimeSpan.FromSeconds(5) };
        var seen = new List<DeployStage>();
        var wait = waiter.WaitAsync([Echo], timeout, reports => seen.Add(reports[0].Report.Stage));
        // About one poll per second of the fake clock: the clock moves once the waiter has looked again (or, should
        // the move have come before the waiter's delay began, after a moment with no look).
        var polls = 0;
        var idle = 0;
        while (!wait.IsCompleted)
        {
            if (script.Calls > polls || ++idle > 100)
            {
                polls = script.Calls;
                idle = 0;
                time.Advance(TimeSpan.FromSeconds(1));
            }

            await Task.Delay(1);
        }

        return (await wait, seen);
    }

    [Test]
    public async Task Ends_when_ready_reporting_each_change_once()
    {
        var (outcome, seen) = await RunAsync(TimeSpan.FromMinutes(5), Starting, Starting, Starting, Ready);

        Assert.That(outcome.Succeeded, Is.True);
        Assert.That(seen, Is.EqualTo(new[] { DeployStage.Requested, DeployStage.Ready }));
    }

    [Test]
    public async Task A_moment_of_stalled_does_not_fail_the_deploy()
    {
        var (outcome, seen) = await RunAsync(TimeSpan.FromMinutes(5), Stalled, Stalled, Starting, Ready);

        Assert.That(outcome.Succeeded, Is.True);
        Assert.That(seen, Is.EqualTo(new[] { DeployStage.Stalled, DeployStage.Requested, DeployStage.Ready }));
    }

    [Test]
    public async Task Stalled_for_the_grace_fails_with_the_reason()
    {
        var (outcome, _) = await RunAsync(TimeSpan.FromMinutes(5), Stalled);

        Assert.That(outcome.Succeeded, Is.False);
        Assert.That(outcome.TimedOut, Is.False);
        Assert.That(outcome.Reports[0].Report.Detail, Is.EqualTo("Unschedulable: 0/1 nodes are available"));
    }

    [Test]
    public async Task Times_out_with_the_last_report()
    {
        var (outcome, _) = await RunAsync(TimeSpan.FromSeconds(10), Starting);

        Assert.That(outcome.TimedOut, Is.True);
        Assert.That(outcome.Reports[0].Report.Stage, Is.EqualTo(DeployStage.Requested));
    }
}
