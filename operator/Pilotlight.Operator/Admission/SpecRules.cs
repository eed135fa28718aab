using System.Globalization;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Operator.Admission;

/// <summary>One thing wrong with an object, naming the field as <c>kubectl explain</c> would.</summary>
/// <param name="Field">The field's path, e.g. <c>spec.scaling.minReplicas</c>.</param>
/// <param name="Message">What is wrong with it and what is allowed.</param>
public sealed record FieldProblem(string Field, string Message)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>
/// What the platform lets a tenant put in a GpuFunction or Sandbox beyond what the schema checks. The operator
/// applies the same policy twice: in its admission webhook (refused at apply) and in its reconcilers (an object
/// that got past, say while the webhook was down, ends <c>InvalidSpec</c> and gets no pod).
/// </summary>
public sealed record AdmissionPolicy
{
    /// <summary>Volume sources a function may use (the <see cref="V1Volume"/> field names). No hostPath by default.</summary>
    public IReadOnlySet<string> AllowedVolumeTypes { get; init; } =
        new HashSet<string>(["configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected", "csi"], StringComparer.Ordinal);

    /// <summary>ServiceAccounts a function may run as, besides the namespace's <c>default</c>. None by default.</summary>
    public IReadOnlySet<string> AllowedServiceAccounts { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Parses a comma-separated list flag; null or empty gives an empty set.</summary>
    public static IReadOnlySet<string> ListFlag(string? value) =>
        new HashSet<string>((value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.Ordinal);
}

/// <summary>
/// The rules a schema cannot state (cross-field, platform policy, names the operator's own containers use), as
/// pure functions of the object: the admission webhook and the reconcilers call the same ones.
/// </summary>
public static class SpecRules
{
    /// <summary>Environment prefixes only the operator sets: the NVIDIA runtime's device selection and the sidecars' settings.</summary>
    public static readonly IReadOnlyList<string> ReservedEnvPrefixes = ["NVIDIA_", "PILOTLIGHT_"];

    /// <summary>The longest name that can also name a Service and label a pod.</summary>
    public const int MaxNameLength = Pilotlight.Api.Schema.CelRules.MaxNameLength;

    /// <summary>Every problem of <paramref name="function"/> under <paramref name="policy"/>; empty when it may run.</summary>
    public static IReadOnlyList<FieldProblem> Check(GpuFunction function, AdmissionPolicy policy, FunctionPodOptions pods)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(pods);
        var spec = function.Spec;
        var problems = new List<FieldProblem>();

        if (NameProblem(function.Metadata?.Name) is { } name)
        {
            problems.Add(new("metadata.name", name));
        }

        var scaling = spec.Scaling;
        if (scaling.MinReplicas > scaling.MaxReplicas)
        {
            problems.Add(new("spec.scaling.minReplicas", $"{scaling.MinReplicas} is more than spec.scaling.maxReplicas ({scaling.MaxReplicas})"));
        }

        if (scaling.TargetConcurrency is { } target && target > scaling.MaxConcurrency)
        {
            problems.Add(new("spec.scaling.targetConcurrency", $"{target} is more than spec.scaling.maxConcurrency ({scaling.MaxConcurrency}): no pod could reach it"));
        }

        if (spec.Prewarm is { } prewarm)
        {
            if (prewarm.WarmReplicas > scaling.MaxReplicas)
            {
                problems.Add(new("spec.prewarm.warmReplicas", $"{prewarm.WarmReplicas} is more than spec.scaling.maxReplicas ({scaling.MaxReplicas})"));
            }

            if (prewarm.ReservedReplicas > scaling.MaxReplicas)
            {
                problems.Add(new("spec.prewarm.reservedReplicas", $"{prewarm.ReservedReplicas} is more than spec.scaling.maxReplicas ({scaling.MaxReplicas})"));
            }
        }

        if (spec.Rollout is { } rollout)
        {
            var surge = RolloutBudget.Problem(rollout.MaxSurge);
            var unavailable = RolloutBudget.Problem(rollout.MaxUnavailable);
            if (surge is not null)
            {
                problems.Add(new("spec.rollout.maxSurge", surge));
            }

            if (unavailable is not null)
            {
                problems.Add(new("spec.rollout.maxUnavailable", unavailable));
            }

            if (surge is null && unavailable is null && Zero(rollout.MaxSurge) && Zero(rollout.MaxUnavailable))
            {
                problems.Add(new("spec.rollout.maxUnavailable", "may not be 0 when spec.rollout.maxSurge is 0: no pod could be replaced"));
            }
        }

        var sidecarPorts = new Dictionary<int, string>
        {
            [pods.ShimPort] = "the runtime shim's", [pods.ShimAdminPort] = "the runtime shim's admin", [pods.MeterPort] = "the metering sidecar's",
        };
        if (sidecarPorts.TryGetValue(spec.Port, out var whose))
        {
            problems.Add(new("spec.port", $"{spec.Port} is {whose} port in the same pod; use another (the default is 8080)"));
        }

        problems.AddRange(EnvProblems(spec.Env, spec.EnvFrom));

        var volumeNames = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < (spec.Volumes?.Count ?? 0); i++)
        {
            var volume = spec.Volumes![i];
            var field = $"spec.volumes[{i}]";
            if (volume.Name?.StartsWith("pilotlight-", StringComparison.Ordinal) == true)
            {
                problems.Add(new($"{field}.name", $"'{volume.Name}': names starting with pilotlight- are the operator's"));
            }

            if (volume.Name is { } n && !volumeNames.Add(n))
            {
                problems.Add(new($"{field}.name", $"'{n}' is used by another volume"));
            }

            var types = VolumeTypes(volume);
            foreach (var type in types.Where(t => !policy.AllowedVolumeTypes.Contains(t)))
            {
                problems.Add(new($"{field}.{type}", $"{type} volumes are not allowed here (allowed: {Listed(policy.AllowedVolumeTypes)})"));
            }
        }

        if (spec.ServiceAccountName is { Length: > 0 } account && account != "default" && !policy.AllowedServiceAccounts.Contains(account))
        {
            problems.Add(new("spec.serviceAccountName",
                $"'{account}' is not allowed here (allowed: default{(policy.AllowedServiceAccounts.Count > 0 ? ", " + Listed(policy.AllowedServiceAccounts) : "")})"));
        }

        return problems;
    }

