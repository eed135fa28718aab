using System.Net;
using System.Net.Sockets;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public class AttemptOutcomeTests
{
    private static HttpResponseMessage Response(HttpStatusCode code, params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage(code);
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response;
    }

    [Test]
    public void Back_off_grows_by_the_coefficient_from_the_initial_delay_up_to_the_max()
    {
        var policy = new RetryPolicy { MaxRetries = 6, InitialDelay = "1s", BackoffCoefficient = 2.0, MaxDelay = "5s" };
        var delays = Enumerable.Range(0, 6).Select(n => AttemptOutcome.Delay(policy, n).TotalSeconds);
        Assert.That(delays, Is.EqualTo(new[] { 1.0, 2.0, 4.0, 5.0, 5.0, 5.0 }));
    }

    [Test]
    public void A_coefficient_of_one_keeps_the_delay_and_huge_powers_stop_at_the_max()
    {
        var flat = new RetryPolicy { MaxRetries = 3, InitialDelay = "250ms", BackoffCoefficient = 1.0, MaxDelay = "1m" };
        Assert.That(Enumerable.Range(0, 3).Select(n => AttemptOutcome.Delay(flat, n)), Is.All.EqualTo(TimeSpan.FromMilliseconds(250)));

        var steep = new RetryPolicy { MaxRetries = 10, InitialDelay = "1h", BackoffCoefficient = 10.0, MaxDelay = "90s" };
        Assert.That(AttemptOutcome.Delay(steep, 0), Is.EqualTo(TimeSpan.FromSeconds(90)));
        Assert.That(AttemptOutcome.Delay(steep, 400), Is.EqualTo(TimeSpan.FromSeconds(90)));
    }

    [Test]
    public void The_api_defaults_give_one_two_four_seconds()
    {
        var policy = new RetryPolicy { MaxRetries = 3 };
        Assert.That(Enumerable.Range(0, 3).Select(n => AttemptOutcome.Delay(policy, n).TotalSeconds), Is.EqualTo(new[] { 1.0, 2.0, 4.0 }));
    }

    [Test]
    public void A_failed_connect_is_refused_and_a_failure_after_sending_is_a_connection_failure()
    {
        Assert.That(AttemptOutcome.Classify(new HttpRequestException(HttpRequestError.ConnectionError, "refused"), null), Is.EqualTo(AttemptFailure.Refused));
        Assert.That(AttemptOutcome.Classify(new HttpRequestException("refused", new SocketException((int)SocketError.ConnectionRefused)), null),
            Is.EqualTo(AttemptFailure.Refused));
        Assert.That(AttemptOutcome.Classify(new HttpRequestException(HttpRequestError.ResponseEnded, "ended", new IOException("reset")), null),
            Is.EqualTo(AttemptFailure.Connection));
        Assert.That(AttemptOutcome.Classify(new HttpRequestException("reset", new IOException("reset", new SocketException((int)SocketError.ConnectionReset))), null),
            Is.EqualTo(AttemptFailure.Connection));
    }

    [Test]
    public void Timeouts_and_cancellation_are_not_retried()
    {
        Assert.That(AttemptOutcome.Classify(new OperationCanceledException(), null), Is.EqualTo(AttemptFailure.None));
        Assert.That(AttemptOutcome.Classify(new TaskCanceledException(), null), Is.EqualTo(AttemptFailure.None));
    }

    [TestCase(HttpStatusCode.OK, AttemptFailure.None)]
    [TestCase(HttpStatusCode.NotFound, AttemptFailure.None)]
    [TestCase(HttpStatusCode.TooManyRequests, AttemptFailure.None)]
    [TestCase(HttpStatusCode.InternalServerError, AttemptFailure.ServerError)]
    [TestCase(HttpStatusCode.BadGateway, AttemptFailure.ServerError)]
    [TestCase(HttpStatusCode.ServiceUnavailable, AttemptFailure.ServerError)]
    [TestCase(HttpStatusCode.GatewayTimeout, AttemptFailure.ServerError)]
    public void Responses_are_classified_by_status(HttpStatusCode code, AttemptFailure expected)
    {
        using var response = Response(code);
        Assert.That(AttemptOutcome.Classify(null, response), Is.EqualTo(expected));
    }

    [Test]
    public void The_shims_refusal_is_refused_and_the_no_retry_header_stops_a_retry()
    {
        using var refused = Response(HttpStatusCode.ServiceUnavailable, (InvocationProxy.RefusedHeader, "draining"));
        Assert.That(AttemptOutcome.Classify(null, refused), Is.EqualTo(AttemptFailure.Refused));

        using var noRetry = Response(HttpStatusCode.InternalServerError, (AttemptOutcome.NoRetryHeader, "True"));
        Assert.That(AttemptOutcome.Classify(null, noRetry), Is.EqualTo(AttemptFailure.ServerErrorNoRetry));

        using var retryAnyway = Response(HttpStatusCode.InternalServerError, (AttemptOutcome.NoRetryHeader, "false"));
        Assert.That(AttemptOutcome.Classify(null, retryAnyway), Is.EqualTo(AttemptFailure.ServerError));
    }

    [Test]
    public void Retry_reasons_are_a_fixed_set()
    {
        var labels = Enum.GetValues<AttemptFailure>().Select(AttemptOutcome.Label).Distinct();
        Assert.That(labels, Is.SubsetOf(new[] { "refused", "connection", "server_error" }));
    }

    private static List<PodEndpoint> Pods(params string[] names) => names.Select(n => new PodEndpoint(n, new Uri($"http://{n}.local:8099"))).ToList();

    [Test]
    public void A_retry_goes_to_a_pod_it_has_not_failed_on_while_there_is_one()
    {
        var excluded = AttemptOutcome.Excluded(new HashSet<string>(), new HashSet<string> { "a" }, "a", Pods("a", "b", "c"));
        Assert.That(excluded, Is.EquivalentTo(new[] { "a" }));

        excluded = AttemptOutcome.Excluded(new HashSet<string>(), new HashSet<string> { "a", "b" }, "b", Pods("a", "b", "c"));
        Assert.That(excluded, Is.EquivalentTo(new[] { "a", "b" }));
    }

    [Test]
    public void Once_every_pod_failed_a_retry_avoids_the_last_one_and_a_single_pod_is_tried_again()
    {
        Assert.That(AttemptOutcome.Excluded(new HashSet<string>(), new HashSet<string> { "a", "b" }, "b", Pods("a", "b")), Is.EquivalentTo(new[] { "b" }));
        Assert.That(AttemptOutcome.Excluded(new HashSet<string>(), new HashSet<string> { "a" }, "a", Pods("a")), Is.Empty);
    }

    [Test]
    public void A_pod_that_refused_the_request_is_never_tried_again_for_it()
    {
        Assert.That(AttemptOutcome.Excluded(new HashSet<string> { "a" }, new HashSet<string>(), null, Pods("a", "b")), Is.EquivalentTo(new[] { "a" }));
        Assert.That(AttemptOutcome.Excluded(new HashSet<string> { "a" }, new HashSet<string> { "b" }, "b", Pods("a", "b")), Is.EquivalentTo(new[] { "a" }),
            "b failed but is the only pod left that did not refuse");
    }
}
