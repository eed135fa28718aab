using System.Net;
using Microsoft.AspNetCore.Http;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public class InvocationTransformerTests
{
    private static DefaultHttpContext Incoming(string path, string query = "", string host = "gateway.example:8080")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Scheme = "http";
        context.Request.Host = new HostString(host);
        context.Request.Path = path;
        context.Request.QueryString = new QueryString(query);
        context.Connection.RemoteIpAddress = IPAddress.Parse("10.1.2.3");
        return context;
    }

    private static InvocationTransformer Transformer(Func<AttemptFailure, bool>? willRetry = null, Action<HttpResponse>? stamp = null) =>
        new(new PathString("/team-a/llm"), willRetry ?? (_ => false), stamp ?? (_ => { }));

    private static string Header(HttpRequestMessage request, string name) =>
        request.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : "(none)";

    [Test]
    public async Task The_pod_gets_the_path_after_the_function_and_the_query()
    {
        var context = Incoming("/team-a/llm/v1/chat", "?stream=true");
        using var request = new HttpRequestMessage();
        await Transformer().TransformRequestAsync(context, request, "http://10.0.0.7:8099", CancellationToken.None);

        Assert.That(request.RequestUri, Is.EqualTo(new Uri("http://10.0.0.7:8099/v1/chat?stream=true")));
    }

    [TestCase("/team-a/llm", "/")]
    [TestCase("/team-a/llm/", "/")]
    [TestCase("/team-a/llm/predict", "/predict")]
    [TestCase("/team-a/llm/a/b%2Fc", "/a/b%2Fc")]
    [TestCase("/Team-A/LLM/predict", "/predict")]
    public void The_pod_path_drops_the_prefix(string path, string expected) =>
        Assert.That(InvocationTransformer.PodPath(new PathString(path), new PathString("/team-a/llm")).Value, Is.EqualTo(expected));

    [Test]
    public async Task Forwarded_headers_are_the_gateways_own_whatever_the_client_sent()
    {
        var context = Incoming("/team-a/llm/predict");
        context.Request.Headers["X-Forwarded-For"] = "6.6.6.6";
        context.Request.Headers["X-Forwarded-Proto"] = "https";
        context.Request.Headers["X-Forwarded-Host"] = "forged.example";
        context.Request.Headers["X-Forwarded-Prefix"] = "/admin";
        context.Request.Headers["Forwarded"] = "for=6.6.6.6;proto=https";
        context.Request.Headers["X-Custom"] = "kept";
        using var request = new HttpRequestMessage();
        await Transformer().TransformRequestAsync(context, request, "http://10.0.0.7:8099", CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(Header(request, "X-Forwarded-For"), Is.EqualTo("10.1.2.3"));
            Assert.That(Header(request, "X-Forwarded-Proto"), Is.EqualTo("http"));
            Assert.That(Header(request, "X-Forwarded-Host"), Is.EqualTo("gateway.example:8080"));
            Assert.That(Header(request, "X-Forwarded-Prefix"), Is.EqualTo("/team-a/llm"));
            Assert.That(Header(request, "Forwarded"), Is.EqualTo("(none)"));
            Assert.That(Header(request, "X-Custom"), Is.EqualTo("kept"));
        });
    }

    [Test]
    public async Task A_failure_about_to_be_retried_leaves_the_clients_response_untouched()
    {
        var context = Incoming("/team-a/llm/predict");
        var asked = new List<AttemptFailure>();
        var stamped = false;
        var transformer = Transformer(f => { asked.Add(f); return true; }, _ => stamped = true);
        // The forwarder copies the status before it asks the transformer.
        context.Response.StatusCode = 500;
        using var answer = new HttpResponseMessage(HttpStatusCode.InternalServerError);
        answer.Headers.TryAddWithoutValidation("X-From-Pod", "yes");

        var copy = await transformer.TransformResponseAsync(context, answer, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(copy, Is.False);
            Assert.That(transformer.Declined, Is.True);
            Assert.That(transformer.Failure, Is.EqualTo(AttemptFailure.ServerError));
            Assert.That(asked, Is.EqualTo(new[] { AttemptFailure.ServerError }));
            Assert.That(context.Response.StatusCode, Is.EqualTo(200), "the next attempt starts from a clean response");
            Assert.That(context.Response.Headers.ContainsKey("X-From-Pod"), Is.False);
            Assert.That(stamped, Is.False);
        });
    }

    [Test]
    public async Task The_last_failure_is_copied_with_the_start_headers()
    {
        var context = Incoming("/team-a/llm/predict");
        var transformer = Transformer(_ => false, r => r.Headers["X-Pilotlight-Start"] = "ready");
        context.Response.StatusCode = 500;
        using var answer = new HttpResponseMessage(HttpStatusCode.InternalServerError);
        answer.Headers.TryAddWithoutValidation(AttemptOutcome.NoRetryHeader, "true");

        var copy = await transformer.TransformResponseAsync(context, answer, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(copy, Is.True);
            Assert.That(transformer.Declined, Is.False);
            Assert.That(transformer.Failure, Is.EqualTo(AttemptFailure.ServerErrorNoRetry));
            Assert.That(transformer.Status, Is.EqualTo(500));
            Assert.That(context.Response.StatusCode, Is.EqualTo(500));
            Assert.That(context.Response.Headers[AttemptOutcome.NoRetryHeader].ToString(), Is.EqualTo("true"));
            Assert.That(context.Response.Headers["X-Pilotlight-Start"].ToString(), Is.EqualTo("ready"));
        });
    }

    [Test]
    public async Task A_success_is_never_offered_for_retry()
    {
        var context = Incoming("/team-a/llm/predict");
        var asked = false;
        var transformer = Transformer(_ => asked = true);
        using var answer = new HttpResponseMessage(HttpStatusCode.OK);

        Assert.That(await transformer.TransformResponseAsync(context, answer, CancellationToken.None), Is.True);
        Assert.That(asked, Is.False);
        Assert.That(transformer.Failure, Is.EqualTo(AttemptFailure.None));
    }

    [Test]
    public async Task No_answer_is_left_to_the_gateway_to_write()
    {
        var transformer = Transformer(_ => true);
        Assert.That(await transformer.TransformResponseAsync(Incoming("/team-a/llm"), null, CancellationToken.None), Is.False);
        Assert.That(transformer.Declined, Is.False);
    }

    [TestCase("http://127.0.0.1:8080", "127.0.0.1:8080")]
    [TestCase("http://0.0.0.0:8080;http://localhost:9000", "0.0.0.0:8080,127.0.0.1:9000")]
    [TestCase("http://*:8080", "0.0.0.0:8080")]
    [TestCase("http://[::1]:8081", "[::1]:8081")]
    public void Listen_urls_become_endpoints(string urls, string expected) =>
        Assert.That(string.Join(",", GatewayApp.ListenEndpoints(urls).Select(e => e.ToString())), Is.EqualTo(expected));

    [Test]
    public void The_gateway_refuses_to_listen_on_https() =>
        Assert.Throws<ArgumentException>(() => GatewayApp.ListenEndpoints("https://0.0.0.0:8443"));

    [TestCase(false, "(none)", "(none)")]
    [TestCase(true, "Bearer caller-token", "session=abc")]
    public async Task The_callers_credentials_reach_the_function_only_when_it_asks(bool pass, string authorization, string cookie)
    {
        var context = Incoming("/team-a/llm/predict");
        context.Request.Headers.Authorization = "Bearer caller-token";
        context.Request.Headers.Cookie = "session=abc";
        using var request = new HttpRequestMessage();
        await new InvocationTransformer(new PathString("/team-a/llm"), _ => false, _ => { }, pass)
            .TransformRequestAsync(context, request, "http://10.0.0.7:8099", CancellationToken.None);

        Assert.That((Header(request, "Authorization"), Header(request, "Cookie")), Is.EqualTo((authorization, cookie)));
    }

    [Test]
    public async Task A_host_routed_request_keeps_its_path_and_has_no_prefix()
    {
        var context = Incoming("/team-a/llm/predict", "?x=1", host: "llm.team-a.example.test");
        context.Request.Headers["X-Forwarded-Prefix"] = "/forged";
        using var request = new HttpRequestMessage();
        await new InvocationTransformer(PathString.Empty, _ => false, _ => { })
            .TransformRequestAsync(context, request, "http://10.0.0.7:8099", CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(request.RequestUri, Is.EqualTo(new Uri("http://10.0.0.7:8099/team-a/llm/predict?x=1")));
            Assert.That(Header(request, "X-Forwarded-Prefix"), Is.EqualTo("(none)"));
            Assert.That(Header(request, "X-Forwarded-Host"), Is.EqualTo("llm.team-a.example.test"));
        });
    }
}