    private static bool Zero(k8s.Models.IntOrString? value) => value?.Value is "0" or "0%";

    /// <summary>
    /// Environment that would steer the NVIDIA runtime to GPUs the pod was not given, or reconfigure the sidecars:
    /// a reserved name in <c>env</c>, or an <c>envFrom</c> prefix that makes one.
    /// </summary>
    public static IReadOnlyList<FieldProblem> EnvProblems(IReadOnlyList<V1EnvVar>? env, IReadOnlyList<V1EnvFromSource>? envFrom)
    {
        var problems = new List<FieldProblem>();
        for (var i = 0; i < (env?.Count ?? 0); i++)
        {
            if (Reserved(env![i].Name) is { } prefix)
            {
                problems.Add(new($"spec.env[{i}].name", $"'{env[i].Name}': variables starting with {prefix} are set by the operator"));
            }
        }

        for (var i = 0; i < (envFrom?.Count ?? 0); i++)
        {
            if (envFrom![i].Prefix is { Length: > 0 } p && ReservedEnvPrefixes.FirstOrDefault(r => p.StartsWith(r, StringComparison.Ordinal) || r.StartsWith(p, StringComparison.Ordinal)) is { } clash)
            {
                problems.Add(new($"spec.envFrom[{i}].prefix", $"'{p}' can make variables starting with {clash}, which the operator sets"));
            }
        }

        return problems;
    }

    /// <summary>The reserved prefix <paramref name="name"/> starts with, or null.</summary>
    public static string? Reserved(string? name) =>
        name is null ? null : ReservedEnvPrefixes.FirstOrDefault(p => name.StartsWith(p, StringComparison.Ordinal));

    /// <summary>Why <paramref name="name"/> cannot name a Service and label pods (an RFC 1035 label), or null.</summary>
    public static string? NameProblem(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return null; // generateName: the API server picks it, and its own checks apply
        }

        if (name.Length > MaxNameLength)
        {
            return string.Create(CultureInfo.InvariantCulture, $"'{name}' is {name.Length} characters; at most {MaxNameLength}, since it names the function's Service and labels its pods");
        }

        var valid = name[0] is >= 'a' and <= 'z' && name[^1] != '-' && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-');
        return valid ? null : $"'{name}' must start with a lowercase letter and hold only lowercase letters, digits and '-' (it names a Service)";
    }

    /// <summary>The volume source fields set on <paramref name="volume"/> (normally one).</summary>
    public static IReadOnlyList<string> VolumeTypes(V1Volume volume)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var json = k8s.KubernetesJson.Serialize(volume);
        using var document = System.Text.Json.JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateObject().Select(p => p.Name).Where(n => n != "name")];
    }

    private static string Listed(IReadOnlySet<string> values) => values.Count == 0 ? "none" : string.Join(", ", values.Order(StringComparer.Ordinal));
}
