using Cel;
using k8s;
using k8s.Models;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// Who may put Pilotlight's labels on pods: on clusters with ValidatingAdmissionPolicy the chart ships a policy (its
/// CEL evaluated here by an interpreter, as the API server would), elsewhere a rule of the operator's webhook.
/// </summary>
public sealed class ChartPodLabelPolicyTests
{
    private const string Vap = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
    private const string Operator = "system:serviceaccount:pilotlight-system:pilotlight-operator";

    [Test]
    public async Task Without_the_policy_api_the_webhook_takes_managed_pods_and_with_it_the_policy_does()
    {
        var old = await Helm.TemplateAsync(showOnly: ["templates/webhook.yaml"]);
        var webhook = KubernetesYaml.LoadAllFromString(old).OfType<V1ValidatingWebhookConfiguration>().Single();
        var pods = webhook.Webhooks.Single(w => w.Name == "pods.pilotlight.dev");
        Assert.That(pods.FailurePolicy, Is.EqualTo("Ignore"), "pod creation never waits on the operator");
        Assert.That(pods.ObjectSelector.MatchLabels, Is.EquivalentTo(new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "pilotlight" }));
        Assert.That(pods.Rules.Single().Resources, Is.EqualTo(new[] { "pods" }));
        var operatorArgs = KubernetesYaml.LoadAllFromString(await Helm.TemplateAsync(showOnly: ["templates/operator-deployment.yaml"]))
            .OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single().Args;
        Assert.That(string.Join(' ', operatorArgs), Does.Contain($"--pod-label-writers {Operator}"));

        var modern = await Helm.TemplateAsync(showOnly: ["templates/webhook.yaml", "templates/pod-labels-policy.yaml"], apiVersions: [Vap]);
        Assert.That(KubernetesYaml.LoadAllFromString(modern).OfType<V1ValidatingWebhookConfiguration>().Single().Webhooks.Select(w => w.Name),
            Is.EqualTo(new[] { "validate.pilotlight.dev" }), "the policy takes pods over");
        Assert.That(modern, Does.Contain("kind: ValidatingAdmissionPolicy\n").And.Contain("kind: ValidatingAdmissionPolicyBinding"));
        Assert.That(old, Does.Not.Contain("kind: ValidatingAdmissionPolicy"));
    }

    private static (Dictionary<string, string> Variables, string Validation) Policy(string yaml)
    {
        var policy = (Dictionary<object, object>)new YamlDotNet.Serialization.DeserializerBuilder().Build()
            .Deserialize<object>(yaml.Split("---")[1].Trim())!;
        var spec = (Dictionary<object, object>)policy["spec"];
        var variables = ((List<object>)spec["variables"]).Cast<Dictionary<object, object>>().ToDictionary(v => (string)v["name"], v => (string)v["expression"]);
        var validation = (string)((Dictionary<object, object>)((List<object>)spec["validations"]).Single())["expression"];
        return (variables, validation);
    }

    private static Dictionary<string, object?> Pod(params (string Key, string Value)[] labels) => new()
    {
        ["metadata"] = new Dictionary<string, object?> { ["name"] = "p", ["labels"] = labels.ToDictionary(l => l.Key, l => (object?)l.Value) },
    };

    private static bool Allowed(string yaml, string user, Dictionary<string, object?> pod, Dictionary<string, object?>? old)
    {
        var (variables, validation) = Policy(yaml);
        var cel = new CelEnvironment([], null);
        var context = new Dictionary<string, object?>
        {
            ["object"] = pod, ["oldObject"] = old, ["request"] = new Dictionary<string, object?> { ["userInfo"] = new Dictionary<string, object?> { ["username"] = user } },
        };
        // In order: a variable may use the ones before it, as in the API server.
        var computed = new Dictionary<string, object?>();
        context["variables"] = computed;
        foreach (var (name, expression) in variables)
        {
            computed[name] = cel.Compile(expression).Invoke(context);
        }

        return cel.Compile(validation).Invoke(context) is true;
    }

    [Test]
    public async Task The_policy_lets_the_operator_and_unrelated_edits_through_and_refuses_the_rest()
    {
        var yaml = await Helm.TemplateAsync(showOnly: ["templates/pod-labels-policy.yaml"], apiVersions: [Vap]);
        var managed = Pod(("app.kubernetes.io/managed-by", "pilotlight"), ("pilotlight.dev/function", "llm"));
        Assert.Multiple(() =>
        {
            Assert.That(Allowed(yaml, Operator, managed, null), Is.True, "the operator creates its pods");
            Assert.That(Allowed(yaml, "alice", managed, null), Is.False, "a forged pod");
            Assert.That(Allowed(yaml, "alice", Pod(("pilotlight.dev/sandbox-pool", "py")), null), Is.False, "a pool's label alone");
            Assert.That(Allowed(yaml, "alice", Pod(("app.kubernetes.io/managed-by", "pilotlight")), null), Is.False, "managed-by alone");
            Assert.That(Allowed(yaml, "alice", Pod(("app", "x"), ("app.kubernetes.io/managed-by", "helm")), null), Is.True, "other pods");
            Assert.That(Allowed(yaml, "alice", Pod(("app.kubernetes.io/managed-by", "pilotlight"), ("pilotlight.dev/function", "llm"), ("team", "a")), managed), Is.True,
                "an unrelated label on a Pilotlight pod");
            Assert.That(Allowed(yaml, "alice", Pod(("app.kubernetes.io/managed-by", "pilotlight"), ("pilotlight.dev/function", "other")), managed), Is.False, "moved to another function");
            Assert.That(Allowed(yaml, "alice", Pod(("app.kubernetes.io/managed-by", "pilotlight")), managed), Is.False, "a label removed");
            Assert.That(Allowed(yaml, "alice", managed, Pod(("app", "x"))), Is.False, "labels added to an existing pod");
        });
    }
}
