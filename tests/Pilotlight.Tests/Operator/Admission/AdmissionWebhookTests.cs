using System.Text.Json;
using System.Text.Json.Nodes;
using Pilotlight.Operator.Admission;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Sandboxes;

namespace Pilotlight.Tests.Operator.Admission;

public sealed class AdmissionWebhookTests
{
    private static readonly AdmissionWebhook Webhook = new(GpuCatalog.Default, new AdmissionPolicy(), new FunctionPodOptions(),
        new SandboxOptions { AllowedRuntimeClasses = ["runsc"], DefaultRuntimeClass = "runsc" });

    private static JsonObject Answer(string kind, string operation, string objectJson, string? oldJson = null)
    {
        var old = oldJson is null ? "" : ",\"oldObject\":" + oldJson;
        var review = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u-1\","
            + $"\"kind\":{{\"group\":\"pilotlight.dev\",\"version\":\"v1alpha1\",\"kind\":\"{kind}\"}},"
            + $"\"operation\":\"{operation}\",\"object\":{objectJson}{old}}}}}";
        using var document = JsonDocument.Parse(review);
        return (JsonObject)Webhook.Review(document.RootElement)["response"]!;
    }

    private static string Function(string name, string spec, string extraMetadata = "") =>
        $$"""{"apiVersion":"pilotlight.dev/v1alpha1","kind":"GpuFunction","metadata":{"name":"{{name}}","namespace":"t"{{extraMetadata}}},"spec":{{spec}}}""";

    [Test]
    public void A_valid_function_is_allowed_and_the_uid_echoed()
    {
        var response = Answer("GpuFunction", "CREATE", Function("llm", """{"image":"m:1","gpu":{"type":"L4"}}"""));

        Assert.That(response["uid"]!.GetValue<string>(), Is.EqualTo("u-1"));
        Assert.That(response["allowed"]!.GetValue<bool>(), Is.True);
        Assert.That(response["status"], Is.Null);
    }

    [Test]
    public void Every_problem_is_refused_at_once_with_its_field()
    {
        var response = Answer("GpuFunction", "CREATE", Function("llm",
            """{"image":"m:1","port":9102,"scaling":{"minReplicas":5,"maxReplicas":1},"volumes":[{"name":"h","hostPath":{"path":"/"}}]}"""));

        Assert.That(response["allowed"]!.GetValue<bool>(), Is.False);
        var message = response["status"]!["message"]!.GetValue<string>();
        Assert.That(message, Does.Contain("spec.port: 9102").And.Contain("spec.scaling.minReplicas: 5").And.Contain("spec.volumes[0].hostPath"));
        Assert.That(response["status"]!["code"]!.GetValue<int>(), Is.EqualTo(422));
    }

    [Test]
    public void An_unknown_gpu_type_is_refused_as_the_reconciler_would_listing_the_known_ones()
    {
        var catalog = GpuCatalog.Parse("H100: [NVIDIA-H100-80GB-HBM3]\nX1000: [NVIDIA-X1000]");
        var webhook = new AdmissionWebhook(catalog, new AdmissionPolicy(), new FunctionPodOptions(), new SandboxOptions());
        foreach (var (kind, json, expected) in new[]
        {
            ("GpuFunction", Function("b", """{"image":"m:1","gpu":{"type":"B200"}}"""), "spec.gpu.type: GPU type 'B200'"),
            ("GpuFunction", Function("f", """{"image":"m:1","gpu":{"type":"x1000","fallbacks":["V100"]}}"""), "spec.gpu.fallbacks[0]: GPU type 'V100'"),
            ("Sandbox", """{"apiVersion":"pilotlight.dev/v1alpha1","kind":"Sandbox","metadata":{"name":"s","namespace":"t"},"spec":{"image":"p:1","gpu":{"type":"B200"}}}""", "spec.gpu.type: GPU type 'B200'"),
        })
        {
            using var review = JsonDocument.Parse("{\"request\":{\"uid\":\"x\",\"kind\":{\"kind\":\"" + kind + "\"},\"operation\":\"CREATE\",\"object\":" + json + "}}");

            var response = webhook.Review(review.RootElement)["response"]!;

            Assert.That(response["allowed"]!.GetValue<bool>(), Is.False, json);
            Assert.That(response["status"]!["message"]!.GetValue<string>(), Does.Contain(expected).And.Contain("(known: H100, X1000)"));
        }

        // The custom type itself, in any case, is admitted.
        using var good = JsonDocument.Parse("{\"request\":{\"uid\":\"x\",\"kind\":{\"kind\":\"GpuFunction\"},\"operation\":\"CREATE\",\"object\":"
            + Function("ok", """{"image":"m:1","gpu":{"type":"x1000","fallbacks":["H100"]}}""") + "}}");
        Assert.That(webhook.Review(good.RootElement)["response"]!["allowed"]!.GetValue<bool>(), Is.True);
    }

    [Test]
    public void An_update_that_leaves_the_spec_alone_is_never_refused()
    {
        // The gateway's wake annotation, a finalizer's removal: a policy tightened later must not block them.
        const string bad = """{"image":"m:1","port":8099}""";
        var response = Answer("GpuFunction", "UPDATE", Function("llm", bad, ",\"annotations\":{\"pilotlight.dev/wake\":\"x\"}"), Function("llm", bad));

        Assert.That(response["allowed"]!.GetValue<bool>(), Is.True);
    }

    [Test]
    public void An_update_that_changes_the_spec_into_a_mistake_is_refused()
    {
        var response = Answer("GpuFunction", "UPDATE", Function("llm", """{"image":"m:1","port":8099}"""), Function("llm", """{"image":"m:1"}"""));

        Assert.That(response["allowed"]!.GetValue<bool>(), Is.False);
    }

    [Test]
    public void An_object_being_deleted_is_never_refused()
    {
        var response = Answer("GpuFunction", "UPDATE", Function("llm", """{"image":"m:1","port":8099}""", ",\"deletionTimestamp\":\"2026-12-01T00:00:00Z\""),
            Function("llm", """{"image":"m:2","port":8099}"""));

        Assert.That(response["allowed"]!.GetValue<bool>(), Is.True);
    }

    [Test]
    public void Sandboxes_and_pools_get_their_reconcilers_checks()
    {
        var sandbox = Answer("Sandbox", "CREATE",
            """{"metadata":{"name":"s"},"spec":{"image":"python:3","runtimeClassName":"none-such","envFrom":[{"prefix":"PILOTLIGHT_","configMapRef":{"name":"c"}}]}}""");
        var pool = Answer("SandboxWarmPool", "CREATE", """{"metadata":{"name":"Pool"},"spec":{"image":"python:3"}}""");

        Assert.Multiple(() =>
        {
            Assert.That(sandbox["allowed"]!.GetValue<bool>(), Is.False);
            Assert.That(sandbox["status"]!["message"]!.GetValue<string>(), Does.Contain("none-such").And.Contain("spec.envFrom[0].prefix"));
            Assert.That(pool["allowed"]!.GetValue<bool>(), Is.False);
            Assert.That(pool["status"]!["message"]!.GetValue<string>(), Does.StartWith("metadata.name"));
        });
    }

    [Test]
    public void A_review_without_a_request_is_refused_not_thrown()
    {
        using var document = JsonDocument.Parse("""{"kind":"AdmissionReview"}""");

        var response = Webhook.Review(document.RootElement)["response"]!;

        Assert.That(response["allowed"]!.GetValue<bool>(), Is.False);
    }
}
