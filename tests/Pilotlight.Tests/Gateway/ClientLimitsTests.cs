using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public class ClientLimitsTests
{
    private static DefaultHttpContext Request(string? caller, string address = "10.0.0.1")
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse(address);
        context.Response.Body = new MemoryStream();
        if (caller is not null)
        {
            context.Features.Set(new InvocationCaller(caller));
        }

        return context;
    }

    private static ClientLimits Limits(ClientLimitOptions options, TimeProvider? time = null) =>
        new(options, time ?? TimeProvider.System, Prometheus.Metrics.NewCustomRegistry());

    [Test]
    public async Task A_client_over_its_concurrency_gets_429_while_another_client_is_served()
    {
        using var limits = Limits(new ClientLimitOptions { ConcurrentRequests = 2 });
        using var first = await limits.AdmitAsync(Request("alice"), "ns", "fn");
        using var second = await limits.AdmitAsync(Request("alice", "10.0.0.2"), "ns", "fn");
        var third = Request("alice", "10.0.0.3");
        var refused = await limits.AdmitAsync(third, "ns", "fn");
        using var other = await limits.AdmitAsync(Request("bob"), "ns", "fn");

        Assert.Multiple(() =>
        {
            Assert.That(first, Is.Not.Null);
            Assert.That(second, Is.Not.Null);
            Assert.That(refused, Is.Null, "a third request of alice, from another address: the caller counts, not the address");
            Assert.That(third.Response.StatusCode, Is.EqualTo(StatusCodes.Status429TooManyRequests));
            Assert.That(third.Response.Headers.RetryAfter.ToString(), Is.EqualTo("1"));
            Assert.That(other, Is.Not.Null, "bob is served meanwhile");
        });

        first!.Dispose();
        using var again = await limits.AdmitAsync(Request("alice"), "ns", "fn");
        Assert.That(again, Is.Not.Null, "a finished request frees its slot");
    }

    [Test]
    public async Task A_client_over_its_rate_gets_429_with_retry_after()
    {
        using var limits = Limits(new ClientLimitOptions { RequestsPerSecond = 1, Burst = 2 });
        Assert.That(await limits.AdmitAsync(Request(null), "ns", "fn"), Is.Not.Null);
        Assert.That(await limits.AdmitAsync(Request(null), "ns", "fn"), Is.Not.Null);
        var over = Request(null);
        Assert.That(await limits.AdmitAsync(over, "ns", "fn"), Is.Null);
        Assert.That(over.Response.StatusCode, Is.EqualTo(StatusCodes.Status429TooManyRequests));
        Assert.That(int.Parse(over.Response.Headers.RetryAfter.ToString(), System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(1));
        Assert.That(await limits.AdmitAsync(Request(null, "10.0.0.9"), "ns", "fn"), Is.Not.Null, "another address has its own bucket");
    }

    [Test]
    public async Task Without_limits_everything_is_admitted()
    {
        using var limits = Limits(new ClientLimitOptions());
        for (var i = 0; i < 100; i++)
        {
            Assert.That(await limits.AdmitAsync(Request("alice"), "ns", "fn"), Is.Not.Null);
        }
    }

    [Test]
    public void Tracked_clients_are_bounded_and_idle_ones_are_forgotten()
    {
        var time = new FakeTimeProvider();
        using var limits = Limits(new ClientLimitOptions { ConcurrentRequests = 1, MaxClients = 2 }, time);
        Assert.That(limits.Partition("a"), Is.EqualTo("a"));
        Assert.That(limits.Partition("b"), Is.EqualTo("b"));
        Assert.That(limits.Partition("c"), Is.EqualTo(ClientLimits.Overflow), "past the bound, new clients share one partition");
        Assert.That(limits.Tracked, Is.EqualTo(2));

        time.Advance(TimeSpan.FromSeconds(20));
        Assert.That(limits.Partition("a"), Is.EqualTo("a"), "a tracked client keeps its partition");
        time.Advance(TimeSpan.FromSeconds(15));
        Assert.That(limits.Partition("c"), Is.EqualTo("c"), "b, unseen for 35 s, was forgotten to make room");
        Assert.That(limits.Partition("b"), Is.EqualTo(ClientLimits.Overflow));
        Assert.That(limits.Tracked, Is.EqualTo(2));
    }
}
