using System.Net;
using Pilotlight.Client;

namespace Pilotlight.Tests.Client;

public class GatewayExceptionTests
{
    [Test]
    public void A_401_says_which_audience_a_token_needs()
    {
        var e = GatewayException.From(401, "the bearer token was not accepted for audience 'pilotlight'\n", null, "function a/b");
        Assert.That((e.Status, e.Reason), Is.EqualTo((401, "the bearer token was not accepted for audience 'pilotlight'")));
        Assert.That(e.Hint, Does.Contain("--audience pilotlight").And.Contain("--as"));
    }

    [Test]
    public void A_403s_reason_comes_from_the_json_error_and_the_hint_names_a_role_binding()
    {
        var e = GatewayException.From(403, """{"error":"bob may not create sandboxes/exec of ns/work"}""", null, "sandbox ns/work");
        Assert.That(e.Reason, Is.EqualTo("bob may not create sandboxes/exec of ns/work"));
        Assert.That(e.Message, Is.EqualTo("Gateway answered 403 Forbidden: bob may not create sandboxes/exec of ns/work"));
        Assert.That(e.Hint, Does.Contain("RoleBinding").And.Contain("sandbox ns/work"));
    }

    [Test]
    public void A_404_an_empty_body_uses_the_status_phrase()
    {
        var e = GatewayException.From(404, "", null, "function a/b");
        Assert.That(e.Reason, Is.EqualTo("Not Found"));
        Assert.That(e.Hint, Does.Contain("pilotlight get functions"));
    }

    [Test]
    public void A_503_carries_retry_after_into_the_hint()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = new StringContent("queue full") };
        response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(7));
        var e = GatewayException.FromResponseAsync(response, "function a/b", CancellationToken.None).GetAwaiter().GetResult();
        Assert.That((e.Status, e.RetryAfter, e.Reason), Is.EqualTo((503, (TimeSpan?)TimeSpan.FromSeconds(7), "queue full")));
        Assert.That(e.Hint, Does.Contain("retry after 7 s"));
    }

    [Test]
    public void A_504_suggests_a_cold_start_longer_than_the_hold()
    {
        var e = GatewayException.From(504, null, null, "function a/b");
        Assert.That(e.Hint, Does.Contain("cold start"));
    }

    [TestCase(401, true), TestCase(403, true), TestCase(503, true), TestCase(504, true), TestCase(200, false), TestCase(500, false), TestCase(400, false)]
    public void Only_the_gateways_own_statuses_are_raised_on_invoke(int status, bool gateway) =>
        Assert.That(FunctionInvoker.IsGatewayStatus(status), Is.EqualTo(gateway));

    [Test]
    public void The_gateway_is_derived_from_a_functions_endpoint()
    {
        Assert.That(GatewayEndpoint.FromFunctionEndpoint("http://gw.example:8080/team-a/llm", "team-a", "llm"), Is.EqualTo(new Uri("http://gw.example:8080/")));
        Assert.That(GatewayEndpoint.FromFunctionEndpoint("https://gw.example/prefix/team-a/llm/", "team-a", "llm"), Is.EqualTo(new Uri("https://gw.example/prefix/")));
        Assert.Throws<PilotlightClientException>(() => GatewayEndpoint.Parse("ftp://x", "--gateway"));
    }

    [Test]
    public void A_service_account_is_namespace_slash_name_or_a_name()
    {
        Assert.That(GatewayCredentials.ParseServiceAccount("ci/deployer", "default"), Is.EqualTo(("ci", "deployer")));
        Assert.That(GatewayCredentials.ParseServiceAccount("deployer", "team-a"), Is.EqualTo(("team-a", "deployer")));
        Assert.Throws<PilotlightClientException>(() => GatewayCredentials.ParseServiceAccount("a/b/c", "x"));
    }
}
