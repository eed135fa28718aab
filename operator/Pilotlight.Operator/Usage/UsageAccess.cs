using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Caching.Memory;
using Pilotlight.Api.V1Alpha1;

namespace Pilotlight.Operator.Usage;

/// <summary>
/// Who may read a function's or a sandbox's usage from <c>GET /usage</c>: a caller whose bearer token the API server
/// accepts (TokenReview, any token <c>kubectl</c> would use) and who may <c>get</c> that GpuFunction or Sandbox
/// (SubjectAccessReview), so a tenant sees only what RBAC already shows them. Decisions are cached for a few seconds, by a hash of
/// the token (never the token itself), in a cache of bounded size.
/// </summary>
public sealed class UsageAccess(IKubernetes client, TimeSpan? cacheFor = null, int cacheSize = 10_000) : IDisposable
{
    private readonly TimeSpan _cacheFor = cacheFor ?? TimeSpan.FromSeconds(10);
    private readonly MemoryCache _decisions = new(new MemoryCacheOptions { SizeLimit = cacheSize });

    /// <summary>200 when the caller may read <paramref name="ns"/>/<paramref name="function"/>'s usage; else 401, 403 or 503 and why.</summary>
    public Task<(int Status, string? Problem)> CheckAsync(string? authorization, string ns, string function, CancellationToken ct) =>
        CheckAsync(authorization, "gpufunctions", ns, function, ct);

    /// <summary>
    /// 200 when the caller may <c>get</c> <paramref name="resource"/> (<c>gpufunctions</c> or <c>sandboxes</c>)
    /// <paramref name="ns"/>/<paramref name="name"/>, and so read its usage; else 401, 403 or 503 and why.
    /// </summary>
    public async Task<(int Status, string? Problem)> CheckAsync(string? authorization, string resource, string ns, string name, CancellationToken ct)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || authorization.Length <= 7)
        {
            return (401, "a Kubernetes bearer token is required (kubectl create token, or your kubeconfig's)");
        }

        var token = authorization[7..].Trim();
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{token}\n{resource}\n{ns}\n{name}")));
        if (_decisions.TryGetValue(key, out (int, string?) cached))
        {
            return cached;
        }

        (int Status, string? Problem) decision;
        try
        {
            var review = await client.AuthenticationV1.CreateTokenReviewAsync(new V1TokenReview { Spec = new V1TokenReviewSpec { Token = token } },
                cancellationToken: ct).ConfigureAwait(false);
            if (review.Status?.Authenticated != true || review.Status.User is not { } user)
            {
                decision = (401, "the bearer token was not accepted");
            }
            else
            {
                var allowed = await Pilotlight.ControllerRuntime.AccessReviews.AllowsAsync(client, user, new V1ResourceAttributes
                {
                    Group = Group.Name, Resource = resource, Verb = "get", NamespaceProperty = ns, Name = name,
                }, ct).ConfigureAwait(false);
                decision = allowed ? (200, null) : (403, $"{user.Username} may not get {resource} {ns}/{name}");
            }
        }
        catch (HttpOperationException e)
        {
            // Not cached: the next call asks again.
            return (503, $"access could not be checked (HTTP {(int)e.Response.StatusCode}); try again");
        }

        _decisions.Set(key, decision, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _cacheFor });
        return decision;
    }

    /// <inheritdoc/>
    public void Dispose() => _decisions.Dispose();
}
