using k8s;
using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Tests.Integration;

/// <summary>Event aggregation against the real API server, written as the operator's ServiceAccount (the chart's RBAC).</summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class EventRecorderTests
{
    private ControlPlane _plane = null!;
    private Kubernetes _admin = null!;
    private Kubernetes _operator = null!;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        _plane = await SharedControlPlane.GetAsync();
        await (await ChartRbac.RenderAsync()).InstallAsync(_plane);
        _admin = _plane.CreateClient();
        _operator = _plane.CreateClient(ChartRbac.OperatorUser);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _admin.Dispose();
        _operator.Dispose();
    }

    private async Task<V1ConfigMap> SubjectAsync(string ns) =>
        await _admin.CoreV1.CreateNamespacedConfigMapAsync(
            new V1ConfigMap { ApiVersion = "v1", Kind = "ConfigMap", Metadata = new V1ObjectMeta { Name = "subject" } }, ns) is var made
            ? new V1ConfigMap { ApiVersion = "v1", Kind = "ConfigMap", Metadata = made.Metadata }
            : throw new InvalidOperationException();

    private async Task<IList<Corev1Event>> EventsAsync(string ns) =>
        (await _admin.CoreV1.ListNamespacedEventAsync(ns)).Items;

    [Test]
    public async Task The_same_warning_thirty_times_is_one_Event_with_count_thirty()
    {
        var ns = await _plane.CreateNamespaceAsync("events-same");
        var about = await SubjectAsync(ns);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        // A burst above thirty: this is about folding (the default burst of 25 is covered below and in EventCorrelatorTests).
        var recorder = new EventRecorder(_operator, "pilotlight-operator", time, options: new EventRecorderOptions { Burst = 50 },
            registry: Metrics.NewCustomRegistry());
        for (var i = 0; i < 30; i++)
        {
            await recorder.WarningAsync(about, "PullFailed", "image example/x:1 not found");
            time.Advance(TimeSpan.FromSeconds(1));
        }

        var events = await EventsAsync(ns);
        Assert.That(events, Has.Count.EqualTo(1));
        Assert.That(events[0].Count, Is.EqualTo(30));
        Assert.That(events[0].LastTimestamp - events[0].FirstTimestamp, Is.EqualTo(TimeSpan.FromSeconds(29)));
        Assert.That(events[0].InvolvedObject.Uid, Is.EqualTo(about.Metadata.Uid));
    }

    [Test]
    public async Task With_the_default_burst_repeats_past_twenty_five_are_dropped_and_counted()
    {
        var ns = await _plane.CreateNamespaceAsync("events-limit");
        var about = await SubjectAsync(ns);
        var registry = Metrics.NewCustomRegistry();
        var recorder = new EventRecorder(_operator, "pilotlight-operator", new FakeTimeProvider(DateTimeOffset.UtcNow), registry: registry);
        for (var i = 0; i < 30; i++)
        {
            await recorder.WarningAsync(about, "PullFailed", "image example/x:1 not found");
        }

        var events = await EventsAsync(ns);
        Assert.That(events.Single().Count, Is.EqualTo(25));
        var dropped = Metrics.WithCustomRegistry(registry)
            .CreateCounter("pilotlight_events_dropped_total", "Kubernetes Events not written, by reason (rate_limited).", "reason");
        Assert.That(dropped.WithLabels("rate_limited").Value, Is.EqualTo(5));
    }

    [Test]
    public async Task Alternating_two_reasons_is_two_Events_and_after_the_window_a_new_one()
    {
        var ns = await _plane.CreateNamespaceAsync("events-alt");
        var about = await SubjectAsync(ns);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var recorder = new EventRecorder(_operator, "pilotlight-operator", time, registry: Metrics.NewCustomRegistry());
        for (var i = 0; i < 10; i++)
        {
            await recorder.WarningAsync(about, i % 2 == 0 ? "Unschedulable" : "PullFailed", "try again");
        }

        var events = await EventsAsync(ns);
        Assert.That(events.Select(e => (e.Reason, e.Count)).OrderBy(e => e.Reason),
            Is.EqualTo(new[] { ("PullFailed", (int?)5), ("Unschedulable", (int?)5) }));

        time.Advance(TimeSpan.FromMinutes(11));
        await recorder.WarningAsync(about, "PullFailed", "try again");
        events = await EventsAsync(ns);
        Assert.That(events.Where(e => e.Reason == "PullFailed").Select(e => e.Count).Order(), Is.EqualTo(new int?[] { 1, 5 }),
            "past the window the repeat is a new Event");
    }

    [Test]
    public async Task A_repeat_of_an_Event_deleted_meanwhile_creates_it_anew()
    {
        var ns = await _plane.CreateNamespaceAsync("events-gone");
        var about = await SubjectAsync(ns);
        var recorder = new EventRecorder(_operator, "pilotlight-operator", new FakeTimeProvider(DateTimeOffset.UtcNow), registry: Metrics.NewCustomRegistry());
        await recorder.NormalAsync(about, "Ready", "ready");
        var first = (await EventsAsync(ns)).Single();
        await _admin.CoreV1.DeleteNamespacedEventAsync(first.Metadata.Name, ns);

        await recorder.NormalAsync(about, "Ready", "ready");
        var again = (await EventsAsync(ns)).Single();
        Assert.That(again.Metadata.Name, Is.Not.EqualTo(first.Metadata.Name));
        Assert.That(again.Count, Is.EqualTo(2), "the count carries on, as client-go's does");
    }
}
