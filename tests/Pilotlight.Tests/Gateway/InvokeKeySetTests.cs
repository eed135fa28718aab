using k8s;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Contracts;
using Pilotlight.Gateway;
using Pilotlight.Tests.Contracts;

namespace Pilotlight.Tests.Gateway;

/// <summary>How the gateway checks a presented invoke key against the published verifiers.</summary>
public sealed class InvokeKeySetTests
{
    private static readonly string KeyA = InvokeKeysTests.NewKey();
    private static readonly string KeyAll = InvokeKeysTests.NewKey();

    private static InvokeKeySet Set() => new(
    [
        new InvokeKeyVerifier { Namespace = "team", Functions = ["fn-a"], Secret = "key-a", SecretUid = "1", Sha256 = InvokeKeys.Hash(KeyA) },
        new InvokeKeyVerifier { Namespace = "team", Functions = ["*"], Secret = "key-all", SecretUid = "2", Sha256 = InvokeKeys.Hash(KeyAll) },
    ]);

    [Test]
    public void A_key_opens_the_functions_its_secret_names_in_its_namespace()
    {
        var set = Set();
        Assert.Multiple(() =>
        {
            Assert.That(set.Opens("team", "fn-a", KeyA), Is.EqualTo("key-a"));
            Assert.That(set.Opens("team", "fn-b", KeyA), Is.Null, "another function");
            Assert.That(set.Opens("other", "fn-a", KeyA), Is.Null, "another namespace");
            Assert.That(set.Opens("team", "fn-b", KeyAll), Is.EqualTo("key-all"));
            Assert.That(set.Opens("team", "fn-a", KeyA[..^1] + (KeyA[^1] == 'A' ? 'B' : 'A')), Is.Null, "one character off");
            Assert.That(set.Opens("team", "fn-a", InvokeKeys.Hash(KeyA)), Is.Null, "the verifier is not a key");
        });
    }

    [Test]
    public void A_missing_or_broken_configmap_opens_nothing()
    {
        Assert.Multiple(() =>
        {
            Assert.That(InvokeKeySet.Parse(null).Opens("team", "fn-a", KeyA), Is.Null);
            Assert.That(InvokeKeySet.Parse("{not json").Count, Is.Zero);
            Assert.That(InvokeKeySet.Parse("""[{"namespace":"team","functions":["fn-a"],"secret":"s","secretUid":"u","sha256":"xyz"}]""").Count, Is.Zero,
                "a hash that is not 64 hex digits is dropped");
            Assert.That(InvokeKeySet.Parse(InvokeKeys.Serialize([new InvokeKeyVerifier
            {
                Namespace = "team", Functions = ["fn-a"], Secret = "s", SecretUid = "u", Sha256 = InvokeKeys.Hash(KeyA),
            }])).Opens("team", "fn-a", KeyA), Is.EqualTo("s"));
        });
    }

    private static async Task<(bool Admitted, int Status, HttpContext Context)> AdmitAsync(InvocationAccess access, string key, string function)
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = System.Net.IPAddress.Parse("192.0.2.7");
        context.Request.Headers.Authorization = $"Bearer {key}";
        context.Response.Body = new MemoryStream();
        var fn = new Pilotlight.Api.V1Alpha1.GpuFunction
        {
            Metadata = new k8s.Models.V1ObjectMeta { NamespaceProperty = "team", Name = function },
            Spec = new Pilotlight.Api.V1Alpha1.GpuFunctionSpec { Image = "example/model:1" },
        };
        var admitted = await access.AdmitAsync(context, fn, "team", function);
        return (admitted, context.Response.StatusCode, context);
    }

    [Test]
    public async Task The_gateway_admits_a_valid_key_without_the_API_server_strips_it_and_counts_bad_keys_as_failures()
    {
        // An API server nobody listens at: a key must never need it.
        using var client = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:9" });
        using var access = new InvocationAccess(client, new InvocationAccessOptions { FailuresPerMinute = 3 }, NullLogger.Instance,
            Prometheus.Metrics.NewCustomRegistry()) { Keys = new PublishedInvokeKeys(Set()) };

        var (admitted, _, context) = await AdmitAsync(access, KeyA, "fn-a");
        Assert.That(admitted, Is.True);
        // Named for the per-client limits by its Secret; the forwarder strips the key (InvocationTransformerTests).
        Assert.That(context.Features.Get<InvocationCaller>()?.Name, Does.StartWith("invoke-key:"));

        var codes = new List<int>();
        foreach (var (key, function) in new[] { (KeyA, "fn-b"), (InvokeKeysTests.NewKey(), "fn-a"), ("plk_short", "fn-a"), (KeyA, "fn-a") })
        {
            codes.Add((await AdmitAsync(access, key, function)).Status);
        }

        Assert.That(codes, Is.EqualTo(new[] { 401, 401, 401, 429 }), "three failures spend the budget; then even a good key waits");
    }

    [Test]
    public async Task Without_invoke_keys_a_key_is_refused_and_never_sent_to_the_API_server()
    {
        using var client = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:9" });
        using var access = new InvocationAccess(client, new InvocationAccessOptions(), NullLogger.Instance, Prometheus.Metrics.NewCustomRegistry());

        var (admitted, status, _) = await AdmitAsync(access, KeyA, "fn-a");

        Assert.That((admitted, status), Is.EqualTo((false, 401)), "401, not the 503 of an unreachable API server");
    }
}
