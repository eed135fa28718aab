using k8s;
using k8s.Models;

namespace Pilotlight.ControllerRuntime;

/// <summary>The SubjectAccessReview that the gateway and the operator ask for a caller a TokenReview identified.</summary>
public static class AccessReviews
{
    /// <summary>True when <paramref name="user"/> (with its groups and extra) may do <paramref name="attributes"/>.</summary>
    public static async Task<bool> AllowsAsync(IKubernetes client, V1UserInfo user, V1ResourceAttributes attributes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(user);
        var review = await client.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
        {
            Spec = new V1SubjectAccessReviewSpec
            {
                User = user.Username,
                Groups = user.Groups,
                Uid = user.Uid,
                Extra = user.Extra?.ToDictionary(kv => kv.Key, kv => (IList<string>)kv.Value.ToList()),
                ResourceAttributes = attributes,
            },
        }, cancellationToken: ct).ConfigureAwait(false);
        return review.Status?.Allowed == true;
    }
}
