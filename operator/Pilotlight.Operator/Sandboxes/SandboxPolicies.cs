using System.Net;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// Keeps the NetworkPolicies of sandboxes and warm pools as the operator built them. The policies live in the
/// tenant's namespace, where a member may edit or delete them, or create one with a pool's policy name before the
/// pool does; each is compared with what it should be on every reconcile (the informer's copy, so nothing is
/// read from the API server when it holds) and restored, taken over or recreated, with an event saying which.
/// </summary>
/// <param name="client">Writes the policies.</param>
/// <param name="policies">The operator's NetworkPolicies (those labelled managed-by Pilotlight).</param>
/// <param name="events">Where a restored or taken-over policy is reported.</param>
public sealed class SandboxPolicies(IKubernetes client, Informer<V1NetworkPolicy> policies, EventRecorder events)
{
    /// <summary>Event reason: the policy had been edited, deleted or relabelled and is as the operator built it again.</summary>
    public const string RestoredReason = "NetworkPolicyRestored";

    /// <summary>Event reason: an object not made by the operator held the policy's name; it was replaced.</summary>
    public const string TakenOverReason = "NetworkPolicyTakenOver";

    /// <summary>
    /// Makes <paramref name="desired"/> exist as built. <paramref name="about"/> (the sandbox or pool) gets an event
    /// when an existing object had to be corrected.
    /// </summary>
    public async Task EnsureAsync(V1NetworkPolicy desired, IKubernetesObject<V1ObjectMeta> about, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(desired);
        var ns = desired.Metadata.NamespaceProperty;
        var cached = policies.Get(new ObjectKey(ns, desired.Metadata.Name));
        if (cached is not null && Holds(cached, desired))
        {
            return;
        }

        if (cached is null)
        {
            try
            {
                await client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(desired, ns, cancellationToken: ct).ConfigureAwait(false);
                return;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
                // There is one the cache does not hold: not labelled as ours (someone else's), or not seen yet.
            }
        }

        var live = await client.NetworkingV1.ReadNamespacedNetworkPolicyAsync(desired.Metadata.Name, ns, cancellationToken: ct).ConfigureAwait(false);
        if (Holds(live, desired))
        {
            return;
        }

        if (ControlledBy(live, desired))
        {
            desired.Metadata.ResourceVersion = live.Metadata.ResourceVersion;
            await client.NetworkingV1.ReplaceNamespacedNetworkPolicyAsync(desired, desired.Metadata.Name, ns, cancellationToken: ct).ConfigureAwait(false);
            await events.WarningAsync(about, RestoredReason,
                $"NetworkPolicy {desired.Metadata.Name} had been changed; it is as the operator built it again", ct).ConfigureAwait(false);
            return;
        }

        // Not ours (made by someone else, or its owner changed): giving it our owner reference in place would need the
        // right to delete it anyway (the API server's owner-reference check), so it is deleted, that very object only,
        // and ours created.
        try
        {
            await client.NetworkingV1.DeleteNamespacedNetworkPolicyAsync(desired.Metadata.Name, ns,
                new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = live.Metadata.Uid } }, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
        {
            // Gone or replaced meanwhile: the create below, or the next reconcile, settles it.
        }

        await client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(desired, ns, cancellationToken: ct).ConfigureAwait(false);
        await events.WarningAsync(about, TakenOverReason,
            $"a NetworkPolicy named {desired.Metadata.Name} existed that the operator did not make; it was replaced", ct).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="live"/> is what <paramref name="desired"/> says: same controller, our labels, the same spec.</summary>
    public static bool Holds(V1NetworkPolicy live, V1NetworkPolicy desired)
    {
        ArgumentNullException.ThrowIfNull(live);
        ArgumentNullException.ThrowIfNull(desired);
        return ControlledBy(live, desired)
            && (desired.Metadata.Labels ?? new Dictionary<string, string>()).All(l =>
                live.Metadata.Labels?.TryGetValue(l.Key, out var v) == true && v == l.Value)
            && SpecJson(live.Spec) == SpecJson(desired.Spec);
    }

    private static bool ControlledBy(V1NetworkPolicy live, V1NetworkPolicy desired)
    {
        var owner = desired.Metadata.OwnerReferences?.SingleOrDefault(o => o.Controller == true);
        return owner is not null && live.Metadata.OwnerReferences?.Any(o => o.Controller == true && o.Uid == owner.Uid) == true;
    }

    // Empty lists and absent ones mean the same to the API server (an empty ingress list may come back as null).
    private static string SpecJson(V1NetworkPolicySpec? spec) =>
        JsonSerializer.Serialize(new
        {
            selector = KubernetesJson.Serialize(spec?.PodSelector),
            types = spec?.PolicyTypes ?? [],
            ingress = spec?.Ingress is { Count: > 0 } i ? KubernetesJson.Serialize(i) : "",
            egress = spec?.Egress is { Count: > 0 } e ? KubernetesJson.Serialize(e) : "",
        });
}
