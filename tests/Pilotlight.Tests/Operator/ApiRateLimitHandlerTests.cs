using System.Net;
using Pilotlight.Operator;

namespace Pilotlight.Tests.Operator;

/// <summary>The client-side API rate limit: a burst, then waits; watches never wait.</summary>
public class ApiRateLimitHandlerTests
{
    private sealed class Ok(bool fairness = false) : HttpMessageHandler
    {
        public int Sent;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Sent);
            var response = new HttpResponseMessage(HttpStatusCode.OK);
            if (fairness)
            {
                // What an API server doing Priority and Fairness adds to every answer it classified.
                response.Headers.Add(ApiRateLimitHandler.FlowSchemaHeader, "0f8bbdc9-1f6e-4fd2-9c24-2a4ff7ec5b2e");
            }

            return Task.FromResult(response);
        }
    }

    [TestCase("https://api/api/v1/pods?watch=true&resourceVersion=1", true)]
    [TestCase("https://api/api/v1/pods?resourceVersion=1&watch=1", true)]
    [TestCase("https://api/api/v1/pods?limit=500", false)]
    [TestCase("https://api/api/v1/namespaces/watch/pods", false)]
    [TestCase("https://api/api/v1/pods?watch=false", false)]
    public void Watches_are_told_apart_by_their_query(string url, bool watch) =>
        Assert.That(ApiRateLimitHandler.IsWatch(new Uri(url)), Is.EqualTo(watch));

    [Test]
    public async Task A_burst_passes_then_requests_wait_for_tokens_but_watches_do_not()
    {
        // One token per 1000 s: after the burst nothing more is granted during the test.
        var inner = new Ok();
        using var invoker = new HttpMessageInvoker(new ApiRateLimitHandler(0.001, 2) { InnerHandler = inner });
        using var get1 = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods");
        using var get2 = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods");
        (await invoker.SendAsync(get1, CancellationToken.None)).Dispose();
        (await invoker.SendAsync(get2, CancellationToken.None)).Dispose();

        using var cancel = new CancellationTokenSource();
        using var get3 = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods");
        var third = invoker.SendAsync(get3, cancel.Token);

        using var watch = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods?watch=true");
        (await invoker.SendAsync(watch, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10))).Dispose();

        Assert.That(third.IsCompleted, Is.False, "the third request waits for a token");
        Assert.That(inner.Sent, Is.EqualTo(3), "two requests and the watch were sent");
        await cancel.CancelAsync();
        Assert.That(async () => await third, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(inner.Sent, Is.EqualTo(3));
    }

    [Test]
    public async Task Under_the_servers_priority_and_fairness_auto_lifts_the_limit_after_the_first_answer()
    {
        var inner = new Ok(fairness: true);
        var lifted = 0;
        using var handler = new ApiRateLimitHandler(0.001, 1, liftUnderFairness: true, lifted: () => lifted++) { InnerHandler = inner };
        using var invoker = new HttpMessageInvoker(handler);
        Assert.That(handler.Lifted, Is.False);

        // Burst of one: without the lift the second request would wait 1,000 s for a token.
        for (var i = 0; i < 5; i++)
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods");
            (await invoker.SendAsync(get, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10))).Dispose();
        }

        Assert.That((inner.Sent, handler.Lifted, lifted), Is.EqualTo((5, true, 1)), "lifted once, at the first answer");
    }

    [TestCase(true, false)]
    [TestCase(false, true)]
    public async Task The_limit_stays_without_the_servers_fairness_or_when_a_fixed_qps_was_asked(bool fairness, bool auto)
    {
        var inner = new Ok(fairness);
        using var handler = new ApiRateLimitHandler(0.001, 1, liftUnderFairness: auto) { InnerHandler = inner };
        using var invoker = new HttpMessageInvoker(handler);
        using var first = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods");
        (await invoker.SendAsync(first, CancellationToken.None)).Dispose();

        using var cancel = new CancellationTokenSource();
        using var second = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods");
        var waiting = invoker.SendAsync(second, cancel.Token);
        using var watch = new HttpRequestMessage(HttpMethod.Get, "https://api/api/v1/pods?watch=true");
        // Sent after the second is queued: once the watch is answered, the second has had its chance at the limiter.
        (await invoker.SendAsync(watch, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10))).Dispose();
        Assert.That((waiting.IsCompleted, handler.Lifted), Is.EqualTo((false, false)), "the second request waits for a token");
        await cancel.CancelAsync();
        Assert.That(async () => await waiting, Throws.InstanceOf<OperationCanceledException>());
    }

    [TestCase(0, 10)]
    [TestCase(-1, 10)]
    [TestCase(double.NaN, 10)]
    [TestCase(5, 0)]
    public void Bad_limits_are_refused(double qps, int burst) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => ApiRateLimitHandler.CreateLimiter(qps, burst));
}
