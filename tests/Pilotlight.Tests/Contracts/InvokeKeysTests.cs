using System.Security.Cryptography;
using System.Text;
using Pilotlight.Contracts;

namespace Pilotlight.Tests.Contracts;

/// <summary>The documented shape of an invoke key, its verifier and the published list.</summary>
public sealed class InvokeKeysTests
{
    /// <summary>A key made as the README says: plk_ and 32 random bytes, base64url without padding.</summary>
    internal static string NewKey() =>
        InvokeKeys.Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    [Test]
    public void A_key_of_32_random_bytes_has_the_shape_and_is_told_from_a_token()
    {
        var key = NewKey();
        Assert.Multiple(() =>
        {
            Assert.That(key, Has.Length.EqualTo(4 + 43));
            Assert.That(InvokeKeys.IsWellFormed(key), Is.True);
            Assert.That(InvokeKeys.LooksLikeKey(key), Is.True);
            Assert.That(InvokeKeys.LooksLikeKey("eyJhbGciOiJSUzI1NiJ9.e30.sig"), Is.False, "a Kubernetes token is not a key");
        });
    }

    [TestCase("plk_short", TestName = "Too short: a typed password")]
    [TestCase("plk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", TestName = "42 characters: one short of 32 bytes")]
    [TestCase("plk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", TestName = "Standard base64, not base64url")]
    [TestCase("plk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", TestName = "Padding left in")]
    [TestCase("PLK_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", TestName = "Prefix in capitals")]
    [TestCase("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", TestName = "No prefix")]
    public void Keys_not_of_the_shape_are_refused(string key) => Assert.That(InvokeKeys.IsWellFormed(key), Is.False);

    [Test]
    public void Keys_longer_than_32_bytes_are_accepted_up_to_a_bound()
    {
        Assert.That(InvokeKeys.IsWellFormed(InvokeKeys.Prefix + new string('a', InvokeKeys.MaxSecretChars)), Is.True);
        Assert.That(InvokeKeys.IsWellFormed(InvokeKeys.Prefix + new string('a', InvokeKeys.MaxSecretChars + 1)), Is.False);
    }

    [Test]
    public void The_verifier_is_the_SHA256_of_the_key_in_lowercase_hex()
    {
        var key = NewKey();
        Assert.That(InvokeKeys.Hash(key), Is.EqualTo(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key))).ToLowerInvariant()));
    }

    [Test]
    public void The_functions_annotation_is_a_trimmed_list_without_repeats()
    {
        Assert.Multiple(() =>
        {
            Assert.That(InvokeKeys.ParseFunctions(" fn-b, fn-a,,fn-b "), Is.EqualTo(new[] { "fn-a", "fn-b" }));
            Assert.That(InvokeKeys.ParseFunctions(null), Is.Empty);
            Assert.That(InvokeKeys.ParseFunctions(" , "), Is.Empty);
        });
    }

    [Test]
    public void Equal_sets_serialize_alike_whatever_the_order_and_read_back()
    {
        var a = new InvokeKeyVerifier { Namespace = "team-a", Functions = ["fn"], Secret = "k1", SecretUid = "u1", Sha256 = new string('1', 64) };
        var b = new InvokeKeyVerifier { Namespace = "team-b", Functions = ["*"], Secret = "k2", SecretUid = "u2", Sha256 = new string('2', 64) };

        var text = InvokeKeys.Serialize([b, a]);

        Assert.That(text, Is.EqualTo(InvokeKeys.Serialize([a, b])));
        var read = InvokeKeys.Parse(text);
        Assert.That(read.Select(v => (v.Namespace, v.Secret, v.SecretUid, v.Sha256, string.Join(',', v.Functions))),
            Is.EqualTo(new[] { ("team-a", "k1", "u1", new string('1', 64), "fn"), ("team-b", "k2", "u2", new string('2', 64), "*") }));
        Assert.That(text, Does.Not.Contain("plk_"), "verifiers only");
    }

    [Test]
    public void A_verifier_opens_its_functions_in_its_namespace_only()
    {
        var some = new InvokeKeyVerifier { Namespace = "team", Functions = ["fn-a", "fn-b"], Secret = "k", SecretUid = "u", Sha256 = "" };
        var all = some with { Functions = [InvokeKeys.AllFunctions] };
        Assert.Multiple(() =>
        {
            Assert.That(some.Opens("team", "fn-b"), Is.True);
            Assert.That(some.Opens("team", "fn-c"), Is.False);
            Assert.That(some.Opens("other", "fn-a"), Is.False);
            Assert.That(all.Opens("team", "anything"), Is.True);
            Assert.That(all.Opens("other", "anything"), Is.False);
        });
    }
}
