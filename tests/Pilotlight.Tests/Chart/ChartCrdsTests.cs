using k8s;
using k8s.Models;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// The chart's CRDs are templates (crds.install), so helm upgrade applies new versions of them; Helm would never
/// upgrade a chart's crds/ directory. Kept on uninstall unless crds.keep is false.
/// </summary>
[TestFixture]
public class ChartCrdsTests
{
    private static readonly string[] Names = ["gpufunctions.pilotlight.dev", "sandboxes.pilotlight.dev", "sandboxwarmpools.pilotlight.dev"];

    private static async Task<List<V1CustomResourceDefinition>> RenderAsync(params string[] set) =>
        [.. KubernetesYaml.LoadAllFromString(await Helm.TemplateAsync(set: set)).OfType<V1CustomResourceDefinition>()];

    private static System.Text.Json.Nodes.JsonNode WithoutCel(V1CustomResourceDefinition crd)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(KubernetesJson.Serialize(crd.Spec))!;
        void Strip(System.Text.Json.Nodes.JsonNode? n)
        {
            switch (n)
            {
                case System.Text.Json.Nodes.JsonObject o:
                    o.Remove("x-kubernetes-validations");
                    foreach (var (_, child) in o.ToList())
                    {
                        Strip(child);
                    }

                    break;
                case System.Text.Json.Nodes.JsonArray a:
                    foreach (var child in a)
                    {
                        Strip(child);
                    }

                    break;
            }
        }

        Strip(node);
        return node;
    }

    [Test]
    public async Task A_cluster_before_1_25_gets_the_same_crds_without_their_cel_rules_which_its_api_server_would_refuse()
    {
        var current = KubernetesYaml.LoadAllFromString(await Helm.TemplateAsync(showOnly: ["templates/crds.yaml"], kubeVersion: "1.29.0")).OfType<V1CustomResourceDefinition>().ToList();
        var oldYaml = await Helm.TemplateAsync(showOnly: ["templates/crds.yaml"], kubeVersion: "1.20.2");
        var old = KubernetesYaml.LoadAllFromString(oldYaml).OfType<V1CustomResourceDefinition>().ToList();

        Assert.That(KubernetesJson.Serialize(current), Does.Contain("x-kubernetes-validations"), "1.25 and later keep the rules");
        Assert.That(oldYaml, Does.Not.Contain("x-kubernetes-validations"));
        Assert.That(old.Select(c => c.Metadata.Name), Is.EqualTo(current.Select(c => c.Metadata.Name)));
        foreach (var (a, b) in old.Zip(current))
        {
            Assert.That(WithoutCel(a).ToJsonString(), Is.EqualTo(WithoutCel(b).ToJsonString()), "only the rules go: " + a.Metadata.Name);
        }
    }

    [Test]
    public async Task By_default_every_generated_crd_is_a_template_kept_on_uninstall_and_labelled_as_the_releases()
    {
        var crds = await RenderAsync();

        Assert.That(crds.Select(c => c.Metadata.Name).Order(), Is.EqualTo(Names));
        foreach (var crd in crds)
        {
            Assert.That(crd.Metadata.Annotations?["helm.sh/resource-policy"], Is.EqualTo("keep"), crd.Metadata.Name);
            Assert.That(crd.Metadata.Labels?["app.kubernetes.io/managed-by"], Is.EqualTo("Helm"), crd.Metadata.Name);
            Assert.That(crd.Metadata.Labels?["app.kubernetes.io/instance"], Is.EqualTo(Helm.Release), crd.Metadata.Name);

            // The same API as the generated crds/, so an upgrade applies exactly what `make crds` wrote.
            var generated = Directory.GetFiles(Path.Combine(RepositoryRoot.Path, "crds"), "*.yaml")
                .Select(f => KubernetesYaml.Deserialize<V1CustomResourceDefinition>(File.ReadAllText(f)))
                .Single(c => c.Metadata.Name == crd.Metadata.Name);
            Assert.That(KubernetesJson.Serialize(crd.Spec), Is.EqualTo(KubernetesJson.Serialize(generated.Spec)), crd.Metadata.Name);
        }

        Assert.That(Directory.Exists(Path.Combine(Helm.ChartPath, "crds")), Is.False,
            "no crds/ directory: Helm installs it once and never upgrades it, and would collide with the templates");
    }

    [Test]
    public async Task Keep_off_lets_uninstall_delete_them_and_install_off_renders_none()
    {
        var unkept = await RenderAsync("crds.keep=false");
        Assert.That(unkept, Has.Count.EqualTo(Names.Length));
        Assert.That(unkept.Where(c => c.Metadata.Annotations?.ContainsKey("helm.sh/resource-policy") == true), Is.Empty);

        Assert.That(await RenderAsync("crds.install=false"), Is.Empty);
        Assert.That(await RenderAsync("crds.install=false", "crds.keep=false"), Is.Empty);
    }
}
