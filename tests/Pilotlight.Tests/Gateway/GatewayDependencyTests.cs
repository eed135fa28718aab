using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>The gateway stands on its own: it shares the contract with the operator, never the operator's code.</summary>
public class GatewayDependencyTests
{
    [Test]
    public void The_gateway_assembly_does_not_reference_the_operator()
    {
        var references = typeof(GatewayApp).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.That(references, Does.Contain("Pilotlight.Contracts"));
        Assert.That(references, Does.Not.Contain("Pilotlight.Operator"));
    }

    [Test]
    public void The_gateway_image_neither_copies_nor_builds_the_operator_project()
    {
        var dockerfile = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docker", "gateway.Dockerfile"));
        Assert.That(dockerfile, Does.Not.Contain("Pilotlight.Operator/"));
        Assert.That(dockerfile, Does.Contain("operator/Pilotlight.Contracts/"));
    }
}
