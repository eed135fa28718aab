using System.Net;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Schedules;

namespace Pilotlight.Tests.Operator.Schedules;

public class GatewayInvokerTests
{
    private static readonly DateTimeOffset Tick = new(2026, 11, 23, 1, 0, 0, TimeSpan.Zero);
    private static readonly Uri First = new("http://pilotlight-gateway.pilotlight-system");
    private static readonly Uri Second = new("http://10.0.0.7:8080/");

    private static GpuFunction Function(string path = "/run-batch?size=10", string timeout = "300s") =>
        ScheduleRulesTests.Function("0 2 * * *") with
        {
            Spec = new GpuFunctionSpec
            {
                Image = "m:1", Timeout = timeout, StartupTimeout = "0s",
                Schedule = new InvocationSchedule { Cron = "0 2 * * *", TimeZone = "Europe/Berlin", Path = path },
            },
        };

    [Test]
    public async Task Posts_the_schedule_path_through_the_first_gateway_with_the_tick_and_an_empty_body()
    {
        var handler = new Recorder(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{\"done\":true}") });
        var invoker = new GatewayInvoker(new HttpClient(handler), () => [First, Second]);

        var outcome = await invoker.InvokeAsync(Function(), Tick, CancellationToken.None);

        Assert.That(outcome, Is.EqualTo(new InvocationOutcome(200, null)));
        Assert.That(outcome.Succeeded, Is.True);
        var sent = handler.Requests.Single();
        Assert.That(sent.Method, Is.EqualTo(HttpMethod.Post));
        Assert.That(sent.RequestUri, Is.EqualTo(new Uri("http://pilotlight-gateway.pilotlight-system/team/fn/run-batch?size=10")));
        Assert.That(sent.Headers.GetValues(GatewayInvoker.ScheduleTimeHeader), Is.EqualTo(new[] { "2026-11-23T01:00:00Z" }));
        Assert.That(handler.Bodies.Single(), Is.Empty);
    }

    [Test]
    public async Task An_unreachable_gateway_hands_the_request_to_the_next_but_an_answer_is_final()
    {
        var handler = new Recorder(r => r.RequestUri!.Host == First.Host
            ? throw new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused")
            : new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
        var invoker = new GatewayInvoker(new HttpClient(handler), () => [First, Second]);

        var outcome = await invoker.InvokeAsync(Function(path: "/"), Tick, CancellationToken.None);

        Assert.That(outcome, Is.EqualTo(new InvocationOutcome(503, null)), "a 503 is an answer: not sent again elsewhere");
        Assert.That(handler.Requests.Select(r => r.RequestUri!.ToString()),
            Is.EqualTo(new[] { "http://pilotlight-gateway.pilotlight-system/team/fn/", "http://10.0.0.7:8080/team/fn/" }));
    }

    [Test]
    public async Task No_reachable_gateway_is_a_failure_saying_so()
    {
        var handler = new Recorder(_ => throw new HttpRequestException(HttpRequestError.NameResolutionError, "Name or service not known"));
        var invoker = new GatewayInvoker(new HttpClient(handler), () => [First]);

        var outcome = await invoker.InvokeAsync(Function(), Tick, CancellationToken.None);

        Assert.That(outcome.StatusCode, Is.Null);
        Assert.That(outcome.Succeeded, Is.False);
        Assert.That(outcome.Error, Does.Contain("pilotlight-gateway.pilotlight-system unreachable"));
    }

    [Test]
    public async Task The_wait_is_bounded_by_the_functions_timeouts_plus_slack()
    {
        var handler = new Recorder(_ => null);
        var invoker = new GatewayInvoker(new HttpClient(handler), () => [First]) { Slack = TimeSpan.FromMilliseconds(200) };

        var outcome = await invoker.InvokeAsync(Function(timeout: "100ms"), Tick, CancellationToken.None);

        Assert.That(outcome.StatusCode, Is.Null);
        Assert.That(outcome.Error, Does.StartWith("no answer within"));
    }

    [Test]
    public async Task The_authentication_hook_sees_each_request()
    {
        var handler = new Recorder(_ => new HttpResponseMessage(HttpStatusCode.OK));
        var invoker = new GatewayInvoker(new HttpClient(handler), () => [First])
        {
            Authenticate = (request, _) =>
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "operator-token");
                return ValueTask.CompletedTask;
            },
        };

        await invoker.InvokeAsync(Function(), Tick, CancellationToken.None);

        Assert.That(handler.Requests.Single().Headers.Authorization!.Parameter, Is.EqualTo("operator-token"));
    }

    /// <summary>Answers with <paramref name="answer"/>; null hangs until the request is cancelled.</summary>
    private sealed class Recorder(Func<HttpRequestMessage, HttpResponseMessage?> answer) : HttpMessageHandler
    {
        public List<HttpRequestMessage> Requests { get; } = [];

        public List<byte[]> Bodies { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests.Add(request);
            Bodies.Add(request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken));
            if (answer(request) is { } response)
            {
                return response;
            }

            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new OperationCanceledException(cancellationToken);
        }
    }
}
