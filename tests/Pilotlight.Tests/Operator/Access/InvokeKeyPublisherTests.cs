using System.Text;
using k8s.Models;
using Pilotlight.Contracts;
using Pilotlight.Operator.Access;
using Pilotlight.Tests.Contracts;

namespace Pilotlight.Tests.Operator.Access;

/// <summary>Which labelled Secrets become verifiers, and why the others are refused.</summary>
public sealed class InvokeKeyPublisherTests
{
    private static V1Secret Secret(string ns, string name, string? key, string? functions)
    {
        var secret = new V1Secret
        {
            Metadata = new V1ObjectMeta
            {
                NamespaceProperty = ns, Name = name, Uid = $"uid-{ns}-{name}", ResourceVersion = "1",
                Labels = new Dictionary<string, string> { [InvokeKeys.Label] = "true" },
                Annotations = functions is null ? null : new Dictionary<string, string> { [InvokeKeys.FunctionsAnnotation] = functions },
            },
            Data = key is null ? new Dictionary<string, byte[]>() : new Dictionary<string, byte[]> { [InvokeKeys.KeyField] = Encoding.UTF8.GetBytes(key) },
        };
        return secret;
    }

    [Test]
    public void A_well_formed_key_becomes_a_verifier_of_its_namespace_and_functions_without_the_key()
    {
        var key = InvokeKeysTests.NewKey();
        // kubectl create secret --from-file keeps the file's newline: that is not part of the key.
        var (verifiers, refused) = InvokeKeyPublisher.Build([Secret("team", "web", key + "\n", "fn-b, fn-a")]);

        Assert.That(refused, Is.Empty);
        var verifier = verifiers.Single();
        Assert.Multiple(() =>
        {
            Assert.That(verifier.Namespace, Is.EqualTo("team"));
            Assert.That(verifier.Functions, Is.EqualTo(new[] { "fn-a", "fn-b" }));
            Assert.That(verifier.Secret, Is.EqualTo("web"));
            Assert.That(verifier.SecretUid, Is.EqualTo("uid-team-web"));
            Assert.That(verifier.Sha256, Is.EqualTo(InvokeKeys.Hash(key)));
            Assert.That(InvokeKeys.Serialize(verifiers), Does.Not.Contain(key[4..]));
        });
    }

    [Test]
    public void A_wildcard_opens_every_function_and_nothing_else_is_kept_beside_it()
    {
        var (verifiers, _) = InvokeKeyPublisher.Build([Secret("team", "all", InvokeKeysTests.NewKey(), "fn-a,*")]);
        Assert.That(verifiers.Single().Functions, Is.EqualTo(new[] { InvokeKeys.AllFunctions }));
    }

    [Test]
    public void Unusable_secrets_are_refused_with_a_reason_that_never_holds_the_key()
    {
        var good = InvokeKeysTests.NewKey();
        var (verifiers, refused) = InvokeKeyPublisher.Build(
        [
            Secret("team", "short", "plk_hunter2", "fn"),
            Secret("team", "nokey", null, "fn"),
            Secret("team", "nofunctions", good, null),
            Secret("team", "emptyfunctions", good, " , "),
            Secret("team", "fine", InvokeKeysTests.NewKey(), "fn"),
        ]);

        Assert.That(verifiers.Select(v => v.Secret), Is.EqualTo(new[] { "fine" }));
        var reasons = refused.ToDictionary(r => r.Secret.Metadata.Name, r => r.Problem);
        Assert.Multiple(() =>
        {
            Assert.That(reasons.Keys, Is.EquivalentTo(new[] { "short", "nokey", "nofunctions", "emptyfunctions" }));
            Assert.That(reasons["short"], Does.Contain("not an invoke key").And.Contain("openssl rand").And.Not.Contain("hunter2"));
            Assert.That(reasons["nokey"], Does.Contain("no data field 'key'"));
            Assert.That(reasons["nofunctions"], Does.Contain(InvokeKeys.FunctionsAnnotation).And.Not.Contain(good[4..]));
            Assert.That(reasons["emptyfunctions"], Does.Contain("names no function"));
        });
    }

    [Test]
    public void The_same_secrets_in_any_order_publish_the_same_text()
    {
        var secrets = new[] { Secret("b", "k", InvokeKeysTests.NewKey(), "fn"), Secret("a", "k", InvokeKeysTests.NewKey(), "fn") };
        Assert.That(InvokeKeys.Serialize(InvokeKeyPublisher.Build(secrets).Verifiers),
            Is.EqualTo(InvokeKeys.Serialize(InvokeKeyPublisher.Build(secrets.Reverse()).Verifiers)));
    }
}
