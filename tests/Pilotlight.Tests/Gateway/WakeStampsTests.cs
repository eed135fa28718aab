using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>When the gateway stamps the wake annotations, on a fake clock.</summary>
public sealed class WakeStampsTests
{
    private FakeTimeProvider _time = null!;
    private List<(DateTimeOffset At, int Waiting)> _stamps = null!;
    private TaskCompletionSource? _patching;
    private WakeStamps _wakes = null!;
    private int _waiting;

    private static readonly GpuFunction Function = new()
    {
        Metadata = new V1ObjectMeta { Name = "llm", NamespaceProperty = "team" },
        Spec = new GpuFunctionSpec
        {
            Image = "example/llm:1",
            Scaling = new ScalingPolicy { MinReplicas = 0, MaxReplicas = 8, MaxConcurrency = 4, TargetConcurrency = 2 },
        },
    };

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 6, 0, 0, 137, TimeSpan.Zero));
        _stamps = [];
        _patching = null;
        _waiting = 0;
        _wakes = new WakeStamps((_, at, waiting) =>
        {
            lock (_stamps)
            {
                _stamps.Add((at, waiting));
            }

            return _patching?.Task ?? Task.CompletedTask;
        }, _time, NullLogger.Instance);
    }

    private void Arrive(int n = 1)
    {
        _waiting += n;
        _wakes.Wake(Function, () => _waiting);
    }

    [Test]
    public void The_first_request_at_zero_stamps_at_once_and_the_same_need_again_only_after_a_second()
    {
        Arrive();
        Assert.That(_stamps, Has.Count.EqualTo(1));
        Assert.That(_stamps[0].Waiting, Is.EqualTo(1));

        _time.Advance(TimeSpan.FromMilliseconds(500));
        Arrive(); // two at two per pod: still one pod
        Assert.That(_stamps, Has.Count.EqualTo(1));

        _time.Advance(TimeSpan.FromMilliseconds(500));
        Arrive(0);
        Assert.That(_stamps, Has.Count.EqualTo(2));
        Assert.That(_stamps[1], Is.EqualTo((_time.GetUtcNow(), 2)));
    }

    [Test]
    public void A_growing_burst_is_stamped_again_when_it_needs_more_pods_at_most_every_100_ms()
    {
        Arrive();
        _time.Advance(TimeSpan.FromMilliseconds(10));
        Arrive(99); // a hundred at two per pod: maxReplicas (8) wanted, not yet 100 ms after the first stamp
        Assert.That(_stamps, Has.Count.EqualTo(1));
        Arrive(100);
        Assert.That(_stamps, Has.Count.EqualTo(1));

        _time.Advance(TimeSpan.FromMilliseconds(90));
        Assert.That(() => { lock (_stamps) { return _stamps.Count; } }, Is.EqualTo(2).After(5000, 10),
            "re-stamped as soon as the spacing allowed, without a new arrival");
        Assert.That(_stamps[1].Waiting, Is.EqualTo(200));

        _time.Advance(TimeSpan.FromMilliseconds(200));
        Arrive(800);
        Assert.That(_stamps, Has.Count.EqualTo(2), "already asking for maxReplicas: more waiting changes nothing");
    }

    [Test]
    public void One_patch_at_a_time_and_what_came_meanwhile_follows_it()
    {
        _patching = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Arrive();
        _time.Advance(TimeSpan.FromSeconds(2));
        Arrive(10);
        Arrive(10);
        Assert.That(_stamps, Has.Count.EqualTo(1), "the first patch has not returned");

        _patching.SetResult();
        Assert.That(() => { lock (_stamps) { return _stamps.Count; } }, Is.EqualTo(2).After(5000, 10));
        Assert.That(_stamps[1].Waiting, Is.EqualTo(21));
    }

    [Test]
    public void A_deleted_function_starts_over()
    {
        Arrive();
        _wakes.Forget(new ObjectKey("team", "llm"));
        Arrive();
        Assert.That(_stamps, Has.Count.EqualTo(2));
    }
}
