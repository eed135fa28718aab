using System.Net;
using System.Net.Http.Json;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator.Scaling;
using Pilotlight.Tests.Integration;

namespace Pilotlight.Tests.Operator.Scaling;

/// <summary>The leader's long polls of gateways' signals, against boards served in memory.</summary>
public sealed class GatewaySignalFeedTests
{
    private static readonly Uri GatewayA = new("http://gateway-a:8081/");
    private static readonly Uri GatewayB = new("http://gateway-b:8081/");
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly Dictionary<Uri, SignalBoard> _boards = [];
    private readonly List<string?> _authorizations = [];
    private GatewaySet _set = GatewaySet.Empty;
    private CancellationTokenSource _stop = null!;

    [SetUp]
    public void SetUp()
    {
        _boards.Clear();
        _boards[GatewayA] = new SignalBoard(TimeProvider.System);
        _boards[GatewayB] = new SignalBoard(TimeProvider.System);
        _stop = new CancellationTokenSource();
    }

    [TearDown]
    public void TearDown()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    private GatewaySignalFeed Start(List<ObjectKey>? woken = null, List<ObjectKey>? terminated = null, List<ObjectKey>? counted = null)
    {
        var feed = new GatewaySignalFeed(new HttpClient(new Boards(this)), () => _set, (request, _) =>
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "operator-token");
            return ValueTask.CompletedTask;
        })
        {
            FunctionWoken = k => { lock (woken ?? []) { woken?.Add(k); } },
            SandboxTerminated = k => { lock (terminated ?? []) { terminated?.Add(k); } },
            ColdStartsCounted = k => { lock (counted ?? []) { counted?.Add(k); } },
        };
        _ = feed.RunAsync(new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()), _stop.Token);
        return feed;
    }

    [Test]
    public async Task A_wake_reaches_the_function_queue_and_the_latest_of_two_gateways_wins()
    {
        _set = GatewaySet.Of([GatewayA, GatewayB]);
        var woken = new List<ObjectKey>();
        var feed = Start(woken);
        var key = new ObjectKey("team", "llm");
        var at = DateTimeOffset.UtcNow;
        _boards[GatewayA].Wake(key, at, 2);
        await Eventually.HoldsAsync(() => { lock (woken) { return woken.Contains(key); } }, Timeout, "the function was enqueued");
        _boards[GatewayB].Wake(key, at.AddSeconds(1), 5);
        await Eventually.HoldsAsync(() => feed.Wake(key)?.Held == 5, Timeout, "the later wake is the one read");
        Assert.That(feed.Wake(key)!.At, Is.EqualTo(at.AddSeconds(1)));
        lock (_authorizations)
        {
            Assert.That(_authorizations, Is.Not.Empty.And.All.EqualTo("Bearer operator-token"), "every poll carries the operator's token");
        }
    }

    [Test]
    public async Task Cold_starts_are_read_per_gateway_process_and_enqueue_the_function()
    {
        _set = GatewaySet.Of([GatewayA, GatewayB]);
        var counted = new List<ObjectKey>();
        var feed = Start(counted: counted);
        var key = new ObjectKey("team", "llm");
        _boards[GatewayA].ColdStart(key, "uid-1");
        _boards[GatewayA].ColdStart(key, "uid-1");
        _boards[GatewayB].ColdStart(key, "uid-1");
        await Eventually.HoldsAsync(() => feed.ColdStarts(key, "uid-1").Sum(c => c.Count) == 3, Timeout, "both gateways' counts read");
        Assert.That(feed.ColdStarts(key, "uid-1").Select(c => c.Gateway), Is.EquivalentTo(new[] { _boards[GatewayA].Epoch, _boards[GatewayB].Epoch }));
        Assert.That(feed.ColdStarts(key, "uid-other"), Is.Empty, "another function of the name has none");
        lock (counted)
        {
            Assert.That(counted, Does.Contain(key));
        }

        _boards[GatewayA].ForgetFunction(key);
        await Eventually.HoldsAsync(() => feed.ColdStarts(key, "uid-1").Sum(c => c.Count) == 1, Timeout, "a gateway that forgot the deleted function no longer counts it");
    }

    [Test]
    public async Task Complete_only_once_every_gateway_answered_and_none_is_unreadable()
    {
        _set = GatewaySet.Of([GatewayA]) with { Unreadable = [new GatewayAddress(GatewayB, "pods")] };
        var feed = Start();
        await Eventually.HoldsAsync(() => _set.Poll.Count == 1 && feed.Wake(new ObjectKey("x", "y")) is null, Timeout, "started");
        await Task.Delay(300);
        Assert.That(feed.Complete, Is.False, "a gateway is known but unreadable");
        _set = GatewaySet.Of([GatewayA, GatewayB]);
        await Eventually.HoldsAsync(() => feed.Complete, Timeout, "both answered");

        _boards.Remove(GatewayB);
        await Eventually.HoldsAsync(() => !feed.Complete, Timeout, "a gateway that stops answering makes it incomplete");
    }

    [Test]
    public async Task No_gateway_at_all_is_complete_and_a_feed_that_does_not_lead_is_not()
    {
        var idle = new GatewaySignalFeed(new HttpClient(new Boards(this)), () => GatewaySet.Empty);
        Assert.That(idle.Complete, Is.False, "not leading: it has heard nothing");
        var feed = Start();
        await Eventually.HoldsAsync(() => feed.Complete, Timeout, "no gateway: nothing to hear");
    }

    [Test]
    public async Task A_terminate_is_enqueued_and_activity_is_remembered_after_its_gateway_went()
    {
        _set = GatewaySet.Of([GatewayA]);
        var terminated = new List<ObjectKey>();
        var feed = Start(terminated: terminated);
        var box = new ObjectKey("team", "box");
        _boards[GatewayA].Activity(box, "uid-1", 1);
        await Eventually.HoldsAsync(() => feed.Sandbox(box, "uid-1").Active == 1, Timeout, "a call runs");
        Assert.That(feed.Sandbox(box, "uid-2"), Is.EqualTo(((DateTimeOffset?)null, 0, false)), "another Sandbox of that name hears nothing");

        _boards[GatewayA].Terminate(box, "uid-1");
        await Eventually.HoldsAsync(() => { lock (terminated) { return terminated.Contains(box); } }, Timeout, "the sandbox was enqueued");
        Assert.That(feed.Sandbox(box, "uid-1").TerminateRequested, Is.True);

        var last = feed.Sandbox(box, "uid-1").LastActivity;
        _set = GatewaySet.Empty;
        await Eventually.HoldsAsync(() => feed.Sandbox(box, "uid-1").Active == 0, Timeout, "the gateway left the set");
        Assert.That(feed.Sandbox(box, "uid-1").LastActivity, Is.EqualTo(last), "its activity is still known");
        feed.Forget(box);
        Assert.That(feed.Sandbox(box, "uid-1").LastActivity, Is.Null);
    }

    /// <summary>Serves each gateway's board at its URL; a gateway with no board refuses the connection.</summary>
    private sealed class Boards(GatewaySignalFeedTests test) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (test._authorizations)
            {
                test._authorizations.Add(request.Headers.Authorization?.ToString());
            }

            var gateway = new Uri(request.RequestUri!.GetLeftPart(UriPartial.Authority) + "/");
            if (!test._boards.TryGetValue(gateway, out var board) || request.RequestUri.AbsolutePath != GatewaySignals.Path)
            {
                throw new HttpRequestException("connection refused");
            }

            var query = System.Web.HttpUtility.ParseQueryString(request.RequestUri.Query);
            var signals = await board.ReadAsync(query["epoch"], long.Parse(query["after"] ?? "-1", System.Globalization.CultureInfo.InvariantCulture),
                TimeSpan.FromMilliseconds(200), cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = JsonContent.Create(signals) };
        }
    }
}
