using System.Net;
using System.Net.Http.Headers;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Who may invoke a function, through the shared gateway on the real API server: a private function (the default)
/// admits only a token minted for the gateway's audience whose user RBAC lets invoke it, and a stranger neither gets
/// an answer nor wakes it; a public function admits anyone unless the platform turns public functions off; repeated
/// bad tokens from one address are refused without asking the API server.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public class InvocationAccessTests() : ServingFixture(12, "acc")
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private string _ns = "";
    private string _other = "";
    private string _callerToken = "";
    private string _strangerToken = "";

    private string Manifest(string name, string access) => $"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {name}
        spec:
          image: example/model-server:1
          access: {access}
          gpu: {"{"}type: L4{"}"}
          scaling: {"{"}maxReplicas: 1{"}"}
          nodeSelector:
            {PoolLabel}: {Pool}
        """;

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4.WithGpus(2));
        _ns = await Plane.CreateNamespaceAsync("access");
        _other = await Plane.CreateNamespaceAsync("access-other");
        (await Kubectl.ApplyAsync(Manifest("private", "Private"), _ns)).EnsureSuccess();
        (await Kubectl.ApplyAsync(Manifest("public", "Public"), _ns)).EnsureSuccess();
        (await Kubectl.ApplyAsync(Manifest("untouched", "Private"), _ns)).EnsureSuccess();
        (await Kubectl.ApplyAsync(Manifest("elsewhere", "Private"), _other)).EnsureSuccess();

        // "caller" may invoke functions in _ns only (a RoleBinding to the chart's invoker role); "stranger" nowhere.
        foreach (var account in new[] { "caller", "stranger" })
        {
            await Client.CoreV1.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = $"{account}-{_ns}" } }, Helm.Namespace);
        }

        await Client.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = "caller" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-invoker" },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = $"caller-{_ns}", NamespaceProperty = Helm.Namespace }],
        }, _ns);
        _callerToken = await SharedOperator.GatewayTokenAsync(Client, $"caller-{_ns}");
        _strangerToken = await SharedOperator.GatewayTokenAsync(Client, $"stranger-{_ns}");
    }

    private async Task<HttpResponseMessage> InvokeAsync(string ns, string function, string? token, string? gateway = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{gateway ?? GatewayUrl}/{ns}/{function}/predict") { Content = new StringContent("hi") };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await Anonymous.SendAsync(request);
    }

    private async Task<GpuFunction> GetAsync(string ns, string name) =>
        await Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", name);

    [Test]
    public async Task A_stranger_is_refused_and_does_not_wake_the_function()
    {
        using var none = await InvokeAsync(_ns, "untouched", null);
        using var apiServerToken = await InvokeAsync(_ns, "untouched", Plane.UserToken("alice"));
        using var stranger = await InvokeAsync(_ns, "untouched", _strangerToken);
        using var missing = await InvokeAsync(_ns, "no-such-function", null);

        Assert.Multiple(() =>
        {
            Assert.That(none.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(none.Headers.WwwAuthenticate.ToString(), Does.StartWith("Bearer"));
            Assert.That(apiServerToken.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "a token for the API server is not one for the gateway");
            Assert.That(missing.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "no 404 to tell which names exist");
            Assert.That(stranger.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        });

        // Nobody was admitted to this function, so nothing asked it to wake.
        var function = await GetAsync(_ns, "untouched");
        Assert.That(function.Metadata.Annotations?.Keys ?? [], Has.None.StartsWith("pilotlight.dev/wake"), "no wake stamp for a refused request");
        Assert.That(function.Status?.DesiredReplicas ?? 0, Is.Zero);
    }

    [Test]
    public async Task A_caller_without_the_right_gets_403_and_one_with_it_is_served()
    {
        using var stranger = await InvokeAsync(_ns, "private", _strangerToken);
        using var elsewhere = await InvokeAsync(_other, "elsewhere", _callerToken);
        using var missing = await InvokeAsync(_ns, "no-such-function", _callerToken);
        Assert.Multiple(() =>
        {
            Assert.That(stranger.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(elsewhere.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), "the caller's role is bound in one namespace only");
            Assert.That(missing.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "allowed there, and told it does not exist");
        });

        using var served = await InvokeAsync(_ns, "private", _callerToken);
        Assert.That(served.StatusCode, Is.EqualTo(HttpStatusCode.OK), await served.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task A_public_function_serves_anyone_unless_the_platform_forbids_public_functions()
    {
        using var anyone = await InvokeAsync(_ns, "public", null);
        Assert.That(anyone.StatusCode, Is.EqualTo(HttpStatusCode.OK), await anyone.Content.ReadAsStringAsync());

        await using var strict = await StartGatewayAsync(new InvocationAccessOptions { AllowPublic = false });
        using var refused = await InvokeAsync(_ns, "public", null, strict.Url);
        using var allowed = await InvokeAsync(_ns, "public", _callerToken, strict.Url);
        Assert.Multiple(() =>
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "public functions are private on this gateway");
            Assert.That(allowed.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        });
    }

    [Test]
    public async Task Repeated_bad_tokens_from_one_address_are_refused_without_asking_the_API_server()
    {
        // A gateway of its own: the shared one's failure budget for 127.0.0.1 belongs to every test.
        await using var gateway = await StartGatewayAsync(new InvocationAccessOptions { FailuresPerMinute = 5 });
        var codes = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            using var response = await InvokeAsync(_ns, "private", $"guess-{i}", gateway.Url);
            codes.Add(response.StatusCode);
        }

        Assert.That(codes.Take(5), Is.All.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(codes.Skip(5), Is.All.EqualTo(HttpStatusCode.TooManyRequests));
    }

    [Test]
    public async Task An_admitted_caller_is_named_on_the_request_and_its_token_left_for_the_forwarder_to_remove()
    {
        // The forwarder removes Authorization (and Cookie) before the function unless the function asks for them
        // (InvocationTransformerTests, GatewayHardeningTests); admission only names the caller for the per-client limits.
        using var gatewayClient = Plane.CreateClient(ChartRbac.GatewayUser);
        using var access = new InvocationAccess(gatewayClient, new InvocationAccessOptions(), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
            Prometheus.Metrics.NewCustomRegistry());
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = $"Bearer {_callerToken}";

        var admitted = await access.AdmitAsync(context, await GetAsync(_ns, "private"), _ns, "private");

        Assert.That(admitted, Is.True);
        Assert.That(context.Features.Get<InvocationCaller>()?.Name, Is.EqualTo($"system:serviceaccount:{Helm.Namespace}:caller-{_ns}"));
    }

    private async Task<RunningGateway> StartGatewayAsync(InvocationAccessOptions access)
    {
        var client = Plane.CreateClient(ChartRbac.GatewayUser);
        var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        var app = GatewayApp.Build(client, url, new GatewayOptions { Access = access }, Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await app.StartAsync();
        await Eventually.HoldsAsync(async () =>
        {
            using var ready = await Anonymous.GetAsync($"{url}/readyz");
            return ready.IsSuccessStatusCode;
        }, Timeout, "the extra gateway's caches synced");
        return new RunningGateway(app, client, url);
    }

    private sealed record RunningGateway(WebApplication App, Kubernetes Client, string Url) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
            Client.Dispose();
        }
    }
}
