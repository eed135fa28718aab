using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Sandboxes;

/// <summary>Which look-alike warm pods a Sandbox refuses to claim: the pool's controller reference by UID and its template, never labels.</summary>
public class WarmPodTrustTests
{
    private static readonly SandboxOptions Options = new() { AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = "runsc" };

    private static SandboxWarmPool Pool(string uid = "pool-uid", string image = "python:3.12-slim") => new()
    {
        Metadata = new V1ObjectMeta { Name = "py", NamespaceProperty = "team-a", Uid = uid },
        Spec = new SandboxWarmPoolSpec { Image = image, Replicas = 1 },
    };

    private static string Shape => SandboxPods.Shape("python:3.12-slim", null, "runsc", Pool().Spec.WorkspaceSize, Options);

    /// <summary>
    /// A pool pod as the API server and the scheduler leave it: named, defaulted, bound, with its RuntimeClass's node
    /// selector, quantities canonical, Ready.
    /// </summary>
    private static V1Pod Served(SandboxWarmPool? pool = null, Action<V1Pod>? edit = null)
    {
        var made = SandboxPods.MakePoolPod(pool ?? Pool(), "runsc", Options);
        var pod = KubernetesJson.Deserialize<V1Pod>(KubernetesJson.Serialize(made));
        pod.Metadata.Name = "py-abcde";
        pod.Metadata.Uid = "pod-uid";
        pod.Metadata.CreationTimestamp = new DateTime(2026, 12, 1, 9, 0, 0, DateTimeKind.Utc);
        pod.Spec.DnsPolicy = "ClusterFirst";
        pod.Spec.SchedulerName = "default-scheduler";
        pod.Spec.NodeName = "node-1";
        pod.Spec.Priority = 0;
        pod.Spec.PreemptionPolicy = "PreemptLowerPriority";
        pod.Spec.ServiceAccountName = "default";
        pod.Spec.NodeSelector = new Dictionary<string, string> { ["sandbox.gke.io/runtime"] = "gvisor" };
        pod.Spec.Tolerations = [new V1Toleration { Key = "node.kubernetes.io/not-ready", OperatorProperty = "Exists", Effect = "NoExecute", TolerationSeconds = 300 }];
        foreach (var c in pod.Spec.Containers.Concat(pod.Spec.InitContainers))
        {
            c.TerminationMessagePath = "/dev/termination-log";
            c.TerminationMessagePolicy = "File";
            c.ImagePullPolicy = "IfNotPresent";
            foreach (var env in c.Env ?? [])
            {
                if (env.ValueFrom?.FieldRef is { } field)
                {
                    field.ApiVersion = "v1";
                }
            }

            if (c.ReadinessProbe is { } probe)
            {
                probe.TimeoutSeconds = 1;
                probe.SuccessThreshold = 1;
                probe.HttpGet.Scheme = "HTTP";
            }
        }

        // Written back canonical: 64Mi as bytes is the same quantity.
        pod.Spec.Volumes.Single(v => v.Name == "tmp").EmptyDir.SizeLimit = new ResourceQuantity("67108864");
        pod.Metadata.Annotations = new Dictionary<string, string> { ["container.seccomp.security.alpha.kubernetes.io/sandbox"] = "runtime/default" };
        pod.Status = new V1PodStatus { Phase = "Running", Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }] };
        edit?.Invoke(pod);
        return pod;
    }

    private static string? Distrust(V1Pod pod) => WarmPodTrust.Distrust(pod, Pool(), "runsc", Options);

    [Test]
    public void The_pools_own_pod_as_the_server_returns_it_is_trusted_and_claimable()
    {
        var pod = Served();
        Assert.That(Distrust(pod), Is.Null);
        Assert.That(SandboxReconciler.Candidates([pod], [Pool()], Shape, Options).Select(p => p.Metadata.Name), Is.EqualTo(new[] { "py-abcde" }));
    }

    private static IEnumerable<TestCaseData> Forgeries()
    {
        TestCaseData Case(string name, Action<V1Pod> edit, string reason) => new TestCaseData(edit, reason).SetName($"A_look_alike_is_refused_{name}");

        yield return Case("with_labels_alone", p => p.Metadata.OwnerReferences = null, "controller");
        yield return Case("naming_the_pool_with_another_uid", p => p.Metadata.OwnerReferences[0].Uid = "someone-else", "controller");
        yield return Case("naming_the_pool_without_being_controlled", p => p.Metadata.OwnerReferences[0].Controller = false, "controller");
        yield return Case("of_another_kind", p => p.Metadata.OwnerReferences[0].Kind = "ReplicaSet", "controller");
        yield return Case("without_the_runtime_class", p => p.Spec.RuntimeClassName = null, "spec.runtimeClassName");
        yield return Case("with_another_runtime_class", p => p.Spec.RuntimeClassName = "runc", "spec.runtimeClassName");
        yield return Case("with_a_powerful_service_account", p => p.Spec.ServiceAccountName = "builder", "spec.serviceAccountName");
        yield return Case("with_the_token_mounted", p => p.Spec.AutomountServiceAccountToken = true, "spec.automountServiceAccountToken");
        yield return Case("with_another_image", p => p.Spec.Containers[0].Image = "evil/python:3.12-slim", "spec.containers[0].image");
        yield return Case("with_a_logging_agent", p => p.Spec.Containers.Add(new V1Container { Name = "agent", Image = "evil/logger" }), "spec.containers");
        yield return Case("with_a_host_path", p => p.Spec.Volumes.Add(new V1Volume { Name = "host", HostPath = new V1HostPathVolumeSource { Path = "/" } }),
            "spec.volumes");
        yield return Case("with_an_extra_variable", p => p.Spec.Containers[0].Env.Add(new V1EnvVar { Name = "LD_PRELOAD", Value = "/x.so" }), "env");
        yield return Case("with_a_loosened_security_context",
            p => p.Spec.Containers[0].SecurityContext.SeLinuxOptions = new V1SELinuxOptions { Type = "spc_t" }, "seLinuxOptions");
        yield return Case("sharing_the_host_network", p => p.Spec.HostNetwork = true, "spec.hostNetwork");
        yield return Case("with_an_apparmor_opt_out",
            p => p.Metadata.Annotations["container.apparmor.security.beta.kubernetes.io/sandbox"] = "unconfined", "apparmor");
        yield return Case("with_seccomp_off", p => p.Metadata.Annotations["seccomp.security.alpha.kubernetes.io/pod"] = "unconfined", "seccomp");
        yield return Case("with_a_function_label", p => p.Metadata.Labels["pilotlight.dev/function"] = "fn", "pilotlight.dev/function");
        yield return Case("with_another_shape_label", p => p.Metadata.Labels[SandboxPods.ShapeLabel] = "0000000000", SandboxPods.ShapeLabel);
    }

    [TestCaseSource(nameof(Forgeries))]
    public void Look_alikes(Action<V1Pod> edit, string reason)
    {
        var forged = Served(edit: edit);
        Assert.That(Distrust(forged), Does.Contain(reason));
        var refused = new List<string>();
        Assert.That(SandboxReconciler.Candidates([forged], [Pool()], Shape, Options, (_, why) => refused.Add(why)), Is.Empty, "never a candidate");
    }

    [Test]
    public void A_pod_of_a_pool_the_operator_does_not_know_is_never_a_candidate()
    {
        var refused = new List<string>();
        Assert.That(SandboxReconciler.Candidates([Served()], [], Shape, Options, (_, why) => refused.Add(why)), Is.Empty);
        Assert.That(refused, Has.One.Contains("no SandboxWarmPool py"));

        // The pool was deleted and made again under the same name: the old UID is not the pool's.
        Assert.That(SandboxReconciler.Candidates([Served()], [Pool(uid: "new-uid")], Shape, Options), Is.Empty);
    }

    [Test]
    public void A_pod_whose_pool_now_has_another_shape_is_not_claimed_for_the_old_one()
    {
        var refused = new List<string>();
        Assert.That(SandboxReconciler.Candidates([Served()], [Pool(image: "python:3.13")], Shape, Options, (_, why) => refused.Add(why)), Is.Empty);
        Assert.That(refused, Has.One.Contains("another shape"));
    }

    [Test]
    public void Only_ready_pods_not_being_deleted_are_candidates_oldest_first()
    {
        var older = Served(edit: p => (p.Metadata.Name, p.Metadata.CreationTimestamp) = ("py-old", p.Metadata.CreationTimestamp!.Value.AddMinutes(-1)));
        var unready = Served(edit: p => (p.Metadata.Name, p.Status.Conditions[0].Status) = ("py-unready", "False"));
        var leaving = Served(edit: p => (p.Metadata.Name, p.Metadata.DeletionTimestamp) = ("py-leaving", DateTime.UtcNow));
        Assert.That(SandboxReconciler.Candidates([Served(), unready, leaving, older], [Pool()], Shape, Options).Select(p => p.Metadata.Name),
            Is.EqualTo(new[] { "py-old", "py-abcde" }));
    }

    [Test]
    public void Quantities_compare_by_value_and_a_different_one_is_a_difference()
    {
        var same = Served(edit: p => p.Spec.Containers[0].Resources.Limits["memory"] = new ResourceQuantity(
            p.Spec.Containers[0].Resources.Limits["memory"].ToDecimal().ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(Distrust(same), Is.Null);
        var more = Served(edit: p => p.Spec.Containers[0].Resources.Limits["memory"] = new ResourceQuantity("64Gi"));
        Assert.That(Distrust(more), Does.Contain("resources"));
    }
}
