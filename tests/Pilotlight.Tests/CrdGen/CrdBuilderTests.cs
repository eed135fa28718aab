using Pilotlight.Api.V1Alpha1;
using Pilotlight.CrdGen;
using YamlDotNet.RepresentationModel;

namespace Pilotlight.Tests.CrdGen;

public sealed class CrdBuilderTests
{
    private static readonly IReadOnlyList<GeneratedCrd> Crds = CrdBuilder.BuildAll(typeof(GpuFunction).Assembly);

    [Test]
    public void CommittedCrdsMatchTheTypes()
    {
        var directory = Path.Combine(RepositoryRoot.Path, "crds");
        var committed = Directory.GetFiles(directory, "*.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();

        Assert.That(committed, Is.EqualTo(Crds.Select(c => c.FileName).ToList()), "crds/ holds other files than the types produce: run `make crds`");
        foreach (var crd in Crds)
        {
            Assert.That(File.ReadAllText(Path.Combine(directory, crd.FileName)), Is.EqualTo(crd.Yaml), $"{crd.FileName} is stale: run `make crds`");
        }
    }

    [Test]
    public void NamesShortNamesAndCategory()
    {
        var function = Spec("gpufunctions");
        Assert.That(Scalar(function, "names", "kind"), Is.EqualTo("GpuFunction"));
        Assert.That(Sequence(function, "names", "shortNames"), Is.EqualTo(new[] { "gfn" }));
        Assert.That(Sequence(function, "names", "categories"), Is.EqualTo(new[] { "pilotlight" }));
        Assert.That(Sequence(Spec("sandboxes"), "names", "shortNames"), Is.EqualTo(new[] { "sbx" }));
    }

    [TestCase("gpufunctions", new[] { "GPU", "READY", "REPLICAS", "AGE" })]
    [TestCase("sandboxes", new[] { "READY", "EXPIRES" })]
    public void PrinterColumns(string plural, string[] expected)
    {
        var columns = (YamlSequenceNode)Version(plural)["additionalPrinterColumns"];
        var names = columns.Children.Select(c => ((YamlScalarNode)((YamlMappingNode)c)["name"]).Value).ToList();
        Assert.That(names, Is.SupersetOf(expected));
    }

    [Test]
    public void A_sandboxs_expiry_is_a_string_column_as_kubectl_prints_a_future_date_column_invalid()
    {
        var columns = (YamlSequenceNode)Version("sandboxes")["additionalPrinterColumns"];
        var expires = columns.Children.Cast<YamlMappingNode>().Single(c => ((YamlScalarNode)c["name"]).Value == "EXPIRES");
        Assert.That(((YamlScalarNode)expires["type"]).Value, Is.EqualTo("string"));
    }

    [Test]
    public void Embedded_core_types_carry_the_upstream_descriptions_for_kubectl_explain()
    {
        var spec = Node(Version("gpufunctions"), "schema", "openAPIV3Schema", "properties", "spec", "properties");
        var envName = Node(spec, "env", "items", "properties", "name");
        var tolerationEffect = Node(spec, "tolerations", "items", "properties", "effect");

        Assert.That(((YamlScalarNode)envName["description"]).Value, Does.StartWith("Name of the environment variable"));
        Assert.That(((YamlScalarNode)tolerationEffect["description"]).Value, Does.Contain("NoSchedule"));
        Assert.That(((YamlScalarNode)Node(spec, "env")["description"]).Value, Is.EqualTo("Environment variables for the user's container."),
            "a field of ours keeps our own sentence");
    }

    [TestCase("gpufunctions")]
    [TestCase("sandboxes")]
    public void StatusIsASubresourceWithObservedGenerationAndConditions(string plural)
    {
        var version = Version(plural);
        Assert.That(((YamlMappingNode)version["subresources"]).Children.Keys.Select(k => k.ToString()), Does.Contain("status"));
        var status = Node(version, "schema", "openAPIV3Schema", "properties", "status", "properties");
        Assert.That(status.Children.Keys.Select(k => k.ToString()), Is.SupersetOf(new[] { "observedGeneration", "conditions" }));
    }

    [Test]
    public void GpuTypesAreStringsOfLabelSyntaxNotAnEnum()
    {
        // Which types exist is the platform's catalog, checked by the operator; the schema checks only the syntax.
        var gpu = Node(Version("gpufunctions"), "schema", "openAPIV3Schema", "properties", "spec", "properties", "gpu", "properties");
        foreach (var type in new[] { (YamlMappingNode)gpu["type"], (YamlMappingNode)((YamlMappingNode)gpu["fallbacks"])["items"] })
        {
            Assert.That(Scalar(type, "type"), Is.EqualTo("string"));
            Assert.That(type.Children.Keys.Select(k => k.ToString()), Does.Not.Contain("enum"));
            Assert.That(Scalar(type, "pattern"), Is.EqualTo(Pilotlight.Api.Schema.Patterns.GpuType));
            Assert.That(Scalar(type, "maxLength"), Is.EqualTo("63"));
        }

        Assert.That(Scalar((YamlMappingNode)gpu["count"], "maximum"), Is.EqualTo("8"));
    }

    [Test]
    public void ListMapKeysAreRequiredInTheirItems()
    {
        // The API server refuses a CRD whose list-map keys may be absent.
        var env = Node(Version("gpufunctions"), "schema", "openAPIV3Schema", "properties", "spec", "properties", "env");
        Assert.That(Scalar(env, "x-kubernetes-list-type"), Is.EqualTo("map"));
        Assert.That(Sequence(env, "items", "required"), Does.Contain("name"));
    }

    [Test]
    public void NonNullableNestedObjectsDefaultToEmptySoTheirDefaultsApply()
    {
        var scaling = Node(Version("gpufunctions"), "schema", "openAPIV3Schema", "properties", "spec", "properties", "scaling");
        Assert.That(((YamlMappingNode)scaling["default"]).Children, Is.Empty);
        Assert.That(Scalar(scaling, "properties", "scaledownWindow", "default"), Is.EqualTo("60s"));
    }

    private static YamlMappingNode Spec(string plural)
    {
        var crd = Crds.Single(c => c.FileName == $"pilotlight.dev_{plural}.yaml");
        var stream = new YamlStream();
        stream.Load(new StringReader(crd.Yaml));
        return (YamlMappingNode)((YamlMappingNode)stream.Documents[0].RootNode)["spec"];
    }

    private static YamlMappingNode Version(string plural) =>
        (YamlMappingNode)((YamlSequenceNode)Spec(plural)["versions"]).Children.Single();

    private static YamlMappingNode Node(YamlMappingNode node, params string[] path) =>
        path.Aggregate(node, (current, key) => (YamlMappingNode)current[key]);

    private static string? Scalar(YamlMappingNode node, params string[] path) =>
        ((YamlScalarNode)Node(node, path[..^1])[path[^1]]).Value;

    private static IReadOnlyList<string> Sequence(YamlMappingNode node, params string[] path) =>
        ((YamlSequenceNode)Node(node, path[..^1])[path[^1]]).Children.Select(c => c.ToString()).ToList();
}
