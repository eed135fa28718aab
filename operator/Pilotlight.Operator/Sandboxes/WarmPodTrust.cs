using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// Whether a pod that looks like a warm pool pod is one the operator made. Anyone who may create pods in a
/// namespace can copy a pool pod's labels, and even its owner reference (the pool's UID is readable), onto a pod
/// with no runtime class, a powerful ServiceAccount or a logging "agent"; a Sandbox must never start on it. A pod
/// is trusted only when its controller is the pool the operator knows (same UID) and its spec is what the pool's
/// template makes, apart from the fields the API server and scheduler fill in.
/// </summary>
public static class WarmPodTrust
{
    /// <summary>Pod annotations that set confinement (the pre-1.30 AppArmor and seccomp ones): on a warm pod, only to the runtime's default.</summary>
    private static readonly string[] ConfinementAnnotations =
    [
        "container.apparmor.security.beta.kubernetes.io/", "seccomp.security.alpha.kubernetes.io/", "container.seccomp.security.alpha.kubernetes.io/",
    ];

    /// <summary>
    /// Fields of the pod spec the API server, its admission plugins or the scheduler set on a pod the operator made
    /// (a RuntimeClass's <c>scheduling</c> adds a node selector and tolerations, its <c>overhead</c> the overhead):
    /// they decide where and at what priority the pod runs, not what it may do.
    /// </summary>
    private static readonly HashSet<string> SpecDefaults =
        ["dnsPolicy", "schedulerName", "nodeName", "priority", "priorityClassName", "preemptionPolicy", "tolerations", "nodeSelector", "overhead"];

    /// <summary>Fields of a container the API server defaults.</summary>
    private static readonly HashSet<string> ContainerDefaults = ["terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy"];

    /// <summary>Fields of a probe the API server defaults.</summary>
    private static readonly HashSet<string> ProbeDefaults = ["timeoutSeconds", "successThreshold", "failureThreshold", "periodSeconds"];

    /// <summary>
    /// Why <paramref name="pod"/> may not be claimed as a warm pod of <paramref name="pool"/> (the pool object as
    /// the operator's cache holds it), or null when it may: its controller reference must name the pool's UID, it
    /// must carry the labels the pool gives its pods and no other <c>pilotlight.dev/</c> ones, no annotation that
    /// loosens confinement, and a spec equal to <see cref="SandboxPods.MakePoolPod"/>'s for the pool, but for
    /// server-set defaults (the ServiceAccount only as <c>default</c>).
    /// </summary>
    public static string? Distrust(V1Pod pod, SandboxWarmPool pool, string? runtimeClass, SandboxOptions options)
    {
        ArgumentNullException.ThrowIfNull(pod);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(pool.Metadata?.Uid))
        {
            return "the pool's UID is unknown";
        }

        var controllers = pod.Metadata?.OwnerReferences?.Where(o => o.Controller == true).ToList() ?? [];
        if (controllers is not [var controller] || controller.Kind != SandboxWarmPool.KindName || controller.Uid != pool.Metadata.Uid
            || controller.ApiVersion?.Split('/')[0] != Group.Name)
        {
            return $"its controller is not the SandboxWarmPool {pool.Metadata.Name} (UID {pool.Metadata.Uid})";
        }

        if (pod.Metadata!.NamespaceProperty != pool.Metadata.NamespaceProperty)
        {
            return "it is in another namespace than the pool";
        }

        var expected = SandboxPods.MakePoolPod(pool, runtimeClass, options);
        var labels = pod.Metadata.Labels ?? new Dictionary<string, string>();
        foreach (var (key, value) in expected.Metadata.Labels)
        {
            if (!labels.TryGetValue(key, out var actual) || actual != value)
            {
                return $"label {key} is not {value}";
            }
        }

        if (labels.Keys.FirstOrDefault(k => k.StartsWith("pilotlight.dev/", StringComparison.Ordinal) && !expected.Metadata.Labels.ContainsKey(k)) is { } extra)
        {
            return $"it carries label {extra}, which the pool does not set";
        }

