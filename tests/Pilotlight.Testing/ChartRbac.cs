using k8s;
using k8s.Models;

namespace Pilotlight.Testing;

/// <summary>One request to the API server as RBAC sees it (from an audit event).</summary>
/// <param name="Verb">get, list, watch, create, update, patch, delete, deletecollection.</param>
/// <param name="ApiGroup">"" for the core group.</param>
/// <param name="Resource">The plural resource, e.g. "pods".</param>
/// <param name="Subresource">e.g. "status", or null.</param>
/// <param name="Namespace">The namespace, or null for a cluster-scoped or all-namespaces request.</param>
/// <param name="Name">The object's name, or null (lists, watches and creates name none).</param>
public sealed record ApiRequest(string Verb, string ApiGroup, string Resource, string? Subresource, string? Namespace, string? Name)
{
    /// <summary>"resource" or "resource/subresource", as RBAC rules name it.</summary>
    public string FullResource => Subresource is null ? Resource : $"{Resource}/{Subresource}";
}

/// <summary>A permission in the (group, resource[/subresource], verb) form RBAC rules are made of.</summary>
public sealed record Permission(string ApiGroup, string Resource, string Verb) : IComparable<Permission>
{
    /// <inheritdoc />
    public int CompareTo(Permission? other) => other is null ? 1 : string.CompareOrdinal(ToString(), other.ToString());

    /// <inheritdoc />
    public override string ToString() => $"{(ApiGroup.Length == 0 ? "core" : ApiGroup)} {Resource} {Verb}";
}

/// <summary>A rule of a role, as a binding applies it: everywhere (a ClusterRoleBinding) or in one namespace.</summary>
/// <param name="Source">Where it comes from, e.g. "ClusterRole/pilotlight-operator" or "Role/pilotlight-system/x".</param>
/// <param name="Namespace">The binding's namespace for a RoleBinding; null for a ClusterRoleBinding.</param>
/// <param name="Rule">The rule.</param>
public sealed record BoundRule(string Source, string? Namespace, V1PolicyRule Rule)
{
    private static bool Has(IList<string>? list, string value) => list is not null && (list.Contains("*") || list.Contains(value));

    /// <summary>RBAC's own matching (rbac/v1 RuleAllows): group, resource (with subresource), verb, resourceNames, and namespace for a RoleBinding.</summary>
    public bool Allows(ApiRequest request) =>
        (Namespace is null || Namespace == request.Namespace)
        && Has(Rule.Verbs, request.Verb)
        && Has(Rule.ApiGroups, request.ApiGroup)
        && (Has(Rule.Resources, request.FullResource) || (request.Subresource is not null && Has(Rule.Resources, $"*/{request.Subresource}")))
        && (Rule.ResourceNames is not { Count: > 0 } || (request.Name is not null && Rule.ResourceNames.Contains(request.Name)));

    /// <summary>Every (group, resource, verb) the rule names.</summary>
    public IEnumerable<Permission> Permissions() =>
        from g in Rule.ApiGroups ?? []
        from r in Rule.Resources ?? []
        from v in Rule.Verbs ?? []
        select new Permission(g, r, v);

    /// <summary>The rule in one line, e.g. "ClusterRole/x: pilotlight.dev [gpufunctions] [get list]".</summary>
    public override string ToString() =>
        $"{Source}{(Namespace is null ? "" : $" (in {Namespace})")}: [{string.Join(' ', (Rule.ApiGroups ?? []).Select(g => g.Length == 0 ? "core" : g))}] "
        + $"[{string.Join(' ', Rule.Resources ?? [])}] [{string.Join(' ', Rule.Verbs ?? [])}]"
        + (Rule.ResourceNames is { Count: > 0 } names ? $" names [{string.Join(' ', names)}]" : "");
}

/// <summary>
/// The chart's RBAC as <c>helm template</c> renders it (ServiceAccounts,
/// ClusterRoles, Roles and their bindings, plus the PriorityClass the operator
/// relies on), installable on a <see cref="ControlPlane"/>, and the rules it
/// grants a user, evaluated the way the API server's RBAC authorizer does.
/// </summary>
public sealed class ChartRbac
{
    /// <summary>The operator's user: the chart's operator ServiceAccount.</summary>
    public const string OperatorUser = $"system:serviceaccount:{Helm.Namespace}:pilotlight-operator";

    /// <summary>The gateway's user: the chart's gateway ServiceAccount.</summary>
    public const string GatewayUser = $"system:serviceaccount:{Helm.Namespace}:pilotlight-gateway";

    /// <summary>
    /// The templates rendered: who the operator and gateway are and what they
    /// may do, and the PriorityClass the chart installs so that the operator
    /// need not (and may not) create it.
    /// </summary>
    public static IReadOnlyList<string> Templates { get; } =
    [
        "templates/serviceaccounts.yaml",
        "templates/operator-rbac.yaml",
        "templates/gateway-rbac.yaml",
        "templates/invoke-keys-rbac.yaml",
        "templates/priorityclass.yaml",
    ];

