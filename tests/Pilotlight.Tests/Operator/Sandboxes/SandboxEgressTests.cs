using k8s.Models;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Sandboxes;

public class SandboxEgressTests
{
    private static readonly SandboxOptions Options = new() { EgressFloor = [.. SandboxOptions.DefaultEgressFloor, "10.0.0.0/8", "fd12::/16"] };

    private static Dictionary<string, IList<string>?> Blocks(params string[] asked) =>
        SandboxEgress.Peers(asked, Options.EgressFloor).ToDictionary(p => p.IpBlock.Cidr, p => (IList<string>?)p.IpBlock.Except);

    [Test]
    public void The_whole_internet_excepts_every_floor_range_of_its_family()
    {
        var blocks = Blocks("0.0.0.0/0", "::/0");

        Assert.That(blocks["0.0.0.0/0"], Is.EquivalentTo(new[] { "169.254.0.0/16", "10.0.0.0/8" }));
        Assert.That(blocks["::/0"], Is.EquivalentTo(new[] { "fd00:ec2::254/128", "fd12::/16" }));
    }

    [Test]
    public void A_range_beside_the_floor_has_no_except_and_one_inside_it_is_dropped()
    {
        var blocks = Blocks("203.0.113.0/24", "10.1.0.0/16", "169.254.169.254/32");

        Assert.That(blocks.Keys, Is.EqualTo(new[] { "203.0.113.0/24" }));
        Assert.That(blocks["203.0.113.0/24"], Is.Null);
    }

    [Test]
    public void Host_bits_are_cleared_as_the_api_server_reads_the_range()
    {
        Assert.That(Blocks("169.254.1.2/8").Single(), Is.EqualTo(new KeyValuePair<string, IList<string>?>("169.0.0.0/8", ["169.254.0.0/16"])));
    }

    [TestCase("0.0.0.0/0", null)]
    [TestCase("10.2.0.0/16", "lies in 10.0.0.0/8")]
    [TestCase("169.254.169.254/32", "lies in 169.254.0.0/16")]
    [TestCase("300.1.1.1/8", "is not a CIDR range")]
    [TestCase("1.2.3.4/33", "is not a CIDR range")]
    public void Problems_name_the_field_and_why(string asked, string? problem)
    {
        var problems = SandboxEgress.Problems(["203.0.113.0/24", asked], Options);

        Assert.That(problems, problem is null ? Is.Empty : Has.One.StartsWith("spec.network.allowCidrs[1]: ").And.One.Contains(problem));
    }

    [Test]
    public void A_platform_that_caps_egress_refuses_the_whole_internet()
    {
        var capped = Options with { AllowedEgress = ["203.0.113.0/24"] };

        Assert.That(SandboxEgress.Problems(["203.0.113.128/25"], capped), Is.Empty);
        Assert.That(SandboxEgress.Problems(["0.0.0.0/0"], capped).Single(), Does.Contain("wider than this platform allows"));
    }

    [Test]
    public void The_policy_of_a_sandbox_carries_the_floor()
    {
        var sandbox = new Pilotlight.Api.V1Alpha1.Sandbox
        {
            Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = "t", Uid = "u" },
            Spec = new Pilotlight.Api.V1Alpha1.SandboxSpec { Image = "python:3.12", Network = new() { AllowCidrs = ["0.0.0.0/0"] } },
        };

        var policy = SandboxPods.MakeNetworkPolicy(sandbox, Options);

        Assert.That(policy.Spec.Egress.Single().To.Single().IpBlock.Except, Does.Contain("169.254.0.0/16"));
    }
}
