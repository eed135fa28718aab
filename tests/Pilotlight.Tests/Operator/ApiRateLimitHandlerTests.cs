using System.Net;
using Pilotlight.Operator;

namespace Pilotlight.Tests.Operator;

/// <summary>The client-side API rate limit: a burst, then waits; watches never wait.</summary>
public class ApiRateLimitHandlerTests
{
    private sealed class Ok : HttpMessageHandler
    {
        public int Sent;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Sent);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
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

    [TestCase(0, 10)]
    [TestCase(-1, 10)]
    [TestCase(double.NaN, 10)]
    [TestCase(5, 0)]
    public void Bad_limits_are_refused(double qps, int burst) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => ApiRateLimitHandler.CreateLimiter(qps, burst));
}
