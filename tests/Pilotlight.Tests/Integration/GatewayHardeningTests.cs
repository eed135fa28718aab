using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Regex = System.Text.RegularExpressions.Regex;
using RegexOptions = System.Text.RegularExpressions.RegexOptions;
using GeneratedRegexAttribute = System.Text.RegularExpressions.GeneratedRegexAttribute;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// The gateway against a hostile or careless network, end to end through the real shim and sample model server:
/// the body limit (413 for a declared and for a streamed body), per-client limits (429 for one caller while another
/// is served), host routing, the caller's credentials kept from a function unless it asks; and 50 concurrent 20 MiB
/// uploads through a gateway process whose temp directory stands for the chart's 64 Mi emptyDir, measured.
/// Most tests use a gateway of their own built in-process with the options under test (acting as the chart's
/// gateway ServiceAccount); the upload test runs the gateway binary so its memory is its own.
/// </summary>
[TestFixture, Category("Integration"), Parallelizable(ParallelScope.Self)]
public sealed partial class GatewayHardeningTests() : ServingFixture(50, "harden", TimeSpan.FromMinutes(5))
{
    private const long MiB = 1024 * 1024;
    private const string Domain = "example.test";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private string _ns = "";
    private string _otherCaller = "";
    private string _otherToken = "";
    private Kubernetes _gatewayClient = null!;
    private WebApplication? _gateway;
    private string _gatewayUrl = "";

