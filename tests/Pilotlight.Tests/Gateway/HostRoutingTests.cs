using Microsoft.AspNetCore.Http;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

public class HostRoutingTests
{
    [TestCase("fn.ns.example.test", "ns", "fn")]
    [TestCase("FN.Team-A.Example.Test:8080", "team-a", "fn")]
    [TestCase("llm.team-a.example.test.", "team-a", "llm")]
    public void A_function_host_names_the_function_and_its_namespace(string host, string ns, string fn)
    {
        Assert.That(HostRouting.Match(new HostString(host), "example.test", out var matchedNs, out var matchedFn), Is.EqualTo(HostMatch.Function));
        Assert.That((matchedNs, matchedFn), Is.EqualTo((ns, fn)));
    }

    [TestCase("example.test")]
    [TestCase("ns.example.test")]
    [TestCase("a.fn.ns.example.test")]
    [TestCase("-fn.ns.example.test")]
    [TestCase("fn_x.ns.example.test")]
    public void Other_hosts_under_the_domain_are_unknown(string host) =>
        Assert.That(HostRouting.Match(new HostString(host), "example.test", out _, out _), Is.EqualTo(HostMatch.Unknown));

    [TestCase("127.0.0.1:8080")]
    [TestCase("pilotlight-gateway.pilotlight-system")]
    [TestCase("fn.ns.notexample.test")]
    [TestCase("fn.ns.example.test.evil")]
    public void Hosts_outside_the_domain_go_to_path_routing(string host) =>
        Assert.That(HostRouting.Match(new HostString(host), "example.test", out _, out _), Is.EqualTo(HostMatch.Elsewhere));
}
