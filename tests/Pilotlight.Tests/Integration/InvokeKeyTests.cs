using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using k8s;
using k8s.Models;
using Pilotlight.Contracts;
using Pilotlight.Operator.Access;
using Pilotlight.Tests.Contracts;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Long-lived invoke keys through the shared operator and gateway on the real API server, as the chart runs them: a
/// namespace admin's Secret opens the functions it names to clients outside the cluster; a wrong key, a key for
/// another function or from another namespace's Secret gets 401; deleting the Secret or taking the function out of
/// its annotation closes access within seconds; a key too short to be random is refused with a Warning Event. The
/// gateway reads no Secret: it sees only the verifiers the operator publishes.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class InvokeKeyTests() : ServingFixture(45, "key")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    /// <summary>
    /// How soon a revoked key must stop working (the README's bound). It is well under a second on a quiet machine; the
    /// polls that measure it are served by the function until then, and each takes as long as the loaded machine makes it.
    /// </summary>
    private static readonly TimeSpan RevocationBound = TimeSpan.FromSeconds(20);

    private readonly string _key = InvokeKeysTests.NewKey();
    private readonly string _siblingKey = InvokeKeysTests.NewKey();
    private readonly string _foreignKey = InvokeKeysTests.NewKey();
    private const string WeakKey = "plk_letmein";
    private string _ns = "";
    private string _other = "";

    private string Manifest(string name) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          gpu: {"{"}type: L4{"}"}
          scaling: {"{"}maxReplicas: 1{"}"}
          nodeSelector:
            {PoolLabel}: {Pool}
        """;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4.WithGpus(2));
        _ns = await Plane.CreateNamespaceAsync("keys");
        _other = await Plane.CreateNamespaceAsync("keys-other");
        (await Kubectl.ApplyAsync(Manifest("private"), _ns)).EnsureSuccess();
        (await Kubectl.ApplyAsync(Manifest("sibling"), _ns)).EnsureSuccess();
        (await Kubectl.ApplyAsync(Manifest("private"), _other)).EnsureSuccess();

        await CreateKeyAsync(_ns, "web", _key, "private");
        await CreateKeyAsync(_ns, "sibling-only", _siblingKey, "sibling");
        // Same function name, another namespace: its key opens _other/private, never _ns/private.
        await CreateKeyAsync(_other, "web", _foreignKey, "*");
        await CreateKeyAsync(_ns, "weak", WeakKey, "private");
    }

    private async Task CreateKeyAsync(string ns, string name, string key, string functions) =>
        await Client.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta
            {
                Name = name,
                Labels = new Dictionary<string, string> { [InvokeKeys.Label] = "true" },
                Annotations = new Dictionary<string, string> { [InvokeKeys.FunctionsAnnotation] = functions },
            },
            StringData = new Dictionary<string, string> { [InvokeKeys.KeyField] = key },
        }, ns);

    private async Task<HttpStatusCode> InvokeAsync(string ns, string function, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{GatewayUrl}/{ns}/{function}/predict") { Content = new StringContent("hi") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await Anonymous.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>Waits until the operator has published <paramref name="key"/>'s verifier (or taken it out).</summary>
    private async Task PublishedAsync(string key, bool present)
    {
        var hash = InvokeKeys.Hash(key);
        await Eventually.HoldsAsync(async () =>
        {
            var map = await Client.CoreV1.ReadNamespacedConfigMapAsync(SharedOperator.InvokeKeysConfigMap.Name, SharedOperator.InvokeKeysConfigMap.Namespace);
            var text = map.Data?[InvokeKeys.VerifiersField] ?? "";
            return text.Contains(hash, StringComparison.Ordinal) == present;
        }, Timeout, $"the verifier {(present ? "published" : "withdrawn")}");
    }

    /// <summary>
    /// The first 200 with <paramref name="key"/>: the gateway sees the ConfigMap just after the API server has it, and
    /// the function wakes from zero on the first admitted request.
    /// </summary>
    private async Task ServedAsync(string ns, string function, string key)
    {
        await PublishedAsync(key, present: true);
        // Not too often: each 401 spends the shared gateway's failure budget for this address.
        await Eventually.GetAsync(async () => await InvokeAsync(ns, function, key) == HttpStatusCode.OK ? new object() : null, Timeout,
            $"{ns}/{function} served with its invoke key", TimeSpan.FromMilliseconds(500));
    }

    [Test]
    public async Task A_valid_key_is_served_and_wrong_or_foreign_keys_get_401()
    {
        await ServedAsync(_ns, "private", _key);
        await PublishedAsync(_siblingKey, present: true);
        await PublishedAsync(_foreignKey, present: true);

        var wrong = await InvokeAsync(_ns, "private", InvokeKeysTests.NewKey());
        var otherFunction = await InvokeAsync(_ns, "private", _siblingKey);
        var otherNamespace = await InvokeAsync(_ns, "private", _foreignKey);
        var weak = await InvokeAsync(_ns, "private", WeakKey);
        var again = await InvokeAsync(_ns, "private", _key);
        Assert.Multiple(() =>
        {
            Assert.That(wrong, Is.EqualTo(HttpStatusCode.Unauthorized), "a key nobody made");
            Assert.That(otherFunction, Is.EqualTo(HttpStatusCode.Unauthorized), "a key that opens another function");
            Assert.That(otherNamespace, Is.EqualTo(HttpStatusCode.Unauthorized), "a key from another namespace's Secret");
            Assert.That(weak, Is.EqualTo(HttpStatusCode.Unauthorized), "a key too short to be published");
            Assert.That(again, Is.EqualTo(HttpStatusCode.OK));
        });
    }

    [Test]
    public async Task Deleting_the_secret_or_narrowing_its_functions_closes_access_within_seconds()
    {
        var revoked = InvokeKeysTests.NewKey();
        var narrowed = InvokeKeysTests.NewKey();
        await CreateKeyAsync(_ns, "revoked", revoked, "private");
        await CreateKeyAsync(_ns, "narrowed", narrowed, "private,sibling");
        await ServedAsync(_ns, "private", revoked);
        await ServedAsync(_ns, "private", narrowed);

        var clock = Stopwatch.StartNew();
        await Client.CoreV1.DeleteNamespacedSecretAsync("revoked", _ns);
        await Client.CoreV1.PatchNamespacedSecretAsync(new V1Patch(
            System.Text.Json.JsonSerializer.Serialize(new { metadata = new { annotations = new Dictionary<string, string> { [InvokeKeys.FunctionsAnnotation] = "sibling" } } }),
            V1Patch.PatchType.MergePatch), "narrowed", _ns);
        await PublishedAsync(revoked, present: false);
        TestContext.Progress.WriteLine($"invoke keys: the deleted Secret's verifier withdrawn {clock.Elapsed.TotalSeconds:F1} s after the change");
        await Eventually.HoldsAsync(async () => await InvokeAsync(_ns, "private", revoked) == HttpStatusCode.Unauthorized, RevocationBound,
            "the deleted Secret's key refused");
        await Eventually.HoldsAsync(async () => await InvokeAsync(_ns, "private", narrowed) == HttpStatusCode.Unauthorized, RevocationBound,
            "the key refused for the function taken out of its annotation");
        TestContext.Progress.WriteLine($"invoke keys: revoked and narrowed keys refused {clock.Elapsed.TotalSeconds:F1} s after the change");
        Assert.That(clock.Elapsed, Is.LessThan(RevocationBound));
    }

    [Test]
    public async Task A_key_too_short_is_refused_with_a_warning_event_that_does_not_hold_it()
    {
        var warning = await Eventually.GetAsync(async () =>
            (await Client.CoreV1.ListNamespacedEventAsync(_ns, fieldSelector: "involvedObject.name=weak")).Items
                .FirstOrDefault(e => e.Reason == InvokeKeyReasons.Invalid), Timeout, "a Warning Event on the weak key's Secret");

        Assert.Multiple(() =>
        {
            Assert.That(warning.Type, Is.EqualTo("Warning"));
            Assert.That(warning.InvolvedObject.Kind, Is.EqualTo("Secret"));
            Assert.That(warning.Message, Does.Contain("not an invoke key").And.Not.Contain(WeakKey[4..]));
        });
    }

    [Test]
    public async Task The_gateway_reads_no_secret_only_the_published_verifiers()
    {
        // Asked of RBAC, not tried: a refused request by the gateway's user would be a finding of the chart audit.
        foreach (var (verb, name) in new[] { ("list", (string?)null), ("watch", null), ("get", "web") })
        {
            var review = await Client.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
            {
                Spec = new V1SubjectAccessReviewSpec
                {
                    User = ChartRbac.GatewayUser,
                    Groups = ["system:serviceaccounts", $"system:serviceaccounts:{Helm.Namespace}", "system:authenticated"],
                    ResourceAttributes = new V1ResourceAttributes { Verb = verb, Resource = "secrets", NamespaceProperty = _ns, Name = name },
                },
            });
            Assert.That(review.Status.Allowed, Is.False, $"the gateway may not {verb} Secrets");
        }

        await PublishedAsync(_key, present: true);
        var map = await Client.CoreV1.ReadNamespacedConfigMapAsync(SharedOperator.InvokeKeysConfigMap.Name, SharedOperator.InvokeKeysConfigMap.Namespace);
        var published = map.Data[InvokeKeys.VerifiersField];
        Assert.That(published, Does.Not.Contain(_key[4..]).And.Not.Contain(_foreignKey[4..]), "verifiers only, never a key");
        Assert.That(Encoding.UTF8.GetByteCount(published), Is.LessThan(1024 * 1024), "one ConfigMap holds them");
    }
}