    private ChartRbac(string yaml, IReadOnlyList<object> objects)
    {
        Yaml = yaml;
        Objects = objects;
    }

    /// <summary>The rendered manifests.</summary>
    public string Yaml { get; }

    /// <summary>The rendered objects (k8s.Models types).</summary>
    public IReadOnlyList<object> Objects { get; }

    /// <summary>The rendered ClusterRole named <paramref name="name"/>.</summary>
    public V1ClusterRole ClusterRole(string name) => Objects.OfType<V1ClusterRole>().SingleOrDefault(r => r.Metadata.Name == name)
        ?? throw new InvalidOperationException($"the chart renders no ClusterRole {name}");

    /// <summary>The rendered Role named <paramref name="name"/>.</summary>
    public V1Role Role(string name) => Objects.OfType<V1Role>().SingleOrDefault(r => r.Metadata.Name == name)
        ?? throw new InvalidOperationException($"the chart renders no Role {name}");

    /// <summary>Renders <see cref="Templates"/> with the chart's defaults and <paramref name="set"/>.</summary>
    public static async Task<ChartRbac> RenderAsync(IEnumerable<string>? set = null, CancellationToken cancellationToken = default)
    {
        // A template that renders nothing under these values (e.g. no PriorityClass) is an error for --show-only.
        var all = await Helm.TemplateAsync(set: set, cancellationToken: cancellationToken).ConfigureAwait(false);
        var wanted = string.Join('\n', Documents(all).Where(d => Templates.Any(t => d.Contains($"# Source: pilotlight/{t}\n", StringComparison.Ordinal)))
            .Select(d => "---\n" + d));
        var objects = KubernetesYaml.LoadAllFromString(wanted);
        return new ChartRbac(wanted, objects);
    }

    private static IEnumerable<string> Documents(string yaml) =>
        yaml.Split("\n---\n").Select(d => d.StartsWith("---\n", StringComparison.Ordinal) ? d[4..] : d).Where(d => d.Trim().Length > 0).Select(d => d.TrimEnd() + "\n");

    /// <summary>Creates the release namespace and applies the rendered objects, as <c>helm install</c> would.</summary>
    public async Task InstallAsync(ControlPlane plane, CancellationToken cancellationToken = default)
    {
        using (var client = plane.CreateClient())
        {
            try
            {
                await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = Helm.Namespace } },
                    cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
            {
            }
        }

        (await new Kubectl(plane.KubeconfigPath).ApplyAsync(Yaml, cancellationToken: cancellationToken).ConfigureAwait(false)).EnsureSuccess();
    }

    /// <summary>Every rule the chart's bindings give <paramref name="user"/> (a User or ServiceAccount subject).</summary>
    public IReadOnlyList<BoundRule> RulesOf(string user)
    {
        var rules = new List<BoundRule>();
        foreach (var binding in Objects.OfType<V1ClusterRoleBinding>().Where(b => Binds(b.Subjects, user)))
        {
            rules.AddRange(RoleRules(binding.RoleRef, null).Select(r => new BoundRule($"{binding.RoleRef.Kind}/{binding.RoleRef.Name}", null, r)));
        }

        foreach (var binding in Objects.OfType<V1RoleBinding>().Where(b => Binds(b.Subjects, user)))
        {
            var ns = binding.Metadata.NamespaceProperty;
            rules.AddRange(RoleRules(binding.RoleRef, ns).Select(r =>
                new BoundRule(binding.RoleRef.Kind == "Role" ? $"Role/{ns}/{binding.RoleRef.Name}" : $"ClusterRole/{binding.RoleRef.Name}", ns, r)));
        }

        return rules;
    }

    /// <summary>The first of <paramref name="user"/>'s chart rules that allows <paramref name="request"/>, or null.</summary>
    public BoundRule? Allowing(string user, ApiRequest request) => RulesOf(user).FirstOrDefault(r => r.Allows(request));

    private IEnumerable<V1PolicyRule> RoleRules(V1RoleRef roleRef, string? ns) => roleRef.Kind switch
    {
        "ClusterRole" => Objects.OfType<V1ClusterRole>().Where(r => r.Metadata.Name == roleRef.Name).SelectMany(r => r.Rules ?? []),
        "Role" => Objects.OfType<V1Role>().Where(r => r.Metadata.Name == roleRef.Name && r.Metadata.NamespaceProperty == ns).SelectMany(r => r.Rules ?? []),
        _ => [],
    };

    private static bool Binds(IList<Rbacv1Subject>? subjects, string user)
    {
        const string prefix = "system:serviceaccount:";
        var sa = user.StartsWith(prefix, StringComparison.Ordinal) ? user[prefix.Length..].Split(':') : null;
        return (subjects ?? []).Any(s => s.Kind switch
        {
            "User" => s.Name == user,
            "ServiceAccount" => sa is [var ns, var name] && s.NamespaceProperty == ns && s.Name == name,
            "Group" => s.Name is "system:authenticated" || (sa is not null && (s.Name == "system:serviceaccounts" || s.Name == $"system:serviceaccounts:{sa[0]}")),
            _ => false,
        });
    }
}
