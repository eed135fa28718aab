using k8s.Models;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Scaling;

namespace Pilotlight.Tests.Operator.Scaling;

/// <summary>Which gateway pods a Service's Endpoints say to read, and which are unknown.</summary>
public sealed class GatewaySetTests
{
    private static readonly ObjectKey Service = new("pilotlight-system", "pilotlight-gateway");

    private static V1Endpoints Endpoints(params V1EndpointSubset[] subsets) => new()
    {
        Metadata = new V1ObjectMeta { Name = Service.Name, NamespaceProperty = Service.Namespace },
        Subsets = subsets,
    };

    private static string[] Urls(IEnumerable<GatewayAddress> gateways) => [.. gateways.Select(g => g.Url.ToString())];

    [Test]
    public void Ready_addresses_are_read_at_the_http_port_and_not_ready_ones_are_unreadable()
    {
        var set = GatewaySet.FromEndpoints(Service, Endpoints(new V1EndpointSubset
        {
            Addresses = [new V1EndpointAddress { Ip = "10.1.0.5" }, new V1EndpointAddress { Ip = "fd00::7" }],
            NotReadyAddresses = [new V1EndpointAddress { Ip = "10.1.0.6" }],
            Ports = [new Corev1EndpointPort { Name = "metrics", Port = 9090 }, new Corev1EndpointPort { Name = "http", Port = 8080 }],
        }));

        Assert.That(Urls(set.Poll), Is.EqualTo(new[] { "http://10.1.0.5:8080/", "http://[fd00::7]:8080/" }));
        Assert.That(Urls(set.Unreadable), Is.EqualTo(new[] { "http://10.1.0.6:8080/" }));
        Assert.That(set.Poll.Concat(set.Unreadable).Select(g => g.Label).Distinct(), Is.EqualTo(new[] { "pilotlight-system/pilotlight-gateway" }),
            "one metric label per Service, whatever the pod IPs");
    }

    [Test]
    public void A_subset_with_one_unnamed_port_uses_it_and_one_with_no_usable_port_is_unreadable()
    {
        var set = GatewaySet.FromEndpoints(Service, Endpoints(
            new V1EndpointSubset { Addresses = [new V1EndpointAddress { Ip = "10.1.0.5" }], Ports = [new Corev1EndpointPort { Port = 8081 }] },
            new V1EndpointSubset
            {
                Addresses = [new V1EndpointAddress { Ip = "10.1.0.9" }],
                Ports = [new Corev1EndpointPort { Name = "a", Port = 1 }, new Corev1EndpointPort { Name = "b", Port = 2 }],
            }));

        Assert.That(Urls(set.Poll), Is.EqualTo(new[] { "http://10.1.0.5:8081/" }));
        Assert.That(set.Unreadable.Select(g => g.Url.Host), Is.EqualTo(new[] { "10.1.0.9" }));
    }

    [Test]
    public void Endpoints_not_seen_are_unknown_demand_and_empty_ones_are_no_gateway()
    {
        var unseen = GatewaySet.FromEndpoints(Service, null);
        Assert.That(unseen.Poll, Is.Empty);
        Assert.That(unseen.Unreadable, Has.Count.EqualTo(1));

        var empty = GatewaySet.FromEndpoints(Service, Endpoints());
        Assert.That(empty.Poll, Is.Empty);
        Assert.That(empty.Unreadable, Is.Empty);
        Assert.That(empty.Labels, Is.EqualTo(new[] { "pilotlight-system/pilotlight-gateway" }), "its unread gauge still goes back to 0");
    }

    [Test]
    public void Named_gateways_and_a_service_add_up()
    {
        var set = GatewaySet.Of([new Uri("http://extra:8080/")])
            .With(GatewaySet.FromEndpoints(Service, Endpoints(new V1EndpointSubset
            {
                Addresses = [new V1EndpointAddress { Ip = "10.1.0.5" }], Ports = [new Corev1EndpointPort { Name = "http", Port = 8080 }],
            })));
        Assert.That(Urls(set.Poll), Is.EqualTo(new[] { "http://extra:8080/", "http://10.1.0.5:8080/" }));
        Assert.That(set.Labels, Is.EqualTo(new[] { "http://extra:8080/", "pilotlight-system/pilotlight-gateway" }));
    }
}
