namespace Pilotlight.Api.Schema;

/// <summary>
/// The CEL rules (<see cref="ValidationRuleAttribute"/>) the custom resources carry: the cross-field and reserved-name
/// checks of the admission webhook that CEL states at a cost that does not grow with the object (Kubernetes refuses a
/// CRD whose rules it estimates too costly, so lists they walk have a maxItems). Platform-set lists (allowed volume
/// types, service accounts, runtime classes) stay with the webhook alone.
/// </summary>
public static class CelRules
{
    /// <summary>The longest name a function or sandbox may have (it names a Service and labels pods).</summary>
    public const int MaxNameLength = 63;

    /// <summary>Most entries in <c>env</c> or <c>envFrom</c> (a bound CEL needs to walk them).</summary>
    public const int MaxEnvEntries = 1000;

    /// <summary>A name short enough for a Service and a label value.</summary>
    public const string NameLength = "!has(self.metadata.name) || self.metadata.name.size() <= 63";

    /// <summary>What <see cref="NameLength"/> says when false.</summary>
    public const string NameLengthMessage = "metadata.name: at most 63 characters, since it names a Service and labels pods";

    /// <summary>No variable the operator sets (NVIDIA_*, PILOTLIGHT_*).</summary>
    public const string ReservedEnv = "!has(self.env) || self.env.all(e, !e.name.startsWith('NVIDIA_') && !e.name.startsWith('PILOTLIGHT_'))";

    /// <summary>What <see cref="ReservedEnv"/> says when false.</summary>
    public const string ReservedEnvMessage = "spec.env: variables starting with NVIDIA_ or PILOTLIGHT_ are set by the operator";

    /// <summary>No envFrom prefix that makes such variables.</summary>
    public const string ReservedEnvFrom = "!has(self.envFrom) || self.envFrom.all(e, !has(e.prefix) || (!e.prefix.startsWith('NVIDIA_') && !e.prefix.startsWith('PILOTLIGHT_')))";

    /// <summary>What <see cref="ReservedEnvFrom"/> says when false.</summary>
    public const string ReservedEnvFromMessage = "spec.envFrom: a prefix starting with NVIDIA_ or PILOTLIGHT_ makes variables the operator sets";
}
