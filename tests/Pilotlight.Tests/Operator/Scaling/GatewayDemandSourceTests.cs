using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using k8s.Models;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Scaling;

namespace Pilotlight.Tests.Operator.Scaling;

/// <summary>Which gateways a poll could read: an unread one makes the report incomplete, never zero.</summary>
public sealed class GatewayDemandSourceTests
{
    private static readonly Uri Up = new("http://gateway-up:8080");
    private static readonly Uri Down = new("http://gateway-down:8080");
    private static readonly Uri Garbled = new("http://gateway-garbled:8080");

    private sealed class Gateways : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            request.RequestUri!.Host switch
            {
                "gateway-up" or "10.0.0.1" or "10.0.0.2" => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)
                {
                    Content = new StringContent("""[{"namespace":"ns","name":"fn","inFlight":2,"lastFinished":"2026-11-23T10:00:00Z","pods":{"a":2}}]""",
                        System.Text.Encoding.UTF8, "application/json"),
                }),
                "gateway-garbled" => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)
                {
                    Content = new StringContent("<html>proxy error</html>", System.Text.Encoding.UTF8, "text/html"),
                }),
                _ => throw new HttpRequestException("Connection refused"),
            };
    }

    private static async Task<DemandReport> PollAsync(params Uri[] gateways)
    {
        using var http = new HttpClient(new Gateways());
        return await new GatewayDemandSource(http, () => gateways, NullLogger.Instance).PollAsync(CancellationToken.None);
    }

    [Test]
    public async Task Every_gateway_read_is_a_complete_report()
    {
        var report = await PollAsync(Up);
        Assert.That(report.Complete, Is.True);
        Assert.That(report.Functions.Single().InFlight, Is.EqualTo(2));
        Assert.That(report.Functions.Single().LastFinished, Is.EqualTo(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero)));
    }

    [Test]
    public async Task An_unreachable_or_garbled_gateway_makes_it_incomplete_and_is_named()
    {
        var report = await PollAsync(Up, Down, Garbled);
        Assert.That(report.Complete, Is.False);
        Assert.That(report.Unread, Is.EquivalentTo(new[] { Down, Garbled }));
        Assert.That(report.Functions.Single().InFlight, Is.EqualTo(2), "what the others said still counts (for scale-up)");
    }

    [Test]
    public async Task Two_gateway_pods_behind_one_service_add_up_and_a_not_ready_one_is_unread()
    {
        var service = new ObjectKey("pilotlight-system", "pilotlight-gateway");
        var endpoints = new V1Endpoints
        {
            Metadata = new V1ObjectMeta { Name = service.Name, NamespaceProperty = service.Namespace },
            Subsets =
            [
                new V1EndpointSubset
                {
                    Addresses = [new V1EndpointAddress { Ip = "10.0.0.1" }, new V1EndpointAddress { Ip = "10.0.0.2" }],
                    NotReadyAddresses = [new V1EndpointAddress { Ip = "10.0.0.3" }],
                    Ports = [new Corev1EndpointPort { Name = "http", Port = 8080 }],
                },
            ],
        };
        using var http = new HttpClient(new Gateways());
        var report = await new GatewayDemandSource(http, () => GatewaySet.FromEndpoints(service, endpoints), NullLogger.Instance)
            .PollAsync(CancellationToken.None);

        Assert.That(report.Functions.Single().InFlight, Is.EqualTo(4), "both ready pods read and added");
        Assert.That(report.Unread, Is.EqualTo(new[] { new Uri("http://10.0.0.3:8080/") }), "the not-ready pod is unknown, not zero");
        Assert.That(report.Complete, Is.False);
    }

    [Test]
    public async Task No_gateways_configured_is_a_complete_report_of_no_demand()
    {
        var report = await PollAsync();
        Assert.That(report.Complete, Is.True);
        Assert.That(report.Functions, Is.Empty);
    }
}
