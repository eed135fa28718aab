using System.Text.RegularExpressions;
using Pilotlight.Testing;

namespace Pilotlight.Tests.Chart;

/// <summary>The hello-world a new user is pointed at runs an image the repository builds, under the name it is built as.</summary>
public partial class HelloWorldImageTests
{
    [GeneratedRegex(@"\[model-server\]=(?<name>[a-z0-9/._-]+)")]
    private static partial Regex BuiltName();

    [GeneratedRegex(@"^appVersion:\s*""?(?<v>[^""\s]+)""?", RegexOptions.Multiline)]
    private static partial Regex AppVersion();

    [GeneratedRegex(@"^\s*image:\s*(?<image>\S+)", RegexOptions.Multiline)]
    private static partial Regex Image();

    private static string Read(params string[] path) => File.ReadAllText(Path.Combine([RepositoryRoot.Path, .. path]));

    [Test]
    public void The_demo_sample_names_the_image_docker_build_makes_at_the_charts_version()
    {
        var name = BuiltName().Match(Read("docker", "build.sh")).Groups["name"].Value;
        var version = AppVersion().Match(Read("charts", "pilotlight", "Chart.yaml")).Groups["v"].Value;
        var sample = Image().Match(Read("samples", "demo", "echo-l4.yaml")).Groups["image"].Value;

        Assert.That(name, Is.EqualTo("pilotlight/sample-model-server"));
        Assert.That(sample, Is.EqualTo($"{name}:{version}"), "docker/build.sh model-server builds this name (REGISTRY goes in front)");
        Assert.That(Read("charts", "pilotlight", "templates", "NOTES.txt"), Does.Contain("docker/build.sh model-server").And.Contain("samples/demo/echo-l4.yaml"));
        Assert.That(Read("README.md"), Does.Contain("pilotlight/sample-model-server:" + version));
    }
}
