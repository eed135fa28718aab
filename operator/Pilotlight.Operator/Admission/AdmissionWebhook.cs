using System.Text.Json;
using System.Text.Json.Nodes;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Operator.Admission;

/// <summary>
/// Answers the API server's AdmissionReview (admission.k8s.io/v1) for GpuFunctions, Sandboxes and
/// SandboxWarmPools with the same checks the reconcilers make, so a mistake is refused at apply with the field
/// named instead of surfacing later as a condition. Pure: a review in, a review out.
/// </summary>
/// <param name="catalog">GPU types the platform offers.</param>
/// <param name="policy">Volumes and ServiceAccounts functions may use.</param>
/// <param name="pods">The sidecars' ports, which a function's own port must not take.</param>
/// <param name="sandboxes">Runtime classes and limits of sandboxes.</param>
public sealed class AdmissionWebhook(GpuCatalog catalog, AdmissionPolicy policy, FunctionPodOptions pods, SandboxOptions sandboxes)
{
    /// <summary>
    /// Users who may set or change Pilotlight's labels on pods (<c>pilotlight.dev/*</c> and
    /// <c>app.kubernetes.io/managed-by=pilotlight</c>): the operator's ServiceAccount. Empty: pods are not checked.
    /// Labels decide nothing alone (claims and routes go by controller reference), but a pod that carries them without
    /// the operator having made it is refused at once.
    /// </summary>
    public IReadOnlyCollection<string> PodLabelWriters { get; init; } = [];

    /// <summary>The Pilotlight labels of a pod's metadata, as <c>key=value</c> strings.</summary>
    public static HashSet<string> PilotlightLabels(JsonElement pod)
    {
        var labels = new HashSet<string>(StringComparer.Ordinal);
        if (pod.ValueKind == JsonValueKind.Object && pod.TryGetProperty("metadata", out var metadata) && metadata.TryGetProperty("labels", out var map)
            && map.ValueKind == JsonValueKind.Object)
        {
            foreach (var label in map.EnumerateObject())
            {
                var value = label.Value.ValueKind == JsonValueKind.String ? label.Value.GetString() : label.Value.GetRawText();
                if (label.Name.StartsWith("pilotlight.dev/", StringComparison.Ordinal)
                    || (label.Name == Contracts.FunctionLabels.ManagedBy && value == Contracts.FunctionLabels.ManagedByValue))
                {
                    labels.Add($"{label.Name}={value}");
                }
            }
        }

        return labels;
    }

    /// <summary>The answer to <paramref name="review"/>, an AdmissionReview from the API server.</summary>
    public JsonObject Review(JsonElement review)
    {
        var request = review.TryGetProperty("request", out var r) && r.ValueKind == JsonValueKind.Object ? r : default;
        var uid = request.ValueKind == JsonValueKind.Object && request.TryGetProperty("uid", out var u) ? u.GetString() ?? "" : "";
        var apiVersion = review.TryGetProperty("apiVersion", out var v) ? v.GetString() : null;
        var problems = request.ValueKind == JsonValueKind.Object ? Problems(request) : ["the AdmissionReview has no request"];

        var response = new JsonObject { ["uid"] = uid, ["allowed"] = problems.Count == 0 };
        if (problems.Count > 0)
        {
            response["status"] = new JsonObject
            {
                ["code"] = 422,
                ["reason"] = "Invalid",
                ["message"] = string.Join("; ", problems),
            };
        }

        return new JsonObject
        {
            ["apiVersion"] = apiVersion ?? "admission.k8s.io/v1",
            ["kind"] = "AdmissionReview",
            ["response"] = response,
        };
    }

    private IReadOnlyList<string> Problems(JsonElement request)
    {
        if (!request.TryGetProperty("object", out var obj) || obj.ValueKind != JsonValueKind.Object)
        {
            return []; // DELETE and CONNECT carry no object; nothing to check
        }

        var kind = request.TryGetProperty("kind", out var k) && k.TryGetProperty("kind", out var kk) ? kk.GetString() : null;
        if (kind == "Pod")
        {
            return PodProblems(request, obj);
        }

        // An object on its way out (finalizers being removed) and updates that leave the spec alone (annotations,
        // labels, finalizers) are never refused: a policy tightened later must not block deleting or waking an
        // object. The reconciler still marks such an object InvalidSpec.
        if (obj.TryGetProperty("metadata", out var metadata) && metadata.TryGetProperty("deletionTimestamp", out var deleting)
            && deleting.ValueKind == JsonValueKind.String)
        {
            return [];
        }

        if (request.TryGetProperty("oldObject", out var old) && old.ValueKind == JsonValueKind.Object && SameSpec(old, obj))
        {
            return [];
        }

        try
        {
            return kind switch
            {
                GpuFunction.KindName => GpuFunctionReconciler.Validate(k8s.KubernetesJson.Deserialize<GpuFunction>(obj.GetRawText()), catalog, policy, pods).Problems,
                Sandbox.KindName => SandboxReconciler.Validate(k8s.KubernetesJson.Deserialize<Sandbox>(obj.GetRawText()), sandboxes, catalog).Problems,
                SandboxWarmPool.KindName => PoolProblems(k8s.KubernetesJson.Deserialize<SandboxWarmPool>(obj.GetRawText())),
                _ => [$"this webhook does not check kind '{kind}'"],
            };
        }
        catch (JsonException ex)
        {
            return [$"the object could not be read: {ex.Message}"];
        }
    }

    /// <summary>Refuses a pod whose Pilotlight labels someone other than <see cref="PodLabelWriters"/> adds, changes or removes.</summary>
    private IReadOnlyList<string> PodProblems(JsonElement request, JsonElement pod)
    {
        if (PodLabelWriters.Count == 0)
        {
            return [];
        }

        var user = request.TryGetProperty("userInfo", out var info) && info.TryGetProperty("username", out var name) ? name.GetString() ?? "" : "";
        if (PodLabelWriters.Contains(user))
        {
            return [];
        }

        var before = request.TryGetProperty("oldObject", out var old) ? PilotlightLabels(old) : [];
        var after = PilotlightLabels(pod);
        return before.SetEquals(after)
            ? []
            : [$"metadata.labels: only the Pilotlight operator may set pilotlight.dev/* or app.kubernetes.io/managed-by=pilotlight on a pod ({user} tried: {string.Join(", ", after.Except(before).Concat(before.Except(after)).Order(StringComparer.Ordinal))})"];
    }

    private IReadOnlyList<string> PoolProblems(SandboxWarmPool pool) => SandboxWarmPoolReconciler.Validate(pool, sandboxes);

    private static bool SameSpec(JsonElement old, JsonElement now)
    {
        var a = old.TryGetProperty("spec", out var s1) ? s1.GetRawText() : "";
        var b = now.TryGetProperty("spec", out var s2) ? s2.GetRawText() : "";
        return JsonNode.DeepEquals(JsonNode.Parse(a.Length == 0 ? "null" : a), JsonNode.Parse(b.Length == 0 ? "null" : b));
    }
}
