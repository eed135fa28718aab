using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Sandboxes;

/// <summary>
/// Every sandbox pod against the Pod Security Standards' "restricted" profile
/// (the rules of the PodSecurity admission controller, which this 1.20 API
/// server predates, checked here one by one), over ordinary and hostile specs.
/// </summary>
public class RestrictedPodSecurityTests
{
    private static readonly SandboxOptions Options = new() { AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = "runsc" };

    private static readonly string[] AllowedVolumeTypes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

    /// <summary>Violations of the restricted profile, empty when the pod passes.</summary>
    public static List<string> Violations(V1Pod pod)
    {
        var v = new List<string>();
        var spec = pod.Spec;
        if (spec.HostNetwork == true || spec.HostPID == true || spec.HostIPC == true)
        {
            v.Add("host namespaces");
        }

        foreach (var volume in spec.Volumes ?? [])
        {
            var type = volume.ConfigMap is not null ? "configMap" : volume.Csi is not null ? "csi" : volume.DownwardAPI is not null ? "downwardAPI"
                : volume.EmptyDir is not null ? "emptyDir" : volume.Ephemeral is not null ? "ephemeral"
                : volume.PersistentVolumeClaim is not null ? "persistentVolumeClaim" : volume.Projected is not null ? "projected"
                : volume.Secret is not null ? "secret" : "other";
            if (!AllowedVolumeTypes.Contains(type))
            {
                v.Add($"volume {volume.Name} of a restricted type");
            }
        }

        if (spec.SecurityContext?.Sysctls is { Count: > 0 })
        {
            v.Add("sysctls");
        }

        var podSeccomp = spec.SecurityContext?.SeccompProfile?.Type;
        var podNonRoot = spec.SecurityContext?.RunAsNonRoot == true;
        if (spec.SecurityContext?.RunAsUser == 0)
        {
            v.Add("pod runAsUser 0");
        }

        foreach (var c in (spec.InitContainers ?? []).Concat(spec.Containers))
        {
            var sc = c.SecurityContext;
            if (sc?.Privileged == true)
            {
                v.Add($"{c.Name}: privileged");
            }

            if (sc?.AllowPrivilegeEscalation != false)
            {
                v.Add($"{c.Name}: allowPrivilegeEscalation must be false");
            }

            if (!(sc?.RunAsNonRoot ?? podNonRoot))
            {
                v.Add($"{c.Name}: runAsNonRoot must be true");
            }

            if (sc?.RunAsUser == 0)
            {
                v.Add($"{c.Name}: runAsUser 0");
            }

            if (sc?.Capabilities?.Drop?.Contains("ALL") != true)
            {
                v.Add($"{c.Name}: capabilities must drop ALL");
            }

            if (sc?.Capabilities?.Add?.Any(a => a != "NET_BIND_SERVICE") == true)
            {
                v.Add($"{c.Name}: adds capabilities");
            }

            if ((sc?.SeccompProfile?.Type ?? podSeccomp) is not ("RuntimeDefault" or "Localhost"))
            {
                v.Add($"{c.Name}: seccomp must be RuntimeDefault or Localhost");
            }

            if (sc?.ProcMount is { } mount && mount != "Default")
            {
                v.Add($"{c.Name}: procMount");
            }

            if (sc?.SeLinuxOptions is { } se && (se.User is not null || se.Role is not null
                || se.Type is not (null or "" or "container_t" or "container_init_t" or "container_kvm_t")))
            {
                v.Add($"{c.Name}: SELinux options");
            }

            if (c.Ports?.Any(p => p.HostPort is > 0) == true)
            {
                v.Add($"{c.Name}: host ports");
            }
        }

        return v;
    }

