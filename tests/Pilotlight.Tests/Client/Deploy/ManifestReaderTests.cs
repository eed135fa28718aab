using System.Text.Json.Nodes;
using Pilotlight.Client;
using Pilotlight.Client.Deploy;

namespace Pilotlight.Tests.Client.Deploy;

public class ManifestReaderTests
{
    [Test]
    public void Reads_every_document_of_a_file_and_skips_empty_ones()
    {
        var objects = ManifestReader.Parse("""
            # a comment before the first document
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata: {name: a}
            ---
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: b
              namespace: other
            data: {k: v}
            ---
            """, "fns.yaml");

        Assert.That(objects.Select(o => (o.Kind, o.Name, o.Namespace, o.Group, o.Version)), Is.EqualTo(new (string, string, string?, string, string)[]
        {
            ("GpuFunction", "a", null, "pilotlight.dev", "v1alpha1"),
            ("ConfigMap", "b", "other", "", "v1"),
        }));
        Assert.That(objects[1].Source, Is.EqualTo("fns.yaml#3"));
    }

    [Test]
    public void Scalars_follow_the_yaml_1_2_core_schema()
    {
        var o = ManifestReader.Parse("""
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: s}
            int: 42
            negative: -7
            hex: 0x1F
            float: 1.5
            exp: 1e3
            yes: yes
            on: on
            t: true
            f: False
            n: null
            tilde: ~
            empty:
            quoted: "42"
            single: 'true'
            version: 1.20.2
            block: |
              line one
              line two
            tagged: !!str 7
            """, "s.yaml")[0].Object;

        Assert.Multiple(() =>
        {
            Assert.That(o["int"]!.GetValue<long>(), Is.EqualTo(42));
            Assert.That(o["negative"]!.GetValue<long>(), Is.EqualTo(-7));
            Assert.That(o["hex"]!.GetValue<long>(), Is.EqualTo(31));
            Assert.That(o["float"]!.GetValue<double>(), Is.EqualTo(1.5));
            Assert.That(o["exp"]!.GetValue<double>(), Is.EqualTo(1000));
            Assert.That(o["yes"]!.GetValue<string>(), Is.EqualTo("yes"), "YAML 1.1's yes/no/on/off are strings");
            Assert.That(o["on"]!.GetValue<string>(), Is.EqualTo("on"));
            Assert.That(o["t"]!.GetValue<bool>(), Is.True);
            Assert.That(o["f"]!.GetValue<bool>(), Is.False);
            Assert.That(o["n"], Is.Null);
            Assert.That(o.ContainsKey("tilde") && o["tilde"] is null);
            Assert.That(o.ContainsKey("empty") && o["empty"] is null);
            Assert.That(o["quoted"]!.GetValue<string>(), Is.EqualTo("42"));
            Assert.That(o["single"]!.GetValue<string>(), Is.EqualTo("true"));
            Assert.That(o["version"]!.GetValue<string>(), Is.EqualTo("1.20.2"));
            Assert.That(o["block"]!.GetValue<string>(), Is.EqualTo("line one\nline two\n"));
            Assert.That(o["tagged"]!.GetValue<string>(), Is.EqualTo("7"));
        });
    }

    [Test]
    public void Merge_keys_and_anchors_are_resolved_with_the_mapping_own_keys_winning()
    {
        var o = ManifestReader.Parse("""
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: m}
            base: &base {a: 1, b: 2}
            data:
              <<: *base
              b: 3
            copy: *base
            """, "m.yaml")[0].Object;

        Assert.That(o["data"]!.ToJsonString(), Is.EqualTo("""{"a":1,"b":3}"""));
        Assert.That(o["copy"]!.ToJsonString(), Is.EqualTo("""{"a":1,"b":2}"""));
    }

    [Test]
    public void A_list_is_expanded_into_its_items()
    {
        var objects = ManifestReader.Parse("""
            {"apiVersion": "v1", "kind": "List", "items": [
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}},
              {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "two"}}
            ]}
            """, "list.json");

        Assert.That(objects.Select(o => $"{o.Kind}/{o.Name}"), Is.EqualTo(new[] { "ConfigMap/one", "Secret/two" }));
    }

    [Test]
    public void A_directory_is_read_recursively_in_path_order_and_other_files_are_ignored()
    {
        var dir = Directory.CreateTempSubdirectory("manifests-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            File.WriteAllText(Path.Combine(dir, "b.yml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
            File.WriteAllText(Path.Combine(dir, "a.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
            File.WriteAllText(Path.Combine(dir, "sub", "c.json"), """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}""");
            File.WriteAllText(Path.Combine(dir, "README.md"), "not: a manifest");

            var names = ManifestReader.Read([dir]).Select(o => o.Name);

            Assert.That(names, Is.EqualTo(new[] { "a", "b", "c" }));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Bad_yaml_names_the_file_and_line_with_a_hint()
    {
        var e = Assert.Throws<PilotlightClientException>(() => ManifestReader.Parse("apiVersion: v1\nkind: ConfigMap\n  metadata: [oops\n", "bad.yaml"));

        Assert.That(e!.Message, Does.StartWith("bad.yaml: not valid YAML at line"));
        Assert.That(e.Hint, Is.Not.Null);
    }

    [TestCase("kind: ConfigMap\nmetadata: {name: x}\n", "no apiVersion")]
    [TestCase("apiVersion: v1\nmetadata: {name: x}\n", "no kind")]
    [TestCase("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", "no metadata.name")]
    [TestCase("- just\n- a list\n", "must be a mapping")]
    public void An_object_that_cannot_be_applied_is_refused(string yaml, string expected)
    {
        var e = Assert.Throws<PilotlightClientException>(() => ManifestReader.Parse(yaml, "x.yaml"));

        Assert.That(e!.Message, Does.Contain(expected));
    }

    [Test]
    public void A_missing_path_is_refused_with_a_hint()
    {
        var e = Assert.Throws<PilotlightClientException>(() => ManifestReader.Read(["/no/such/manifest.yaml"]));

        Assert.That(e!.Message, Does.Contain("/no/such/manifest.yaml"));
    }

    [Test]
    public void Standard_input_is_read_for_a_dash()
    {
        var objects = ManifestReader.Read(["-"], new StringReader("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n"));

        Assert.That(objects.Single().Source, Is.EqualTo("<stdin>"));
    }

    [Test]
    public void The_samples_are_read()
    {
        var objects = ManifestReader.Read([Path.Combine(RepositoryRoot.Path, "samples", "functions")]);

        Assert.That(objects, Has.Count.GreaterThanOrEqualTo(3));
        Assert.That(objects.All(o => o.Kind == "GpuFunction" && o.Object["spec"] is JsonObject));
    }
}
