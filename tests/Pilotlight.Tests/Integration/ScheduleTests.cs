using System.Globalization;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// <c>spec.schedule</c> on the real control plane: the leading operator sends
/// each tick's request through the gateway to a real pod (shim and sample
/// model server), once, and records it in status; the claim is a
/// resourceVersion-conditional status write that the function reconciler
/// never overwrites.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class ScheduleTests() : ServingFixture(11, "cron", TimeSpan.FromSeconds(30))
{

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
    }

    private string Manifest(string name, string cron) => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata: {name: {{name}}}
        spec:
          image: example/model-server:1
          env:
            - {name: LOAD_SECONDS, value: "1"}
            - {name: COMPUTE_MS, value: "20"}
          gpu: {type: L4}
          scaling: {minReplicas: 0, maxReplicas: 1, scaledownWindow: 5s}
          timeout: 30s
          startupTimeout: 1m
          schedule: {cron: "{{cron}}", timeZone: Europe/Berlin, path: /run-batch}
          nodeSelector: {{{PoolLabel}}: {{Pool}}}
        """;

    private Task<GpuFunction> GetAsync(string ns, string name) =>
        Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    /// <summary>Requests the gateway answered 2xx for the function, from its /metrics.</summary>
    private async Task<double> AnsweredAsync(string ns, string name)
    {
        var text = await Http.GetStringAsync($"{GatewayUrl}/metrics");
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("pilotlight_gateway_requests_total{", StringComparison.Ordinal)
            && l.Contains($"namespace=\"{ns}\"", StringComparison.Ordinal) && l.Contains($"function=\"{name}\"", StringComparison.Ordinal)
            && l.Contains("code=\"2xx\"", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }

    [Test]
    public async Task An_every_minute_schedule_invokes_the_function_through_the_gateway_once_per_tick_and_records_it()
    {
        var ns = await Plane.CreateNamespaceAsync("cron");
        (await Kubectl.ApplyAsync(Manifest("nightly", "* * * * *"), ns)).EnsureSuccess();
        var created = (await GetAsync(ns, "nightly")).Metadata.CreationTimestamp!.Value;

        // The first tick after creation: within a minute, plus the cold start.
        var first = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "nightly");
            return f.Status?.LastScheduleResult is { Outcome: "Succeeded" } ? f : null;
        }, TimeSpan.FromSeconds(120), "the first scheduled invocation recorded", TimeSpan.FromMilliseconds(250));
        // The gateway counts a request once it has finished forwarding it; give it a moment.
        await Eventually.HoldsAsync(async () => await AnsweredAsync(ns, "nightly") >= 1, TimeSpan.FromSeconds(10), "the gateway answered it 2xx");
        var answeredAfterFirst = await AnsweredAsync(ns, "nightly");

        var tick = first.Status!.LastScheduleTime!.Value;
        var result = first.Status.LastScheduleResult!;
        Assert.Multiple(() =>
        {
            Assert.That(tick.Second, Is.Zero, "a tick is a whole minute");
            Assert.That(tick, Is.GreaterThanOrEqualTo(created.AddTicks(-(created.Ticks % TimeSpan.TicksPerSecond))), "no tick from before the function existed");
            Assert.That(tick, Is.LessThanOrEqualTo(created.AddSeconds(60)), "the first tick after creation, not a later one");
            Assert.That(result.ScheduleTime, Is.EqualTo(tick));
            Assert.That(result.StatusCode, Is.EqualTo(200));
            Assert.That(result.Message, Is.Null);
            Assert.That(result.StartTime, Is.GreaterThanOrEqualTo(tick));
            Assert.That(result.FinishTime, Is.GreaterThanOrEqualTo(result.StartTime!.Value));
            Assert.That(answeredAfterFirst, Is.EqualTo(1), "the gateway answered the scheduled request 2xx, once");
        });

        var events = await Client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: $"reason={ScheduleReasons.Invoked}");
        Assert.That(events.Items.Select(e => e.Message), Has.Some.Contains("POST /run-batch").And.Some.Contains(": 200 after"));

        // The next tick: exactly one more request, and the status moves on by a minute.
        var second = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "nightly");
            return f.Status?.LastScheduleResult is { Outcome: "Succeeded" } r && r.ScheduleTime > tick ? f : null;
        }, TimeSpan.FromSeconds(100), "the second scheduled invocation recorded", TimeSpan.FromMilliseconds(250));
        Assert.That(second.Status!.LastScheduleTime, Is.EqualTo(tick.AddMinutes(1)));
        await Eventually.HoldsAsync(async () => await AnsweredAsync(ns, "nightly") >= answeredAfterFirst + 1, TimeSpan.FromSeconds(10),
            "the gateway answered the second 2xx");
        Assert.That(await AnsweredAsync(ns, "nightly"), Is.EqualTo(answeredAfterFirst + 1), "one request per tick, no more");

        var columns = (await Kubectl.RunAsync(["get", "gpufunctions", "nightly", "-n", ns, "-o", "wide"])).EnsureSuccess().StandardOutput;
        Assert.That(columns, Does.Contain("LAST-SCHEDULE"));
    }

    [Test]
    public async Task A_claim_is_conditional_on_the_resourceVersion_and_the_reconciler_never_writes_it_back()
    {
        // A yearly schedule: the operator has nothing to send during the test, only to reconcile.
        var ns = await Plane.CreateNamespaceAsync("claim");
        (await Kubectl.ApplyAsync(Manifest("yearly", "0 0 1 1 *"), ns)).EnsureSuccess();
        var read = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "yearly");
            return f.Status?.ObservedGeneration == f.Metadata.Generation ? f : null;
        }, TimeSpan.FromSeconds(60), "the function reconciled");

        var store = new KubernetesScheduleStore(Client);
        var key = ObjectKey.Of(read);
        var tick = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.FromHours(1));
        var claim = new ScheduleResult { ScheduleTime = tick.UtcDateTime, Outcome = "Pending", StartTime = tick.UtcDateTime };
        // The reconciler may still write status just after its first reconcile (each such write is a real conflict,
        // which the store must report): claim from a fresh read until one lands, then again from that same read.
        var claimedFrom = read;
        var won = false;
        for (var attempt = 0; attempt < 10 && !won; attempt++)
        {
            claimedFrom = await GetAsync(ns, "yearly");
            won = await store.TryWriteAsync(key, claimedFrom.Metadata.ResourceVersion, tick, claim, CancellationToken.None);
        }

        Assert.That(won, Is.True, "a claim from a fresh read wins");
        Assert.That(await store.TryWriteAsync(key, claimedFrom.Metadata.ResourceVersion, tick, claim, CancellationToken.None), Is.False,
            "a second claim from the same read is a conflict");

        // A spec change makes the reconciler write its status (observedGeneration) from its cache.
        var patch = new V1Patch("""{"spec":{"scaling":{"maxReplicas":2}}}""", V1Patch.PatchType.MergePatch);
        await Client.CustomObjects.PatchNamespacedCustomObjectAsync(patch, Group.Name, Group.Version, ns, "gpufunctions", "yearly");
        var after = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "yearly");
            return f.Metadata.Generation > read.Metadata.Generation && f.Status?.ObservedGeneration == f.Metadata.Generation ? f : null;
        }, TimeSpan.FromSeconds(60), "the spec change reconciled");

        Assert.That(after.Status!.LastScheduleTime, Is.EqualTo(tick.UtcDateTime), "the claim survives the reconciler's status writes");
        Assert.That(after.Status.LastScheduleResult!.Outcome, Is.EqualTo("Pending"));
    }

    [Test]
    public async Task Two_operators_racing_for_the_same_tick_on_the_real_API_server_send_it_once()
    {
        // A yearly schedule: the shared operator (real clock) has nothing due. The racers' clock
        // stands at 2027-01-01 00:00:30 in Berlin, thirty seconds after a tick.
        var ns = await Plane.CreateNamespaceAsync("race");
        (await Kubectl.ApplyAsync(Manifest("yearly", "0 0 1 1 *"), ns)).EnsureSuccess();
        var function = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "yearly");
            return f.Status?.ObservedGeneration == f.Metadata.Generation ? f : null;
        }, TimeSpan.FromSeconds(60), "the function reconciled");
        var tick = new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.FromHours(1));
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(tick.AddSeconds(30));
        var sent = new List<string>();
        ScheduleController Racer(string name) => new(Pilotlight.Tests.Operator.Schedules.Informers.Of(), new KubernetesScheduleStore(Client), new CountingGateway(name, sent),
            time: time);

        var key = ObjectKey.Of(function);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Task.Run(() => Racer($"op-{i}").HandleAsync(key, tick, CancellationToken.None))));

        Assert.That(results.Count(r => r), Is.EqualTo(1), "one claim wins");
        Assert.That(sent, Has.Count.EqualTo(1));
        var after = await GetAsync(ns, "yearly");
        Assert.That(after.Status!.LastScheduleTime, Is.EqualTo(tick.UtcDateTime));
        Assert.That(after.Status.LastScheduleResult!.Outcome, Is.EqualTo("Succeeded"));

        // Restarted later: the tick is on record, nothing is sent again.
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That(await Racer("restarted").HandleAsync(key, tick, CancellationToken.None), Is.False);
        Assert.That(sent, Has.Count.EqualTo(1));
    }

    private sealed class CountingGateway(string name, List<string> sent) : IScheduledInvoker
    {
        public Task<InvocationOutcome> InvokeAsync(GpuFunction function, DateTimeOffset tick, CancellationToken ct)
        {
            lock (sent)
            {
                sent.Add(name);
            }

            return Task.FromResult(new InvocationOutcome(200, null));
        }
    }

    [Test]
    public async Task An_invalid_time_zone_is_refused_as_InvalidSpec_and_nothing_is_sent()
    {
        var ns = await Plane.CreateNamespaceAsync("badzone");
        (await Kubectl.ApplyAsync(Manifest("badzone", "* * * * *").Replace("Europe/Berlin", "Mars/Olympus_Mons", StringComparison.Ordinal), ns)).EnsureSuccess();

        var f = await Eventually.GetAsync(async () =>
        {
            var f = await GetAsync(ns, "badzone");
            return f.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready") is { Reason: "InvalidSpec" } ? f : null;
        }, TimeSpan.FromSeconds(60), "Ready=False InvalidSpec");
        Assert.That(f.Status!.Conditions!.First(c => c.Type == "Ready").Message, Does.Contain("schedule.timeZone 'Mars/Olympus_Mons'"));

        // The CRD's pattern refuses a malformed expression before the operator sees it.
        var refused = await Kubectl.ApplyAsync(Manifest("badcron", "every minute"), ns);
        Assert.That(refused.ExitCode, Is.Not.Zero);
        Assert.That(refused.StandardError, Does.Contain("spec.schedule.cron"));
        Assert.That(f.Status.LastScheduleTime, Is.Null);
    }
}