    private static IEnumerable<TestCaseData> Specs()
    {
        yield return new TestCaseData(new SandboxSpec { Image = "python:3.12" }).SetName("minimal");
        yield return new TestCaseData(new SandboxSpec { Image = "python:3.12", RuntimeClassName = "kata", WorkspaceSize = new ResourceQuantity("10Gi") }).SetName("kata, big workspace");
        yield return new TestCaseData(new SandboxSpec
        {
            Image = "torch:2", Gpu = new GpuRequirement { Type = GpuType.H100, Count = 8 }, Resources = new ComputeResources { Cpu = new("32"), Memory = new("256Gi") },
        }).SetName("eight GPUs");
        yield return new TestCaseData(new SandboxSpec
        {
            Image = "python:3.12", Network = new SandboxNetwork { AllowCidrs = ["0.0.0.0/0"], AllowDns = true },
            Env = [new V1EnvVar { Name = "MODE", Value = "x" }], EnvFrom = [new V1EnvFromSource { ConfigMapRef = new V1ConfigMapEnvSource { Name = "cfg" } }],
        }).SetName("open egress, env from a ConfigMap");
        yield return new TestCaseData(new SandboxSpec
        {
            Image = "evil:1", Command = ["/bin/sh", "-c", "mount -t proc none /host"],
            Env = [new V1EnvVar { Name = "NVIDIA_VISIBLE_DEVICES", Value = "all" }, new V1EnvVar { Name = "PILOTLIGHT_WORKSPACE", Value = "/" }],
        }).SetName("hostile: grab every GPU, move the workspace to /");
        yield return new TestCaseData(new SandboxSpec
        {
            Image = "evil:1",
            Env = [new V1EnvVar { Name = "TOKEN", ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = "admin", Key = "token" } } }],
            EnvFrom = [new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = "cloud-credentials" } }],
        }).SetName("hostile: read Secrets through the operator");
    }

    [TestCaseSource(nameof(Specs))]
    public void Every_sandbox_pod_passes_the_restricted_profile(SandboxSpec spec)
    {
        var sandbox = new Sandbox { Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = "ns", Uid = "u" }, Spec = spec };
        var (placement, _) = spec.Gpu is { } gpu ? FunctionPlacement.Resolve(gpu, GpuCatalog.Default) : (null, []);
        var (runtime, _) = SandboxPods.RuntimeClass(sandbox, Options);

        var pod = SandboxPods.MakePod(sandbox, runtime, placement, Options);

        Assert.That(Violations(pod), Is.Empty);
        Assert.That(pod.Spec.AutomountServiceAccountToken, Is.False);
        var env = pod.Spec.Containers.Single(x => x.Name == SandboxPods.SandboxContainer).Env.ToLookup(e => e.Name);
        Assert.That(env["PILOTLIGHT_WORKSPACE"].Last().Value, Is.EqualTo(SandboxPods.WorkspacePath), "the operator's value wins");
    }

    [Test]
    public void Hostile_environments_are_refused_with_reasons()
    {
        var hostile = Specs().Select(d => (SandboxSpec)d.Arguments[0]!).Where(s => s.Image == "evil:1").SelectMany(SandboxPods.EnvProblems).ToList();

        Assert.That(hostile, Is.EquivalentTo(new[]
        {
            "spec.env[0].name: 'NVIDIA_VISIBLE_DEVICES': variables starting with NVIDIA_ are set by the operator",
            "spec.env[1].name: 'PILOTLIGHT_WORKSPACE': variables starting with PILOTLIGHT_ are set by the operator",
            "env TOKEN: sandboxes cannot read Secrets",
            "envFrom: sandboxes cannot read Secrets",
        }));
        Assert.That(SandboxPods.EnvProblems(new SandboxSpec { Image = "ok", Env = [new V1EnvVar { Name = "MODE", Value = "1" }] }), Is.Empty);
    }

    [Test]
    public void The_checker_catches_what_it_should()
    {
        var pod = SandboxPods.MakePod(new Sandbox { Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = "ns" }, Spec = new SandboxSpec { Image = "x" } },
            null, null, Options);
        pod.Spec.HostPID = true;
        pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = null;
        pod.Spec.Containers[0].SecurityContext.Capabilities.Add = ["SYS_ADMIN"];
        pod.Spec.Volumes.Add(new V1Volume { Name = "root", HostPath = new V1HostPathVolumeSource { Path = "/" } });

        Assert.That(Violations(pod), Is.EquivalentTo(new[]
        {
            "host namespaces", "volume root of a restricted type", "sandbox: allowPrivilegeEscalation must be false", "sandbox: adds capabilities",
        }));
    }
}