    [OneTimeSetUp]
    public async Task SetUpAsync()
    {
        await AddPoolNodeAsync(GpuNodePreset.L4);
        _ns = await Plane.CreateNamespaceAsync("harden");
        foreach (var (name, extra) in new[] { ("upload", "maxConcurrency: 64"), ("small", "maxConcurrency: 8"), ("creds", "maxConcurrency: 8") })
        {
            (await Kubectl.ApplyAsync($$"""
                apiVersion: pilotlight.dev/v1alpha1
                kind: GpuFunction
                metadata: {name: {{name}}}
                spec:
                  image: example/model-server:1
                  env:
                    - {name: LOAD_SECONDS, value: "0"}
                  gpu: {type: L4}
                  scaling: {minReplicas: 1, maxReplicas: 1, {{extra}}}
                  timeout: 5m
                  startupTimeout: 2m
                  passCallerCredentials: {{(name == "creds" ? "true" : "false")}}
                  nodeSelector: {{{PoolLabel}}: {{Pool}}}
                """, _ns)).EnsureSuccess();
        }

        foreach (var name in new[] { "upload", "small", "creds" })
        {
            await Eventually.HoldsAsync(async () => (await Client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(
                Group.Name, Group.Version, _ns, "gpufunctions", name)).Status?.ReadyReplicas == 1, Timeout, $"{name} has a ready pod");
        }

        // A second caller the invoker role is bound to: the per-client limits tell callers apart by user name.
        _otherCaller = $"invoker-b-{Guid.NewGuid():N}"[..22];
        await Client.CoreV1.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = _otherCaller } }, Helm.Namespace);
        await Client.RbacAuthorizationV1.CreateClusterRoleBindingAsync(new V1ClusterRoleBinding
        {
            Metadata = new V1ObjectMeta { Name = _otherCaller },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-invoker" },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = _otherCaller, NamespaceProperty = Helm.Namespace }],
        });
        _otherToken = await SharedOperator.GatewayTokenAsync(Client, _otherCaller);

        _gatewayClient = Plane.CreateClient(ChartRbac.GatewayUser);
        _gatewayUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        _gateway = GatewayApp.Build(_gatewayClient, _gatewayUrl, new GatewayOptions
        {
            MaxRequestBodySize = MiB,
            HostDomain = Domain,
            ClientLimits = new ClientLimitOptions { ConcurrentRequests = 2 },
        }, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await _gateway.StartAsync();
        foreach (var name in new[] { "upload", "small", "creds" })
        {
            await Eventually.HoldsAsync(async () =>
            {
                using var response = await Http.GetAsync($"{_gatewayUrl}/{_ns}/{name}/headers");
                return response.StatusCode == HttpStatusCode.OK;
            }, Timeout, $"the test's gateway routes to {name}");
        }
    }

    [OneTimeTearDown]
    public async Task TearDownAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.StopAsync();
            await _gateway.DisposeAsync();
        }

        _gatewayClient?.Dispose();
        if (_otherCaller.Length > 0)
        {
            await Client.RbacAuthorizationV1.DeleteClusterRoleBindingAsync(_otherCaller);
            await Client.CoreV1.DeleteNamespacedServiceAccountAsync(_otherCaller, Helm.Namespace);
        }
    }

    /// <summary>Invocations the gateway at <paramref name="url"/> has counted for a function, all status codes together.</summary>
    private async Task<double> CountedAsync(string url, string function)
    {
        var text = await Anonymous.GetStringAsync($"{url}/metrics");
        return text.Split('\n')
            .Where(l => l.StartsWith("pilotlight_gateway_requests_total{", StringComparison.Ordinal)
                && l.Contains($"namespace=\"{_ns}\"", StringComparison.Ordinal) && l.Contains($"function=\"{function}\"", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }

    [Test]
    public async Task Internal_endpoints_answer_only_on_the_internal_port_and_only_to_the_operators_token()
    {
        var publicUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        var internalPort = ControlPlane.FreePort();
        var internalUrl = $"http://127.0.0.1:{internalPort}";
        await using var gateway = GatewayApp.Build(_gatewayClient, publicUrl, new GatewayOptions
        {
            InternalPort = internalPort, InternalCallers = [SharedOperator.OperatorUser],
        }, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await gateway.StartAsync();
        try
        {
            var operatorToken = await SharedOperator.GatewayTokenAsync(Client, "pilotlight-operator");
            async Task<HttpStatusCode> GetAsync(string url, string? token = null)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                if (token is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                }

                using var response = await Anonymous.SendAsync(request);
                return response.StatusCode;
            }

            // Through the public port nothing internal is there, whoever asks: demand, signals, metrics, the operator's usage path.
            foreach (var path in new[] { "/internal/demand", "/internal/signals?epoch=x&after=0", "/metrics", "/usage" })
            {
                Assert.That(await GetAsync(publicUrl + path, operatorToken), Is.EqualTo(HttpStatusCode.NotFound), $"public {path}");
            }

            // The internal port: no token 401, a caller's valid token 403, the operator's 200; metrics need no token.
            Assert.That(await GetAsync(internalUrl + "/internal/demand"), Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(await GetAsync(internalUrl + "/internal/demand", InvokerToken), Is.EqualTo(HttpStatusCode.Forbidden), "an invoker is not the operator");
            Assert.That(await GetAsync(internalUrl + "/internal/demand", "not-a-token"), Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(await GetAsync(internalUrl + "/internal/demand", operatorToken), Is.EqualTo(HttpStatusCode.OK));
            Assert.That(await GetAsync(internalUrl + "/metrics"), Is.EqualTo(HttpStatusCode.OK));

            // Nothing but those on the internal port: no invocation, no sandbox API.
            Assert.That(await GetAsync($"{internalUrl}/{_ns}/small/headers", InvokerToken), Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That(await GetAsync($"{internalUrl}/_sandbox/{_ns}/any/files?path=x", InvokerToken), Is.EqualTo(HttpStatusCode.NotFound));

            // A signals poll from another epoch is answered at once with this gateway's state.
            using var poll = new HttpRequestMessage(HttpMethod.Get, $"{internalUrl}{Pilotlight.Contracts.GatewaySignals.Path}?epoch=other&after=5");
            poll.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
            using var answer = await Anonymous.SendAsync(poll);
            var signals = await answer.Content.ReadFromJsonAsync<Pilotlight.Contracts.GatewaySignals>();
            Assert.That(signals!.Epoch, Is.Not.Empty.And.Not.EqualTo("other"));
        }
        finally
        {
            await gateway.StopAsync();
        }
    }

    [Test]
    public async Task The_gateways_service_account_cannot_write_a_function_or_a_sandbox()
    {
        // The chart's gateway role, as the gateway runs: no patch on either resource.
        var patch = new V1Patch("{\"metadata\":{\"annotations\":{\"x\":\"y\"}}}", V1Patch.PatchType.MergePatch);
        foreach (var plural in new[] { "gpufunctions", "sandboxes" })
        {
            var refused = await Assert.ThrowsAsync<k8s.Autorest.HttpOperationException>(() =>
                _gatewayClient.CustomObjects.PatchNamespacedCustomObjectAsync(patch, Group.Name, Group.Version, _ns, plural, "small"));
            Assert.That(refused!.Response.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), plural);
        }
    }

    [Test]
    public async Task A_declared_body_over_the_limit_is_413_and_never_reaches_the_proxy()
    {
        var before = await CountedAsync(_gatewayUrl, "upload");
        // As a careful client sends a large body: it waits for the go-ahead, so the early 413 cannot race its upload
        // (without it the client may still be writing when the gateway closes: a broken pipe instead of the answer).
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{_gatewayUrl}/{_ns}/upload/upload") { Content = new ByteArrayContent(new byte[2 * MiB]) };
        request.Headers.ExpectContinue = true;
        using var response = await Http.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("1 MiB"));
        Assert.That(await CountedAsync(_gatewayUrl, "upload"), Is.EqualTo(before), "refused before the invocation began");
    }

    [Test]
    public async Task A_streamed_body_that_grows_past_the_limit_is_stopped_with_413()
    {
        using (var within = await Http.PostAsync($"{_gatewayUrl}/{_ns}/upload/upload", Chunked(MiB / 2)))
        {
            Assert.That(within.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a chunked body within the limit goes through");
            Assert.That(JsonDocument.Parse(await within.Content.ReadAsStringAsync()).RootElement.GetProperty("bytes").GetInt64(), Is.EqualTo(MiB / 2));
        }

        // Over HTTP/2 (as gRPC and most large-upload clients speak to the gateway): the refusal ends the stream and the
        // client reads the answer. Over HTTP/1.1 the gateway answers the same, but must then close a connection the
        // client is still writing to, and a client that is not reading before it finishes writing may see a reset instead.
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{_gatewayUrl}/{_ns}/upload/upload")
        {
            Content = Chunked(8 * MiB), Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var over = await Http.SendAsync(request);
        Assert.That(over.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(await over.Content.ReadAsStringAsync(), Does.Contain("1 MiB"));
    }

    /// <summary>A body of <paramref name="bytes"/> with no declared length: sent chunked.</summary>
    private static StreamContent Chunked(long bytes) => new(new Zeros(bytes));

    [Test]
    public async Task A_client_over_its_concurrency_limit_gets_429_while_another_client_is_served()
    {
        // Two long requests of the invoker take its two slots; once they are in, its third is refused.
        var slow = Enumerable.Range(0, 2).Select(_ => Http.GetAsync($"{_gatewayUrl}/{_ns}/small/predict?ms=20000")).ToList();
        // Both in before the third is sent: a third sent alongside could take a slot first and one slow one get the 429.
        await Eventually.HoldsAsync(async () =>
        {
            using var demand = JsonDocument.Parse(await Anonymous.GetStringAsync($"{_gatewayUrl}/internal/demand"));
            return demand.RootElement.EnumerateArray().Any(f => f.GetProperty("namespace").GetString() == _ns && f.GetProperty("name").GetString() == "small"
                && f.GetProperty("inFlight").GetInt32() == 2);
        }, TimeSpan.FromSeconds(10), "both slow requests are in flight");
        HttpResponseMessage? refused = null;
        var seen = new List<string>();
        await Eventually.HoldsAsync(async () =>
        {
            var response = await Http.GetAsync($"{_gatewayUrl}/{_ns}/small/predict?ms=0");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                refused = response;
                return true;
            }

            seen.Add($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            response.Dispose();
            return false;
        }, TimeSpan.FromSeconds(20), "the invoker's third concurrent request is refused").ContinueWith(t => t.IsFaulted
            ? throw new AssertionException($"no 429 while the slow requests ran; answers: {string.Join(" | ", seen.Distinct())}; slow: "
                + string.Join(", ", slow.Select(r => r.IsCompletedSuccessfully ? ((int)r.Result.StatusCode).ToString(CultureInfo.InvariantCulture) : r.Status.ToString())))
            : Task.CompletedTask).Unwrap();

        using (refused)
        {
            Assert.That(refused!.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
        }

        using var other = new HttpRequestMessage(HttpMethod.Get, $"{_gatewayUrl}/{_ns}/small/predict?ms=0");
        other.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _otherToken);
        using (var served = await Anonymous.SendAsync(other))
        {
            Assert.That(served.StatusCode, Is.EqualTo(HttpStatusCode.OK), "another caller is served meanwhile");
        }

        Assert.That(slow.Any(t => t.IsCompleted), Is.False, "the invoker's slow requests were still in flight");
        foreach (var response in await Task.WhenAll(slow))
        {
            using (response)
            {
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            }
        }
    }

    [Test]
    public async Task A_functions_host_reaches_it_with_the_path_unchanged_and_path_routing_still_works()
    {
        using var byHost = new HttpRequestMessage(HttpMethod.Get, $"{_gatewayUrl}/headers");
        byHost.Headers.Host = $"small.{_ns}.{Domain}";
        using var hostAnswer = await Http.SendAsync(byHost);
        Assert.That(hostAnswer.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the sample answers /headers only at that path");
        var headers = JsonDocument.Parse(await hostAnswer.Content.ReadAsStringAsync()).RootElement.GetProperty("headers");
        Assert.Multiple(() =>
        {
            Assert.That(headers.TryGetProperty("X-Forwarded-Prefix", out _), Is.False, "no prefix was stripped");
            Assert.That(headers.GetProperty("X-Forwarded-Host").GetString(), Is.EqualTo($"small.{_ns}.{Domain}"));
        });

        using (var byPath = await Http.GetAsync($"{_gatewayUrl}/{_ns}/small/headers"))
        {
            Assert.That(byPath.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        foreach (var unknown in new[] { $"nothing.{Domain}", $"a.b.{_ns}.{Domain}", $"missing.{_ns}.{Domain}" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{_gatewayUrl}/headers");
            request.Headers.Host = unknown;
            using var response = await Http.SendAsync(request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), unknown);
        }
    }

    [Test]
    public async Task The_callers_authorization_and_cookies_reach_only_a_function_that_asks_for_them()
    {
        async Task<JsonElement> HeadersSeenByAsync(string function)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{_gatewayUrl}/{_ns}/{function}/headers");
            request.Headers.Add("Cookie", "session=secret");
            using var response = await Http.SendAsync(request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), function);
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("headers").Clone();
        }

        var byDefault = await HeadersSeenByAsync("small");
        var optedIn = await HeadersSeenByAsync("creds");
        Assert.Multiple(() =>
        {
            Assert.That(byDefault.TryGetProperty("Authorization", out _), Is.False);
            Assert.That(byDefault.TryGetProperty("Cookie", out _), Is.False);
            Assert.That(optedIn.GetProperty("Authorization").GetString(), Is.EqualTo($"Bearer {InvokerToken}"));
            Assert.That(optedIn.GetProperty("Cookie").GetString(), Is.EqualTo("session=secret"));
        });
    }

    [TestCase("100Mi", HttpStatusCode.OK)]
    [TestCase("10Mi", HttpStatusCode.RequestEntityTooLarge)]
    public async Task Fifty_concurrent_20_MiB_uploads_stay_within_the_gateways_memory_and_temp_volume(string maxBody, HttpStatusCode expected)
    {
        // The chart's gateway container: memory limit 512Mi, /tmp an emptyDir of 64Mi. A gateway that buffered
        // bodies would need 50 x 20 MiB = 1000 MiB of one or the other.
        const long tempLimit = 64 * MiB;
        const long memoryLimit = 512 * MiB;
        var tmp = Directory.CreateDirectory(Path.Combine(Plane.Directory, $"gateway-tmp-{maxBody}-{Guid.NewGuid():N}"[..40])).FullName;
        var kubeconfig = Path.Combine(Plane.Directory, $"gateway-{Guid.NewGuid():N}.kubeconfig");
        await File.WriteAllTextAsync(kubeconfig,
            TokenLine().Replace(await File.ReadAllTextAsync(Plane.KubeconfigPath), $"    token: {Plane.UserToken(ChartRbac.GatewayUser)}"));
        var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        var gateway = ManagedProcess.Start("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "Pilotlight.Gateway.dll"),
            "--kubeconfig", kubeconfig, "--listen", url, "--max-request-body-size", maxBody, "--drain-seconds", "1",
        ], Path.Combine(Plane.Directory, $"gateway-{maxBody}.log"), new Dictionary<string, string> { ["TMPDIR"] = tmp });
        try
        {
            await Eventually.HoldsAsync(async () =>
            {
                try
                {
                    using var response = await Http.GetAsync($"{url}/{_ns}/small/headers");
                    return response.StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, Timeout, $"the gateway process serves ({gateway.LogTail(5)})");

            var body = new byte[20 * MiB];
            Random.Shared.NextBytes(body);
            long peakTemp = 0, peakSampledRss = 0;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peakTemp = Math.Max(peakTemp, DirectoryBytes(tmp));
                    peakSampledRss = Math.Max(peakSampledRss, ProcStatusBytes(gateway.Id, "VmRSS"));
                    await Task.Delay(TimeSpan.FromMilliseconds(20));
                }
            });
            var baseline = ProcStatusBytes(gateway.Id, "VmRSS");

            var completed = 0;
            var uploads = Enumerable.Range(0, 50).Select(async _ =>
            {
                try
                {
                    // A refused upload is sent with Expect: 100-continue, as curl sends large bodies, so the 413 comes before the
                    // body (over HTTP/1.1 a client writing a body the server will not read may otherwise see a reset).
                    using var request = new HttpRequestMessage(HttpMethod.Post, $"{url}/{_ns}/upload/upload") { Content = new ByteArrayContent(body) };
                    request.Headers.ExpectContinue = expected == HttpStatusCode.RequestEntityTooLarge;
                    using var response = await Http.SendAsync(request);
                    return (response.StatusCode, Text: await response.Content.ReadAsStringAsync());
                }
                finally
                {
                    Interlocked.Increment(ref completed);
                }
            }).ToList();

            // Another function is served while the uploads run.
            using (var small = await Http.GetAsync($"{url}/{_ns}/small/predict?ms=0"))
            {
                Assert.That(small.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            }

            var completedWhenSmallAnswered = Volatile.Read(ref completed);
            var answers = await Task.WhenAll(uploads);
            await sampling.CancelAsync();
            await sampler;
            var peakRss = ProcStatusBytes(gateway.Id, "VmHWM");

            TestContext.Progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"50 x 20 MiB uploads, --max-request-body-size {maxBody}: {string.Join(", ", answers.GroupBy(a => (int)a.StatusCode).Select(g => $"{g.Count()} x {g.Key}"))}; "
                + $"gateway RSS {baseline / MiB} MiB before, peak {peakRss / MiB} MiB (VmHWM; sampled peak {peakSampledRss / MiB} MiB); "
                + $"peak temp dir {peakTemp} bytes; small request answered after {completedWhenSmallAnswered} of 50 uploads"));
            Assert.Multiple(() =>
            {
                Assert.That(answers.Select(a => a.StatusCode), Is.All.EqualTo(expected), "every upload is answered");
                if (expected == HttpStatusCode.OK)
                {
                    Assert.That(answers.Select(a => JsonDocument.Parse(a.Text).RootElement.GetProperty("bytes").GetInt64()), Is.All.EqualTo(20 * MiB),
                        "the function read every byte");
                }

                Assert.That(peakTemp, Is.LessThanOrEqualTo(tempLimit), "the temp directory stays within the chart's 64Mi emptyDir");
                Assert.That(peakRss, Is.LessThan(memoryLimit), "the gateway stays within the chart's 512Mi memory limit");
                if (expected == HttpStatusCode.OK)
                {
                    // Refused uploads are answered 413 at their headers (100-continue), so they may all be done before the small
                    // request; only uploads whose bodies the function reads are still running when it is answered.
                    Assert.That(completedWhenSmallAnswered, Is.LessThan(50), "the small request was served while uploads were still running");
                }
            });
        }
        finally
        {
            await gateway.StopAsync();
        }
    }

    /// <summary>Bytes in the files under <paramref name="directory"/>, now.</summary>
    private static long DirectoryBytes(string directory)
    {
        long total = 0;
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
        {
            try
            {
                total += file.Length;
            }
            catch (FileNotFoundException)
            {
            }
        }

        return total;
    }

    /// <summary>A size field of /proc/PID/status (VmRSS: resident now; VmHWM: the peak resident size), in bytes.</summary>
    private static long ProcStatusBytes(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"no {field} in /proc/{pid}/status");
    }

    [GeneratedRegex(@"^\s*token: .*$", RegexOptions.Multiline)]
    private static partial Regex TokenLine();
}