        // The API server mirrors seccompProfile into these (as runtime/default) on older versions; any other value loosens it.
        if (pod.Metadata.Annotations?.FirstOrDefault(a => ConfinementAnnotations.Any(c => a.Key.StartsWith(c, StringComparison.Ordinal))
                && a.Value is not ("runtime/default" or "docker/default")) is { Key: { } loosened })
        {
            return $"annotation {loosened} changes its confinement";
        }

        if (pod.Spec is null)
        {
            return "it has no spec";
        }

        return SpecDifference(expected.Spec, pod.Spec) is { } difference ? $"its spec differs from the pool's template at {difference}" : null;
    }

    /// <summary>
    /// Where <paramref name="actual"/> departs from <paramref name="expected"/>, or null when it does not: every
    /// field the template sets must be equal (quantities by value, lists item by item and of the same length),
    /// and a field the template leaves out may only be one the API server or scheduler defaults.
    /// </summary>
    public static string? SpecDifference(V1PodSpec expected, V1PodSpec actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        var want = JsonNode.Parse(KubernetesJson.Serialize(expected));
        var have = JsonNode.Parse(KubernetesJson.Serialize(actual));
        if (have?["serviceAccountName"] is { } account && account.GetValue<string>() != "default"
            || have?["serviceAccount"] is { } legacy && legacy.GetValue<string>() != "default")
        {
            return "spec.serviceAccountName";
        }

        return Compare(want, have, "spec", "spec");
    }

    private static string? Compare(JsonNode? want, JsonNode? have, string path, string field)
    {
        switch (want)
        {
            case null:
                return have is null ? null : path;
            case JsonObject wantObject:
                if (have is not JsonObject haveObject)
                {
                    return path;
                }

                foreach (var (key, value) in wantObject)
                {
                    if (Compare(value, haveObject[key], $"{path}.{key}", key) is { } difference)
                    {
                        return difference;
                    }
                }

                foreach (var (key, _) in haveObject)
                {
                    if (!wantObject.ContainsKey(key) && !Defaulted(path, field, key))
                    {
                        return $"{path}.{key}";
                    }
                }

                return null;
            case JsonArray wantArray:
                if (have is not JsonArray haveArray || haveArray.Count != wantArray.Count)
                {
                    return path;
                }

                for (var i = 0; i < wantArray.Count; i++)
                {
                    // An item of a list keeps the list's name as its field, so a container's defaults apply to each.
                    if (Compare(wantArray[i], haveArray[i], $"{path}[{i}]", field) is { } difference)
                    {
                        return difference;
                    }
                }

                return null;
            default:
                if (have is null && want.GetValueKind() == System.Text.Json.JsonValueKind.False)
                {
                    // A false the API server does not store (hostNetwork, hostPID, hostIPC are plain booleans there).
                    return null;
                }

                if (have is not JsonValue haveValue)
                {
                    return path;
                }

                if (JsonNode.DeepEquals(want, have))
                {
                    return null;
                }

                // The API server keeps quantities as written or canonical ("1024Mi" may come back "1Gi"): compare values.
                return IsQuantity(path) && SameQuantity(want.ToString(), haveValue.ToString()) ? null : path;
        }
    }

    private static bool Defaulted(string path, string field, string key) =>
        path == "spec" ? SpecDefaults.Contains(key) || key is "serviceAccountName" or "serviceAccount"
        : field is "containers" or "initContainers" ? ContainerDefaults.Contains(key)
        : field.EndsWith("Probe", StringComparison.Ordinal) ? ProbeDefaults.Contains(key)
        : field switch
        {
            "httpGet" => key == "scheme",
            "fieldRef" => key == "apiVersion",
            "secret" or "configMap" or "projected" or "downwardAPI" => key == "defaultMode",
            _ => false,
        };

    private static bool IsQuantity(string path) =>
        path.Contains(".resources.", StringComparison.Ordinal) || path.EndsWith(".sizeLimit", StringComparison.Ordinal)
        || path.StartsWith("spec.overhead", StringComparison.Ordinal);

    private static bool SameQuantity(string a, string b)
    {
        try
        {
            return new ResourceQuantity(a).ToDecimal() == new ResourceQuantity(b).ToDecimal();
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            return false;
        }
    }
}
