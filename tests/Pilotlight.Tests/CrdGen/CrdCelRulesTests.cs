using System.Text.Json;
using System.Text.Json.Nodes;
using Cel;
using k8s;
using Pilotlight.Api.V1Alpha1;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Pilotlight.Tests.CrdGen;

/// <summary>
/// The CEL rules in crds/ (x-kubernetes-validations), evaluated by a CEL interpreter the way an API server of 1.25 or
/// later would: on every object at the schema node that carries them. Every sample passes every rule; each mistake
/// the webhook refuses that CEL can state fails exactly its rule; and every list a rule walks is bounded (maxItems),
/// without which Kubernetes refuses the CRD as too costly.
/// </summary>
public sealed class CrdCelRulesTests
{
    private static readonly CelEnvironment Cel = new([], null);

    private static Dictionary<object, object> Schema(string plural)
    {
        var yaml = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "crds", $"pilotlight.dev_{plural}.yaml"));
        var crd = (Dictionary<object, object>)new DeserializerBuilder().Build().Deserialize<object>(yaml)!;
        var version = (Dictionary<object, object>)((List<object>)((Dictionary<object, object>)crd["spec"])["versions"])[0];
        return (Dictionary<object, object>)((Dictionary<object, object>)version["schema"])["openAPIV3Schema"];
    }

    /// <summary>The messages of the rules <paramref name="value"/> breaks, walking <paramref name="schema"/> with it.</summary>
    private static List<string> Broken(Dictionary<object, object> schema, object? value)
    {
        var broken = new List<string>();
        if (value is Dictionary<string, object?> map)
        {
            if (schema.TryGetValue("x-kubernetes-validations", out var rules))
            {
                foreach (Dictionary<object, object> rule in (List<object>)rules)
                {
                    var result = Cel.Compile((string)rule["rule"]).Invoke(new Dictionary<string, object?> { ["self"] = map });
                    if (result is not true)
                    {
                        broken.Add((string)rule["message"]);
                    }
                }
            }

            if (schema.TryGetValue("properties", out var properties))
            {
                foreach (var (name, child) in (Dictionary<object, object>)properties)
                {
                    if (map.TryGetValue((string)name, out var field))
                    {
                        broken.AddRange(Broken((Dictionary<object, object>)child, field));
                    }
                }
            }
        }
        else if (value is List<object?> list && schema.TryGetValue("items", out var items))
        {
            broken.AddRange(list.SelectMany(item => Broken((Dictionary<object, object>)items, item)));
        }

        return broken;
    }

    /// <summary>An object as the API server holds it after defaulting: the typed model's JSON (with its defaults) as CEL values.</summary>
    private static object? Value(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Value(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().Select(Value).ToList(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var l) ? l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };

    private static object? AsStored(object typed) => Value(JsonDocument.Parse(KubernetesJson.Serialize(typed)).RootElement);

    /// <summary>The GpuFunctions and Sandboxes in a YAML stream, read through the API types' JSON (plain scalars typed as YAML 1.2 core does).</summary>
    private static IEnumerable<object> Objects(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        foreach (var document in stream.Documents)
        {
            var json = Json(document.RootNode);
            var kind = json?["kind"]?.GetValue<string>();
            if (kind == GpuFunction.KindName)
            {
                yield return KubernetesJson.Deserialize<GpuFunction>(json!.ToJsonString());
            }
            else if (kind == Sandbox.KindName)
            {
                yield return KubernetesJson.Deserialize<Sandbox>(json!.ToJsonString());
            }
        }
    }

    private static JsonNode? Json(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, Json(kv.Value)))),
        YamlSequenceNode list => new JsonArray([.. list.Children.Select(Json)]),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: "true" or "false" } b => JsonValue.Create(b.Value == "true"),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: "null" or "~" or "" } => null,
        YamlScalarNode { Style: ScalarStyle.Plain } n when long.TryParse(n.Value, System.Globalization.CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => null,
    };

    private static List<string> BrokenBy(string yaml)
    {
        var typed = Objects(yaml).Single();
        return Broken(Schema(typed is GpuFunction ? "gpufunctions" : "sandboxes"), AsStored(typed));
    }

    [Test]
    public void Every_sample_function_and_sandbox_passes_every_rule()
    {
        var checkedObjects = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(RepositoryRoot.Path, "samples"), "*.yaml", SearchOption.AllDirectories))
        {
            foreach (var typed in Objects(File.ReadAllText(file)))
            {
                Assert.That(Broken(Schema(typed is GpuFunction ? "gpufunctions" : "sandboxes"), AsStored(typed)), Is.Empty, file);
                checkedObjects++;
            }
        }

        Assert.That(checkedObjects, Is.GreaterThan(3), "the samples were found");
    }

    private const string Function = """
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata: {name: NAME}
        spec:
          image: example/model-server:1
        """;

    [TestCase("scaling: {minReplicas: 3, maxReplicas: 2}", "spec.scaling.minReplicas: more than spec.scaling.maxReplicas")]
    [TestCase("scaling: {targetConcurrency: 5, maxConcurrency: 2}", "spec.scaling.targetConcurrency: more than spec.scaling.maxConcurrency, which no pod could reach")]
    [TestCase("prewarm: {warmReplicas: 11}", "spec.prewarm.warmReplicas: more than spec.scaling.maxReplicas")]
    [TestCase("prewarm: {reservedReplicas: 3}\n  scaling: {maxReplicas: 2}", "spec.prewarm.reservedReplicas: more than spec.scaling.maxReplicas")]
    [TestCase("port: 8099", "spec.port: 8099 and 9102 are the runtime shim's and the metering sidecar's ports in the same pod")]
    [TestCase("port: 9102", "spec.port: 8099 and 9102 are the runtime shim's and the metering sidecar's ports in the same pod")]
    [TestCase("env: [{name: NVIDIA_VISIBLE_DEVICES, value: all}]", "spec.env: variables starting with NVIDIA_ or PILOTLIGHT_ are set by the operator")]
    [TestCase("env: [{name: OK, value: x}, {name: PILOTLIGHT_SHIM_PORT, value: '1'}]", "spec.env: variables starting with NVIDIA_ or PILOTLIGHT_ are set by the operator")]
    [TestCase("envFrom: [{prefix: NVIDIA_, configMapRef: {name: c}}]", "spec.envFrom: a prefix starting with NVIDIA_ or PILOTLIGHT_ makes variables the operator sets")]
    public void A_function_mistake_breaks_exactly_its_rule(string spec, string message)
    {
        Assert.That(BrokenBy(Function.Replace("NAME", "f", StringComparison.Ordinal) + "\n  " + spec), Is.EqualTo(new[] { message }));
    }

    [Test]
    public void Near_misses_pass()
    {
        foreach (var spec in new[]
        {
            "scaling: {minReplicas: 2, maxReplicas: 2, targetConcurrency: 2, maxConcurrency: 2}", "prewarm: {warmReplicas: 10, reservedReplicas: 10}",
            "port: 8080", "env: [{name: NVIDIA, value: x}, {name: MY_NVIDIA_X, value: y}]", "envFrom: [{prefix: APP_, configMapRef: {name: c}}]",
        })
        {
            Assert.That(BrokenBy(Function.Replace("NAME", "f", StringComparison.Ordinal) + "\n  " + spec), Is.Empty, spec);
        }

        Assert.That(BrokenBy(Function.Replace("NAME", new string('a', 63), StringComparison.Ordinal)), Is.Empty, "63 characters");
    }

    [Test]
    public void A_name_too_long_for_a_service_breaks_the_name_rule_of_both_kinds()
    {
        const string message = "metadata.name: at most 63 characters, since it names a Service and labels pods";
        var name = new string('a', 64);
        Assert.That(BrokenBy(Function.Replace("NAME", name, StringComparison.Ordinal)), Is.EqualTo(new[] { message }));
        Assert.That(BrokenBy($"apiVersion: pilotlight.dev/v1alpha1\nkind: Sandbox\nmetadata: {{name: {name}}}\nspec:\n  image: python:3.12"),
            Is.EqualTo(new[] { message }));
        Assert.That(BrokenBy("apiVersion: pilotlight.dev/v1alpha1\nkind: Sandbox\nmetadata: {name: s}\nspec:\n  image: python:3.12\n  env: [{name: PILOTLIGHT_TOKEN, value: x}]"),
            Is.EqualTo(new[] { "spec.env: variables starting with NVIDIA_ or PILOTLIGHT_ are set by the operator" }));
    }

    [TestCase("gpufunctions")]
    [TestCase("sandboxes")]
    public void Every_list_a_rule_walks_is_bounded(string plural)
    {
        var walked = 0;
        void Visit(Dictionary<object, object> node)
        {
            if (node.TryGetValue("x-kubernetes-validations", out var rules))
            {
                var properties = node.TryGetValue("properties", out var p) ? (Dictionary<object, object>)p : [];
                foreach (Dictionary<object, object> rule in (List<object>)rules)
                {
                    foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches((string)rule["rule"], @"self\.(\w+)\.(all|exists|map|filter)\("))
                    {
                        walked++;
                        Assert.That(((Dictionary<object, object>)properties[m.Groups[1].Value]).ContainsKey("maxItems"), Is.True, $"{m.Groups[1].Value} needs maxItems");
                    }
                }
            }

            var children = node.TryGetValue("properties", out var props) ? ((Dictionary<object, object>)props).Values.ToList() : [];
            foreach (var child in children.OfType<Dictionary<object, object>>())
            {
                Visit(child);
            }
        }

        Visit(Schema(plural));
        Assert.That(walked, Is.EqualTo(2), "env and envFrom");
    }
}
