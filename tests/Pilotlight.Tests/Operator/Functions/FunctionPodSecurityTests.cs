using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using Pilotlight.Tests.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Functions;

/// <summary>
/// Function pods against the Pod Security Standards: "baseline" by default (model-server images that expect root
/// still start), "restricted" when the platform switches it on, over GPU, CPU-only and volume-carrying specs.
/// </summary>
public class FunctionPodSecurityTests
{
    private static readonly string[] BaselineCapabilities =
        ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"];

    /// <summary>Violations of the baseline profile (and of what this project adds to it), empty when the pod passes.</summary>
    private static List<string> BaselineViolations(V1Pod pod)
    {
        var v = new List<string>();
        var spec = pod.Spec;
        if (spec.HostNetwork == true || spec.HostPID == true || spec.HostIPC == true)
        {
            v.Add("host namespaces");
        }

        v.AddRange((spec.Volumes ?? []).Where(volume => volume.HostPath is not null).Select(volume => $"hostPath volume {volume.Name}"));
        if (spec.SecurityContext?.SeccompProfile?.Type == "Unconfined")
        {
            v.Add("pod seccomp Unconfined");
        }

        foreach (var c in (spec.InitContainers ?? []).Concat(spec.Containers))
        {
            var sc = c.SecurityContext;
            if (sc?.Privileged == true)
            {
                v.Add($"{c.Name}: privileged");
            }

            if (sc?.Capabilities?.Add?.Any(a => !BaselineCapabilities.Contains(a)) == true)
            {
                v.Add($"{c.Name}: adds capabilities beyond the default set");
            }

            if (c.Ports?.Any(p => p.HostPort is > 0) == true)
            {
                v.Add($"{c.Name}: host ports");
            }

            // What this project asks beyond baseline: no way up, and the runtime's seccomp profile.
            if (sc?.AllowPrivilegeEscalation != false)
            {
                v.Add($"{c.Name}: allowPrivilegeEscalation must be false");
            }

            if ((sc?.SeccompProfile?.Type ?? spec.SecurityContext?.SeccompProfile?.Type) is not ("RuntimeDefault" or "Localhost"))
            {
                v.Add($"{c.Name}: seccomp must be RuntimeDefault");
            }
        }

        return v;
    }

    private static IEnumerable<TestCaseData> Specs()
    {
        yield return new TestCaseData(new GpuFunctionSpec { Image = "vllm:0.6", Gpu = new GpuRequirement { Type = GpuType.H100, Count = 2 } }).SetName("two GPUs");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "cpu:1", Gpu = new GpuRequirement { Type = GpuType.L4, Count = 0 } }).SetName("on a GPU node, no GPU");
        yield return new TestCaseData(new GpuFunctionSpec { Image = "cpu:1" }).SetName("no GPU at all");
        yield return new TestCaseData(new GpuFunctionSpec
        {
            Image = "sdxl:1", Gpu = new GpuRequirement { Type = GpuType.L4 },
            Volumes =
            [
                new V1Volume { Name = "weights", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = "w" } },
                new V1Volume { Name = "cache", EmptyDir = new V1EmptyDirVolumeSource() },
            ],
            VolumeMounts = [new V1VolumeMount { Name = "weights", MountPath = "/models" }],
        }).SetName("with volumes");
    }

    private static V1Pod Make(GpuFunctionSpec spec, PodSecurityProfile profile)
    {
        var (placement, problems) = FunctionPlacement.Resolve(spec.Gpu, GpuCatalog.Default);
        Assert.That(problems, Is.Empty);
        var function = new GpuFunction { Metadata = new V1ObjectMeta { Name = "fn", NamespaceProperty = "t", Uid = "u" }, Spec = spec };
        return FunctionPods.MakePod(function, placement!, new FunctionPodOptions { PodSecurity = profile });
    }

    [TestCaseSource(nameof(Specs))]
    public void By_default_every_function_pod_passes_baseline(GpuFunctionSpec spec)
    {
        var pod = Make(spec, PodSecurityProfile.Baseline);

        Assert.That(BaselineViolations(pod), Is.Empty);
        var user = pod.Spec.Containers.Single(c => c.Name == FunctionPods.FunctionContainer);
        Assert.That(user.SecurityContext.RunAsNonRoot, Is.Null, "a root image still starts under baseline");
    }

    [TestCaseSource(nameof(Specs))]
    public void Switched_to_restricted_every_function_pod_passes_restricted(GpuFunctionSpec spec)
    {
        var pod = Make(spec, PodSecurityProfile.Restricted);

        Assert.That(RestrictedPodSecurityTests.Violations(pod), Is.Empty);
    }

    [Test]
    public void Baseline_pods_are_not_restricted_pods_and_the_profile_rolls_them()
    {
        var spec = new GpuFunctionSpec { Image = "vllm:0.6", Gpu = new GpuRequirement { Type = GpuType.L4 } };
        var baseline = Make(spec, PodSecurityProfile.Baseline);
        var restricted = Make(spec, PodSecurityProfile.Restricted);

        Assert.That(RestrictedPodSecurityTests.Violations(baseline), Has.Some.Contains("function: runAsNonRoot must be true"), "the checker sees the difference");
        Assert.That(restricted.Metadata.Labels[FunctionLabels.TemplateHash], Is.Not.EqualTo(baseline.Metadata.Labels[FunctionLabels.TemplateHash]),
            "changing the platform's profile rolls function pods");
    }
}
