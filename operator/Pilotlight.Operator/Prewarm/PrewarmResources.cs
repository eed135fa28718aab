using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Operator.Prewarm;

/// <summary>
/// What the pre-warm controller creates besides warm pods: placeholder pods
/// that hold GPUs for a function at a priority any real pod preempts, the
/// PriorityClass they run at, and a DaemonSet that pulls the function's image on
/// every node with a GPU it can use.
/// </summary>
public static class PrewarmResources
{
    /// <summary>
    /// The PriorityClass of placeholder pods unless <c>--reservation-priority-class</c> names another (the chart names
    /// it after its release, installs it, and the operator creates it when missing).
    /// </summary>
    public const string DefaultPriorityClassName = "pilotlight-reservation";

    /// <summary>
    /// Below every default (0) pod, so the scheduler preempts placeholders for any real pod; above the Cluster
    /// Autoscaler's expendable cut-off (-10), so a Pending placeholder asks for a node and a node holding only
    /// placeholders is not scaled away (the overprovisioning pattern).
    /// </summary>
    public const int PriorityValue = -5;

    /// <summary>Container name in placeholder and pre-pull pods.</summary>
    public const string IdleContainer = "idle";

    /// <summary>The PriorityClass placeholders run at.</summary>
    public static V1PriorityClass PriorityClass(string name = DefaultPriorityClassName) => new()
    {
        ApiVersion = "scheduling.k8s.io/v1",
        Kind = "PriorityClass",
        Metadata = new V1ObjectMeta
        {
            Name = name,
            Labels = new Dictionary<string, string> { [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue },
        },
        Value = PriorityValue,
        GlobalDefault = false,
        Description = "Pilotlight capacity reservations: placeholder pods holding GPUs until a function pod preempts them.",
    };

    /// <summary>
    /// A placeholder holding one replica's worth of the function's GPUs, CPU and
    /// memory on a node of its GPU types; it runs the metering image idle and
    /// leaves at once when preempted.
    /// </summary>
    public static V1Pod Placeholder(GpuFunction function, FunctionPlacement placement, FunctionPodOptions options) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta
        {
            GenerateName = $"{function.Metadata.Name}-reserve-",
            NamespaceProperty = function.Metadata.NamespaceProperty,
            Labels = new Dictionary<string, string>
            {
                [FunctionLabels.ReservationFor] = function.Metadata.Name,
                [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
            },
            // Holding a GPU is its whole job, and it is back (or preempted) at no cost elsewhere: the Cluster Autoscaler
            // may move it on scale-down (it would not on its own: a pod of a custom controller keeps its node).
            Annotations = new Dictionary<string, string> { [FunctionLabels.SafeToEvict] = "true" },
            OwnerReferences = [FunctionPods.OwnerReference(function)],
        },
        Spec = new V1PodSpec
        {
            PriorityClassName = options.ReservationPriorityClass,
            // It runs the meter image: a platform image.
            ImagePullSecrets = PullSecrets.Merge(null, options.PlatformImagePullSecrets),
            Containers =
            [
                new V1Container
                {
                    Name = IdleContainer,
                    Image = options.MeterImage,
                    Args = ["idle"],
                    Resources = FunctionPods.MakeResources(function.Spec.Resources, placement.GpuCount),
                    SecurityContext = Hardened(),
                },
            ],
            NodeSelector = function.Spec.NodeSelector?.ToDictionary(),
            Tolerations = FunctionPods.MakeTolerations(function.Spec, placement),
            Affinity = FunctionPods.MakeAffinity(placement),
            AutomountServiceAccountToken = false,
            EnableServiceLinks = false,
            TerminationGracePeriodSeconds = 0,
            RestartPolicy = "Always",
        },
    };

    /// <summary>Name of a function's pre-pull DaemonSet.</summary>
    public static string PrePullName(GpuFunction function) => $"{function.Metadata.Name}-prepull";

    /// <summary>
    /// A DaemonSet whose pods run the function's image, idle, on every node with a
    /// GPU type the function can use: the kubelet pulls the image to start them.
    /// The idle program is the metering binary, copied in by an init container.
    /// </summary>
    public static V1DaemonSet PrePull(GpuFunction function, FunctionPlacement placement, FunctionPodOptions options)
    {
        var labels = new Dictionary<string, string>
        {
            [FunctionLabels.PrePullFor] = function.Metadata.Name,
            [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
        };
        var affinity = FunctionPods.MakeAffinity(placement);
        if (affinity?.NodeAffinity is { } node)
        {
            // Every eligible node, not the preferred type first.
            node.PreferredDuringSchedulingIgnoredDuringExecution = null;
        }

        return new V1DaemonSet
        {
            ApiVersion = "apps/v1",
            Kind = "DaemonSet",
            Metadata = new V1ObjectMeta
            {
                Name = PrePullName(function),
                NamespaceProperty = function.Metadata.NamespaceProperty,
                Labels = labels,
                OwnerReferences = [FunctionPods.OwnerReference(function)],
            },
            Spec = new V1DaemonSetSpec
            {
                Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [FunctionLabels.PrePullFor] = function.Metadata.Name } },
                UpdateStrategy = new V1DaemonSetUpdateStrategy
                {
                    Type = "RollingUpdate",
                    RollingUpdate = new V1RollingUpdateDaemonSet { MaxUnavailable = "100%" },
                },
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta { Labels = labels },
                    Spec = new V1PodSpec
                    {
                        InitContainers = [FunctionPods.MakeToolsContainer(options)],
                        Containers =
                        [
                            new V1Container
                            {
                                Name = IdleContainer,
                                Image = function.Spec.Image,
                                Command = [FunctionPods.GpuProbePath, "idle"],
                                VolumeMounts = [new V1VolumeMount { Name = FunctionPods.MeterVolume, MountPath = FunctionPods.SharedPath, ReadOnlyProperty = true }],
                                Resources = new V1ResourceRequirements
                                {
                                    Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("1m"), ["memory"] = new("8Mi") },
                                    Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("32Mi") },
                                },
                                SecurityContext = Hardened(),
                            },
                        ],
                        Volumes = [new V1Volume { Name = FunctionPods.MeterVolume, EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity("32Mi") } }],
                        // The function's image and the tools init container's (a platform image).
                        ImagePullSecrets = PullSecrets.Merge(function.Spec.ImagePullSecrets, options.PlatformImagePullSecrets),
                        NodeSelector = function.Spec.NodeSelector?.ToDictionary(),
                        Tolerations = FunctionPods.MakeTolerations(function.Spec, placement),
                        Affinity = affinity,
                        AutomountServiceAccountToken = false,
                        EnableServiceLinks = false,
                        TerminationGracePeriodSeconds = 1,
                    },
                },
            },
        };
    }

    private static V1SecurityContext Hardened() => new()
    {
        AllowPrivilegeEscalation = false,
        RunAsNonRoot = true,
        ReadOnlyRootFilesystem = true,
        Capabilities = new V1Capabilities { Drop = ["ALL"] },
    };
}
