using k8s;
using k8s.Models;
using Pilotlight.Operator;

namespace Pilotlight.Tests.Chart;

/// <summary>
/// What a platform team changes without forking the chart (issue 20): the chart as a subchart with global values,
/// security contexts, disruption budgets, spread, extra env/args/volumes, pod annotations and labels, image digests,
/// log settings, pull secrets for the platform's images, and names that let a second release live beside the first.
/// Each value renders what it says; mistyped values are refused by values.schema.json. Needs only helm.
/// </summary>
[TestFixture]
public sealed class ChartAdaptabilityTests
{
    private string _dir = "";

    [OneTimeSetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("pilotlight-chart-adapt-").FullName;

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static IEnumerable<string> Documents(string yaml) =>
        yaml.Split("\n---\n").Where(d => d.Contains("\nkind: ", StringComparison.Ordinal) || d.StartsWith("kind: ", StringComparison.Ordinal));

    private static string? Find(string yaml, string kind, string name) =>
        Documents(yaml).SingleOrDefault(d => d.Contains($"\nkind: {kind}\n", StringComparison.Ordinal) && d.Contains($"\n  name: {name}\n", StringComparison.Ordinal));

    private static T Get<T>(string yaml, string kind, string name) =>
        KubernetesYaml.Deserialize<T>(Find(yaml, kind, name) ?? throw new AssertionException($"no {kind} {name} in the render"));

    private static V1PodSpec Pod(string yaml, string component, string fullname = "pilotlight") =>
        Get<V1Deployment>(yaml, "Deployment", $"{fullname}-{component}").Spec.Template.Spec;

    private async Task<string> RenderAsync(string values, params string[] set)
    {
        var file = Path.Combine(_dir, $"{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(file, values);
        return await Helm.TemplateAsync(set: set, values: [file]);
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var dir in Directory.GetDirectories(from))
        {
            CopyDirectory(dir, Path.Combine(to, Path.GetFileName(dir)));
        }
    }

    [Test]
    public async Task The_chart_renders_as_a_subchart_with_global_values_and_its_schema_still_checks_what_the_parent_passes()
    {
        var parent = Path.Combine(_dir, "platform");
        CopyDirectory(Helm.ChartPath, Path.Combine(parent, "charts", "pilotlight"));
        await File.WriteAllTextAsync(Path.Combine(parent, "Chart.yaml"), "apiVersion: v2\nname: platform\nversion: 1.0.0\n");
        // A parent's global values reach every subchart's values (Helm merges them in): the schema must let them through.
        await File.WriteAllTextAsync(Path.Combine(parent, "values.yaml"), """
            global:
              imageRegistry: registry.example.com
              labels: {team: platform}
            pilotlight:
              gateway:
                replicas: 3
            """);

        var yaml = await Helm.TemplateAsync(chart: parent, release: "platform", releaseNamespace: "platform");
        var gateway = Get<V1Deployment>(yaml, "Deployment", "platform-pilotlight-gateway");
        Assert.That(gateway.Spec.Replicas, Is.EqualTo(3), "the parent's values for the subchart apply");

        var bad = Path.Combine(_dir, "bad-parent.yaml");
        await File.WriteAllTextAsync(bad, "pilotlight:\n  gateway:\n    replicas: three\n");
        Assert.That(async () => await Helm.TemplateAsync(chart: parent, release: "platform", releaseNamespace: "platform", values: [bad]),
            Throws.InvalidOperationException.With.Message.Contain("replicas"));
    }

    [Test]
    public async Task Security_contexts_keep_the_hardening_by_default_and_a_value_replaces_it_whole()
    {
        var defaults = await Helm.TemplateAsync();
        foreach (var component in new[] { "operator", "gateway" })
        {
            var pod = Pod(defaults, component);
            Assert.That((pod.SecurityContext.RunAsNonRoot, pod.SecurityContext.RunAsUser, pod.SecurityContext.FsGroup), Is.EqualTo((true, 65532L, 65532L)), component);
            var container = pod.Containers.Single().SecurityContext;
            Assert.That((container.ReadOnlyRootFilesystem, container.AllowPrivilegeEscalation), Is.EqualTo((true, false)), component);
            Assert.That(container.Capabilities.Drop, Is.EqualTo(new[] { "ALL" }), component);
        }

        // OpenShift's restricted-v2 SCC assigns the UID from the namespace's range: the chart must not name one.
        var openShift = await RenderAsync("""
            operator:
              podSecurityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
            gateway:
              podSecurityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
              securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
            """);
        foreach (var component in new[] { "operator", "gateway" })
        {
            var pod = Pod(openShift, component);
            Assert.That((pod.SecurityContext.RunAsUser, pod.SecurityContext.RunAsGroup, pod.SecurityContext.FsGroup), Is.EqualTo(((long?)null, (long?)null, (long?)null)), component);
            Assert.That(pod.SecurityContext.SeccompProfile.Type, Is.EqualTo("RuntimeDefault"), component);
        }

        var gatewayContainer = Pod(openShift, "gateway").Containers.Single().SecurityContext;
        Assert.That((gatewayContainer.ReadOnlyRootFilesystem, gatewayContainer.AllowPrivilegeEscalation), Is.EqualTo(((bool?)null, false)));
        Assert.That(Pod(openShift, "operator").Containers.Single().SecurityContext.ReadOnlyRootFilesystem, Is.True, "the operator's container keeps the default");
    }

    [Test]
    public async Task Disruption_budgets_follow_their_values()
    {
        var defaults = await Helm.TemplateAsync();
        Assert.That(Find(defaults, "PodDisruptionBudget", "pilotlight-operator"), Is.Null, "off for the operator by default");
        Assert.That(Get<V1PodDisruptionBudget>(defaults, "PodDisruptionBudget", "pilotlight-gateway").Spec.MinAvailable.Value, Is.EqualTo("1"));

        var yaml = await RenderAsync("""
            operator:
              podDisruptionBudget: {enabled: true}
            gateway:
              replicas: 4
              podDisruptionBudget: {enabled: true, maxUnavailable: 25%}
            """);
        var op = Get<V1PodDisruptionBudget>(yaml, "PodDisruptionBudget", "pilotlight-operator");
        var operatorPods = Get<V1Deployment>(yaml, "Deployment", "pilotlight-operator").Spec.Selector.MatchLabels;
        Assert.That((op.Spec.MinAvailable.Value, op.Spec.MaxUnavailable), Is.EqualTo(("1", (IntOrString?)null)));
        Assert.That(op.Spec.Selector.MatchLabels, Is.EquivalentTo(operatorPods));
        var gateway = Get<V1PodDisruptionBudget>(yaml, "PodDisruptionBudget", "pilotlight-gateway");
        Assert.That((gateway.Spec.MaxUnavailable.Value, gateway.Spec.MinAvailable), Is.EqualTo(("25%", (IntOrString?)null)));

        // One operator replica with minAvailable 1 would block every drain: no budget; with maxUnavailable it is safe.
        Assert.That(Find(await RenderAsync("operator: {replicas: 1, leaderElection: {enabled: true}, podDisruptionBudget: {enabled: true}}"),
            "PodDisruptionBudget", "pilotlight-operator"), Is.Null);
        Assert.That(Get<V1PodDisruptionBudget>(await RenderAsync("operator: {replicas: 1, podDisruptionBudget: {enabled: true, maxUnavailable: 1}}"),
            "PodDisruptionBudget", "pilotlight-operator").Spec.MaxUnavailable.Value, Is.EqualTo("1"));
    }

    [Test]
    public async Task Spread_extra_env_args_volumes_annotations_and_labels_reach_the_pods()
    {
        var yaml = await RenderAsync("""
            operator:
              topologySpreadConstraints:
                - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app.kubernetes.io/component: operator}}}
              extraEnv:
                - {name: HTTPS_PROXY, value: "http://proxy:3128"}
              extraArgs: [--stable-window, 90s]
              extraVolumes:
                - {name: ca, configMap: {name: corporate-ca}}
              extraVolumeMounts:
                - {name: ca, mountPath: /etc/ssl/corporate, readOnly: true}
              podAnnotations: {example.com/owner: platform}
              podLabels: {team: platform}
            gateway:
              topologySpreadConstraints:
                - {maxSkew: 2, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/component: gateway}}}
              extraEnv:
                - name: TOKEN
                  valueFrom: {secretKeyRef: {name: gateway-extra, key: token}}
              extraArgs: [--replay-limit, "2048"]
              extraVolumes:
                - {name: scratch, emptyDir: {}}
              extraVolumeMounts:
                - {name: scratch, mountPath: /scratch}
              podAnnotations: {example.com/owner: edge}
              podLabels: {team: edge}
            """);

        var op = Get<V1Deployment>(yaml, "Deployment", "pilotlight-operator");
        var opPod = op.Spec.Template.Spec;
        var opContainer = opPod.Containers.Single();
        Assert.Multiple(() =>
        {
            Assert.That(opPod.TopologySpreadConstraints.Single().TopologyKey, Is.EqualTo("topology.kubernetes.io/zone"));
            Assert.That(opContainer.Env.Single(e => e.Name == "HTTPS_PROXY").Value, Is.EqualTo("http://proxy:3128"));
            Assert.That(opContainer.Env.Select(e => e.Name), Does.Contain("POD_NAME"), "the chart's own env stays");
            Assert.That(opContainer.Args.TakeLast(2), Is.EqualTo(new[] { "--stable-window", "90s" }));
            Assert.That(opPod.Volumes.Single(v => v.Name == "ca").ConfigMap.Name, Is.EqualTo("corporate-ca"));
            Assert.That(opContainer.VolumeMounts.Single(m => m.Name == "ca").MountPath, Is.EqualTo("/etc/ssl/corporate"));
            Assert.That(opPod.Volumes.Select(v => v.Name), Does.Contain("tmp"));
            Assert.That(op.Spec.Template.Metadata.Annotations["example.com/owner"], Is.EqualTo("platform"));
            Assert.That(op.Spec.Template.Metadata.Annotations.Keys, Does.Contain("checksum/config"));
            Assert.That(op.Spec.Template.Metadata.Labels["team"], Is.EqualTo("platform"));
            Assert.That(op.Spec.Selector.MatchLabels.Keys, Does.Not.Contain("team"), "pod labels never reach the (immutable) selector");
        });
        // The operator must still accept its whole command line (extra flags included).
        Assert.That(Flags.Parse([.. opContainer.Args.Select(a => a.StartsWith("$(", StringComparison.Ordinal) ? "x" : a)]).Error, Is.Null);

        var gw = Get<V1Deployment>(yaml, "Deployment", "pilotlight-gateway");
        var gwPod = gw.Spec.Template.Spec;
        var gwContainer = gwPod.Containers.Single();
        Assert.Multiple(() =>
        {
            var spread = gwPod.TopologySpreadConstraints.Single();
            Assert.That((spread.TopologyKey, spread.MaxSkew), Is.EqualTo(("topology.kubernetes.io/zone", 2)), "the value replaces the default spread");
            Assert.That(gwContainer.Env.Single().ValueFrom.SecretKeyRef.Name, Is.EqualTo("gateway-extra"));
            Assert.That(gwContainer.Args.TakeLast(2), Is.EqualTo(new[] { "--replay-limit", "2048" }));
            Assert.That(gwPod.Volumes.Select(v => v.Name), Is.SupersetOf(new[] { "tmp", "sandbox-agent-tls", "scratch" }));
            Assert.That(gwContainer.VolumeMounts.Single(m => m.Name == "scratch").MountPath, Is.EqualTo("/scratch"));
            Assert.That(gw.Spec.Template.Metadata.Annotations["example.com/owner"], Is.EqualTo("edge"));
            Assert.That(gw.Spec.Template.Metadata.Labels["team"], Is.EqualTo("edge"));
        });
    }

    [Test]
    public async Task A_digest_pins_each_image_and_replaces_its_tag()
    {
        var digest = "sha256:" + new string('a', 64);
        var meter = "sha256:" + new string('b', 64);
        var yaml = await Helm.TemplateAsync(set:
        [
            $"operator.image.digest={digest}", $"gateway.image.digest={digest}", $"shim.image.digest={digest}", $"meter.image.digest={meter}",
            "image.registry=mirror.example.com/pl", "gateway.image.tag=9.9.9",
        ]);
        var op = Pod(yaml, "operator").Containers.Single();
        Assert.Multiple(() =>
        {
            Assert.That(op.Image, Is.EqualTo($"mirror.example.com/pl/pilotlight/operator@{digest}"));
            Assert.That(Pod(yaml, "gateway").Containers.Single().Image, Is.EqualTo($"mirror.example.com/pl/pilotlight/gateway@{digest}"));
            var args = string.Join(' ', op.Args);
            Assert.That(args, Does.Contain($"--shim-image mirror.example.com/pl/pilotlight/runtime-shim@{digest}"));
            Assert.That(args, Does.Contain($"--meter-image mirror.example.com/pl/pilotlight/meter@{meter}"));
        });

        var plain = Pod(await Helm.TemplateAsync(), "operator").Containers.Single().Image;
        Assert.That(plain, Does.StartWith("pilotlight/operator:").And.Not.Contain("@"), "no digest: repository:tag as before");
    }

    [Test]
    public async Task Log_settings_reach_the_operator_and_the_gateway_as_flags_they_accept()
    {
        var defaults = await Helm.TemplateAsync();
        Assert.That(Pod(defaults, "operator").Containers.Single().Args.Concat(Pod(defaults, "gateway").Containers.Single().Args),
            Has.None.StartsWith("--log-"), "the defaults (text, Information) need no flag");

        var yaml = await Helm.TemplateAsync(set: ["logging.format=json", "logging.level=Warning"]);
        foreach (var component in new[] { "operator", "gateway" })
        {
            var args = string.Join(' ', Pod(yaml, component).Containers.Single().Args);
            Assert.That(args, Does.Contain("--log-level Warning").And.Contain("--log-format json"), component);
        }

        var flags = Flags.Parse([.. Pod(yaml, "operator").Containers.Single().Args.Select(a => a.StartsWith("$(", StringComparison.Ordinal) ? "x" : a)]);
        Assert.That(flags.Error, Is.Null);
        Assert.That(flags.Logging, Is.EqualTo(new Pilotlight.ControllerRuntime.ConsoleLogSettings(true, Microsoft.Extensions.Logging.LogLevel.Warning)));
    }

    [Test]
    public async Task Platform_pull_secrets_go_to_the_operator_for_the_pods_it_makes()
    {
        var none = string.Join(' ', Pod(await Helm.TemplateAsync(), "operator").Containers.Single().Args);
        Assert.That(none, Does.Not.Contain("--platform-image-pull-secrets"));

        var yaml = await Helm.TemplateAsync(set: ["image.platformPullSecrets={registry-a,registry-b}", "image.pullSecrets={release-registry}"]);
        var op = Pod(yaml, "operator");
        var flags = Flags.Parse([.. op.Containers.Single().Args.Select(a => a.StartsWith("$(", StringComparison.Ordinal) ? "x" : a)]);
        Assert.That(flags.Error, Is.Null);
        Assert.That(flags.PlatformImagePullSecrets, Is.EqualTo(new[] { "registry-a", "registry-b" }));
        Assert.That(op.ImagePullSecrets.Select(s => s.Name), Is.EqualTo(new[] { "release-registry" }), "the release's own pods use image.pullSecrets");
    }

    [Test]
    public async Task A_second_release_in_another_namespace_shares_no_cluster_scoped_name_and_tells_its_operator_its_own()
    {
        static Dictionary<string, V1ObjectMeta> ClusterScoped(string yaml) => Documents(yaml)
            // Only kind and metadata are read (V1Namespace has nothing else a render fills).
            .Select(d => KubernetesYaml.Deserialize<V1Namespace>(d))
            .Where(o => o.Metadata.NamespaceProperty is null)
            .ToDictionary(o => $"{o.Kind}/{o.Metadata.Name}", o => o.Metadata);

        var first = await Helm.TemplateAsync(apiVersions: ["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"]);
        // The CRDs are one per cluster: the first release owns them, a second one installs none (crds.install=false).
        var second = await Helm.TemplateAsync(release: "gpu-b", releaseNamespace: "platform-b", set: ["crds.install=false"],
            apiVersions: ["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"]);
        var a = ClusterScoped(first);
        var b = ClusterScoped(second);
        Assert.That(a.Keys, Does.Contain("PriorityClass/pilotlight-reservation"), "a release named pilotlight keeps the name it had");
        Assert.That(b.Keys, Has.Some.StartsWith("PriorityClass/").And.Some.StartsWith("ClusterRole/").And.Some.StartsWith("ValidatingWebhookConfiguration/"));
        Assert.That(a.Keys, Has.Some.StartsWith("CustomResourceDefinition/"));
        Assert.That(a.Keys.Intersect(b.Keys), Is.Empty);

        var args = string.Join(' ', Pod(second, "operator", "gpu-b-pilotlight").Containers.Single().Args);
        Assert.That(args, Does.Contain("--reservation-priority-class gpu-b-pilotlight-reservation"));
        Assert.That(b.Keys, Does.Contain("PriorityClass/gpu-b-pilotlight-reservation"));
        Assert.That(args, Does.Contain("--gateway-namespace platform-b"), "sandbox policies admit the gateway from the release namespace");
        Assert.That(string.Join(' ', Pod(first, "operator").Containers.Single().Args), Does.Contain("--gateway-namespace pilotlight-system"));
    }

    [TestCase("global=1")]
    [TestCase("logging.format=xml")]
    [TestCase("logging.level=verbose")]
    [TestCase("operator.image.digest=sha256:abc")]
    [TestCase("shim.image.digest=latest")]
    [TestCase("image.platformPullSecrets={Bad_Name}")]
    [TestCase("gateway.extraArgs=--x")]
    [TestCase("operator.extraEnv={FOO}")]
    [TestCase("gateway.extraVolumes[0].emptyDir.medium=Memory")]
    [TestCase("operator.podSecurityContext=root")]
    [TestCase("gateway.podDisruptionBudget.minAvailable=half")]
    [TestCase("operator.podDisruptionBudget.maxUnavailable=-1")]
    [TestCase("gateway.topologySpreadConstraints=zone")]
    [TestCase("operator.extraValue=1")]
    public void Mistyped_values_are_refused(string set) =>
        Assert.That(async () => await Helm.TemplateAsync(set: [set]), Throws.InvalidOperationException);
}
