using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Sandboxes;
using Pilotlight.Testing;

namespace Pilotlight.Bench;

/// <summary>
/// Sandboxes on the real control plane, in one run: create to Ready of a
/// Sandbox on a new pod (the baseline) and on a claimed pod of a warm pool of
/// the same shape, and exec round trips through the gateway against the same
/// exec sent straight to the sandbox's agent, so what the gateway adds
/// (TokenReview, SubjectAccessReview, activity and proxying) is the
/// difference. The gateway caches its reviews for 10 s, so calls that miss
/// that cache are measured apart. Simulated pods run the agent as a local
/// process, so a pod start is a process start.
/// </summary>
internal static class SandboxBench
{
    private const int Creates = 10;
    private const int Execs = 50;
    private const int ExecWarmups = 5;
    private const int ApiCalls = 20;
    private const int ApiWarmups = 5;
    private const int Misses = 8;
    private const int PoolReplicas = 2;
    private const int AgentPort = 8443;
    private const int TlsRounds = 3;
    private const string User = "alice";
    private const string Image = "python:3.12-slim";
    private const string RuntimeClass = "runsc";
    private const string Pool = "py";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    // The gateway keeps a review 10 s: rotating through the other three test users this far apart makes every first call a miss.
    private static readonly TimeSpan MissSpacing = TimeSpan.FromSeconds(3.6);
    private static readonly TimeSpan LaterBy = TimeSpan.FromSeconds(1.1);
    private static readonly string[] MissUsers = [.. ControlPlane.TestUsers.Where(u => u != User)];
    private static readonly string[] True = ["true"];
    private static readonly string[] EchoHi = ["/bin/sh", "-c", "echo hi"];

    // One shape for the pool and every Sandbox, so a Sandbox in the pool's namespace can claim.
    private static readonly ComputeResources Resources = new() { Cpu = new ResourceQuantity("500m"), Memory = new ResourceQuantity("512Mi") };

    private sealed record CreateSample(double ReadyMs, string Pod, bool Claimed);

    private sealed record ExecSeries(double[] Direct, double[] Gateway);

    private sealed record MissSample(double Miss, double Hit, double Later);

    private sealed record TlsRound(double[] Plain, double[] Tls);

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        // Sandboxes made before the mTLS comparison get plain agents (no CA, as without --sandbox-agent-secret); those made
        // after it get the CA, as the chart runs them.
        string? agentCa = null;
        await using var stack = await BenchStack.StartAsync("sandbox", "bench-cpu", GpuNodePreset.CpuOnly, o => o with
        {
            Sandboxes = new SandboxOptions { AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = RuntimeClass, AgentClientCa = () => agentCa },
        });
        var (plane, client, gatewayUrl) = (stack.Plane, stack.Client, stack.GatewayUrl);
        var kubectl = new Kubectl(plane.KubeconfigPath);
        (await kubectl.RunAsync(["apply", "-f", Path.Combine(RepositoryRoot.Path, "samples", "rbac", "sandbox-user.yaml")])).EnsureSuccess();
        // The RuntimeClasses sandboxes may use (a real node would have gVisor and Kata installed).
        foreach (var (runtime, handler) in new[] { ("runsc", "runsc"), ("kata", "kata-qemu") })
        {
            await client.NodeV1.CreateRuntimeClassAsync(new V1RuntimeClass { Metadata = new V1ObjectMeta { Name = runtime }, Handler = handler });
        }

        var coldNs = await plane.CreateNamespaceAsync("bench-sbx-cold");
        var warmNs = await plane.CreateNamespaceAsync("bench-sbx-warm");
        await GrantAsync(client, warmNs, User);
        foreach (var user in ControlPlane.TestUsers)
        {
            await GrantAsync(client, coldNs, user);
        }

        // The bench's own watches: when each Sandbox is first seen Ready, and the pods (for the waits between samples).
        var readySeen = new ConcurrentDictionary<string, TaskCompletionSource<(long At, Sandbox Sandbox)>>();
        var sandboxes = new Informer<Sandbox>(ListWatch.ForCustomResource<Sandbox>(client));
        sandboxes.AddHandler(e =>
        {
            if (e.Type != WatchEventType.Deleted && IsReady(e.Object)
                && readySeen.TryGetValue($"{e.Object.Metadata.NamespaceProperty}/{e.Object.Metadata.Name}", out var seen))
            {
                seen.TrySetResult((Stopwatch.GetTimestamp(), e.Object));
            }
        });
        var pods = new Informer<V1Pod>(ListWatch.ForPods(client));
        var watches = Task.WhenAll(sandboxes.RunAsync(stack.Stopping), pods.RunAsync(stack.Stopping));
        await Task.WhenAll(sandboxes.Synced, pods.Synced);

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromMinutes(1) };
        var token = plane.UserToken(User);

        // Create -> Ready, baseline: no pool in this namespace, so every Sandbox gets a new pod. After Ready and one direct
        // exec (which warms the new agent), the first gateway exec on each new sandbox misses the gateway's review cache;
        // the one right after hits it.
        var cold = new List<CreateSample>();
        var firstExec = new List<(double Miss, double Hit)>();
        var conflicts = 0;
        for (var i = -1; i < Creates; i++)
        {
            await Task.Delay(250);
            var name = i < 0 ? "cold-warmup" : $"cold-{i}";
            var sample = await CreateReadyAsync(client, readySeen, pods, coldNs, name, pool: null);
            var ip = await PodIpAsync(pods, coldNs, sample.Pod);
            await ExecAsync(http, $"http://{ip}:{AgentPort}/exec", null, True, "");
            var gatewayExec = $"{gatewayUrl}/_sandbox/{coldNs}/{name}/exec";
            var (miss, status) = await ExecAsync(http, gatewayExec, token, True, "");
            if (status == HttpStatusCode.Conflict)
            {
                // The gateway's cache had not seen the sandbox Ready yet; the retry is authorised from its review cache.
                conflicts += i >= 0 ? 1 : 0;
                await RetryConflictAsync(http, gatewayExec, token);
            }

            var hit = Ok(await ExecAsync(http, gatewayExec, token, True, ""), gatewayExec);
            if (i >= 0)
            {
                cold.Add(sample);
                if (status == HttpStatusCode.OK)
                {
                    firstExec.Add((miss, hit));
                }
            }

            Console.Error.WriteLine($"bench: sandbox: cold {name}: Ready after {sample.ReadyMs:F0} ms; first gateway exec {miss:F1} ms ({(int)status}), second {hit:F1} ms");
            await DeleteAsync(client, sandboxes, pods, coldNs, name, sample.Pod);
        }

        // Exec round trips on one sandbox, direct to its agent and through the gateway, interleaved.
        Console.Error.WriteLine("bench: sandbox: exec round trips");
        var execSample = await CreateReadyAsync(client, readySeen, pods, coldNs, "exec", pool: null);
        var agentExec = $"http://{await PodIpAsync(pods, coldNs, execSample.Pod)}:{AgentPort}/exec";
        var viaGateway = $"{gatewayUrl}/_sandbox/{coldNs}/exec/exec";
        Ok(await RetryConflictAsync(http, viaGateway, token), viaGateway);
        var (execTrue, execEcho) = await ExecLoopAsync(http, agentExec, viaGateway, token);

        // Review-cache misses on the same warm sandbox and connections: each call the first of its user for over 10 s, then
        // one right after it from the cache, then one more from the cache a second later (activity goes to the gateway's
        // signal board in memory, no longer as an annotation patch, so this one should cost what a hit does).
        var missed = new List<MissSample>();
        for (var i = 0; i < Misses; i++)
        {
            await Task.Delay(MissSpacing);
            var userToken = plane.UserToken(MissUsers[i % MissUsers.Length]);
            var miss = Ok(await ExecAsync(http, viaGateway, userToken, True, ""), viaGateway);
            var hit = Ok(await ExecAsync(http, viaGateway, userToken, True, ""), viaGateway);
            await Task.Delay(LaterBy);
            missed.Add(new MissSample(miss, hit, Ok(await ExecAsync(http, viaGateway, userToken, True, ""), viaGateway)));
        }

        // mTLS to the agent side by side with plain HTTP: the same exec through a gateway speaking plain HTTP to a plain agent
        // (the path before) and through one showing its client certificate to an agent that checks it and the pod's UID.
        Console.Error.WriteLine("bench: sandbox: mTLS side by side");
        var certificates = new Pilotlight.Operator.Admission.WebhookCertificates(client, new Pilotlight.Operator.Admission.WebhookCertificateOptions
        {
            Secret = new ObjectKey("default", "bench-sandbox-agent-tls"), Hosts = ["pilotlight-gateway"], CaName = "pilotlight-sandbox-agent-ca",
            ClientAuthentication = true,
        });
        await certificates.EnsureAsync(CancellationToken.None);
        agentCa = certificates.CaPem;
        await CreateReadyAsync(client, readySeen, pods, coldNs, "exec-tls", pool: null);
        var tlsGatewayUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        var tlsGateway = Pilotlight.Gateway.GatewayApp.Build(client, tlsGatewayUrl, new Pilotlight.Gateway.GatewayOptions
        {
            AgentClientCertificate = () => certificates.Current,
        }, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
        await tlsGateway.StartAsync();
        for (var tries = 0; (await http.GetAsync($"{tlsGatewayUrl}/readyz")).StatusCode != HttpStatusCode.OK; tries++)
        {
            if (tries > 600)
            {
                throw new TimeoutException("the mTLS gateway's caches did not sync");
            }

            await Task.Delay(100);
        }

        var viaTls = $"{tlsGatewayUrl}/_sandbox/{coldNs}/exec-tls/exec";
        Ok(await RetryConflictAsync(http, viaTls, token), viaTls);
        // The mTLS agent is a new process while the plain one has served every call above: warm both alike first (JIT, pools).
        await TlsRoundAsync(http, viaGateway, viaTls, token);
        var tlsRounds = new List<TlsRound>();
        for (var round = 0; round < TlsRounds; round++)
        {
            tlsRounds.Add(await TlsRoundAsync(http, viaGateway, viaTls, token));
        }

        await tlsGateway.StopAsync();
        await tlsGateway.DisposeAsync();

        // What a miss is made of: the gateway's TokenReview and SubjectAccessReview, issued from here.
        var reviews = await TimeAsync(() => ReviewAsync(client, token, coldNs, "exec"));

        // Create -> Ready with a warm pool of the same shape; the pool refills between samples, so each create can claim.
        Console.Error.WriteLine("bench: sandbox: warm pool");
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(new SandboxWarmPool
        {
            Metadata = new V1ObjectMeta { Name = Pool },
            Spec = new SandboxWarmPoolSpec { Image = Image, Resources = Resources, RuntimeClassName = RuntimeClass, Replicas = PoolReplicas },
        }, Group.Name, Group.Version, warmNs, "sandboxwarmpools");
        var warm = new List<CreateSample>();
        for (var i = -1; i < Creates; i++)
        {
            await WaitAsync(() => PoolFull(pods, warmNs), "the warm pool is full");
            await Task.Delay(250);
            var name = i < 0 ? "warm-warmup" : $"warm-{i}";
            var sample = await CreateReadyAsync(client, readySeen, pods, warmNs, name, pool: Pool);
            if (i >= 0)
            {
                warm.Add(sample);
            }

            Console.Error.WriteLine($"bench: sandbox: warm {name}: Ready after {sample.ReadyMs:F0} ms on {sample.Pod} ({(sample.Claimed ? "claimed" : "NOT claimed")})");
            await DeleteAsync(client, sandboxes, pods, warmNs, name, sample.Pod);
        }

        await stack.StopAsync();
        await watches;

        var report = Render(cold, warm, execTrue, execEcho, firstExec, conflicts, missed, reviews) + RenderTls(tlsRounds);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "sandbox.md"), report);
        Console.WriteLine(report);
        return 0;
    }

    private static async Task GrantAsync(IKubernetes client, string ns, string user) =>
        await client.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { GenerateName = "sandbox-user-" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-sandbox-user" },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);

    private static bool IsReady(Sandbox s) => s.Status?.Conditions?.Any(c => c.Type == SandboxConditions.Ready && c.Status == "True") == true;

    /// <summary>
    /// Creates a Sandbox and times the create call to its Ready condition seen True on the bench's watch. With a
    /// <paramref name="pool"/>, whether its pod is one of the pool's ready pods of just before the create.
    /// </summary>
    private static async Task<CreateSample> CreateReadyAsync(IKubernetes client, ConcurrentDictionary<string, TaskCompletionSource<(long, Sandbox)>> readySeen,
        Informer<V1Pod> pods, string ns, string name, string? pool)
    {
        var poolPods = pool is null ? [] : pods.List(ns)
            .Where(p => p.Metadata.Labels?.TryGetValue(SandboxPods.PoolLabel, out var owner) == true && owner == pool && PodReadiness.IsReady(p))
            .Select(p => p.Metadata.Name).ToHashSet();
        var seen = readySeen[$"{ns}/{name}"] = new TaskCompletionSource<(long, Sandbox)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var sandbox = new Sandbox
        {
            Metadata = new V1ObjectMeta { Name = name },
            Spec = new SandboxSpec { Image = Image, Resources = Resources, RuntimeClassName = RuntimeClass, Timeout = "10m" },
        };

        var start = Stopwatch.GetTimestamp();
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(sandbox, Group.Name, Group.Version, ns, "sandboxes");
        var (at, ready) = await seen.Task.WaitAsync(Patience);
        var pod = ready.Status?.PodName ?? throw new InvalidOperationException($"sandbox {ns}/{name} is Ready without a pod");
        return new CreateSample(Stopwatch.GetElapsedTime(start, at).TotalMilliseconds, pod, poolPods.Contains(pod));
    }

    /// <summary>Deletes a Sandbox and waits for it and its pod (processes stopped) to be gone.</summary>
    private static async Task DeleteAsync(IKubernetes client, Informer<Sandbox> sandboxes, Informer<V1Pod> pods, string ns, string name, string pod)
    {
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group.Name, Group.Version, ns, "sandboxes", name);
        await WaitAsync(() => sandboxes.Get(new ObjectKey(ns, name)) is null && pods.Get(new ObjectKey(ns, pod)) is null, $"sandbox {ns}/{name} and pod {pod} are gone");
    }

    private static bool PoolFull(Informer<V1Pod> pods, string ns)
    {
        var members = pods.List(ns).Where(p => p.Metadata.Labels?.TryGetValue(SandboxPods.PoolLabel, out var owner) == true && owner == Pool).ToList();
        return members.Count == PoolReplicas && members.All(p => p.Metadata.DeletionTimestamp is null && PodReadiness.IsReady(p));
    }

    private static async Task<string> PodIpAsync(Informer<V1Pod> pods, string ns, string pod)
    {
        await WaitAsync(() => pods.Get(new ObjectKey(ns, pod))?.Status?.PodIP is { Length: > 0 }, $"pod {ns}/{pod} has an IP");
        return pods.Get(new ObjectKey(ns, pod))!.Status.PodIP;
    }

    private static async Task WaitAsync(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > Patience)
            {
                throw new TimeoutException($"never: {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>
    /// One exec, timed from sending the request to reading the final NDJSON line (the exit); checks the exit code and
    /// stdout. 409 (not ready in the gateway's cache yet) is returned, not thrown.
    /// </summary>
    private static async Task<(double Ms, HttpStatusCode Status)> ExecAsync(HttpClient http, string url, string? token, string[] argv, string stdout)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new StringContent(JsonSerializer.Serialize(new { argv }), Encoding.UTF8, "application/json"),
        };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        var start = Stopwatch.GetTimestamp();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode == HttpStatusCode.Conflict)
        {
            return (Stopwatch.GetElapsedTime(start).TotalMilliseconds, response.StatusCode);
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"exec at {url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var output = new StringBuilder();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.TryGetProperty("stream", out var stream))
            {
                if (stream.GetString() == "stdout")
                {
                    output.Append(Encoding.UTF8.GetString(Convert.FromBase64String(root.GetProperty("data").GetString()!)));
                }
            }
            else if (root.TryGetProperty("exit", out var exit))
            {
                var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (exit.ValueKind != JsonValueKind.Number || exit.GetInt32() != 0 || root.GetProperty("timedOut").GetBoolean() || output.ToString() != stdout)
                {
                    throw new InvalidOperationException($"exec {string.Join(' ', argv)} at {url}: {line}, stdout '{output}'");
                }

                return (ms, HttpStatusCode.OK);
            }
        }

        throw new InvalidOperationException($"exec at {url}: the stream ended without an exit line");
    }

    private static double Ok((double Ms, HttpStatusCode Status) result, string url) =>
        result.Status == HttpStatusCode.OK ? result.Ms : throw new InvalidOperationException($"exec at {url}: {(int)result.Status}");

    private static async Task<(double Ms, HttpStatusCode Status)> RetryConflictAsync(HttpClient http, string url, string token)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var result = await ExecAsync(http, url, token, True, "");
            if (result.Status != HttpStatusCode.Conflict || deadline.Elapsed > Patience)
            {
                return result;
            }

            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Sequential execs of <c>true</c> and of <c>sh -c "echo hi"</c>, direct to the agent and through the gateway,
    /// interleaved so drift on a noisy machine hits both alike; the first <see cref="ExecWarmups"/> of each are not kept.
    /// </summary>
    private static async Task<(ExecSeries True, ExecSeries Echo)> ExecLoopAsync(HttpClient http, string agent, string gateway, string token)
    {
        var (directTrue, gatewayTrue, directEcho, gatewayEcho) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
        for (var i = 0; i < ExecWarmups + Execs; i++)
        {
            var keep = i >= ExecWarmups;
            foreach (var (url, auth, argv, stdout, into) in new[]
            {
                (agent, (string?)null, True, "", directTrue), (gateway, token, True, "", gatewayTrue),
                (agent, null, EchoHi, "hi\n", directEcho), (gateway, token, EchoHi, "hi\n", gatewayEcho),
            })
            {
                var ms = Ok(await ExecAsync(http, url, auth, argv, stdout), url);
                if (keep)
                {
                    into.Add(ms);
                }
            }
        }

        return (new ExecSeries([.. directTrue.Order()], [.. gatewayTrue.Order()]), new ExecSeries([.. directEcho.Order()], [.. gatewayEcho.Order()]));
    }

    /// <summary>
    /// One round of <see cref="Execs"/> execs of <c>true</c> through each gateway (after <see cref="ExecWarmups"/> of each not
    /// kept), interleaved call by call over kept-alive connections; sorted.
    /// </summary>
    private static async Task<TlsRound> TlsRoundAsync(HttpClient http, string plain, string tls, string token)
    {
        var (plainMs, tlsMs) = (new List<double>(), new List<double>());
        for (var i = 0; i < ExecWarmups + Execs; i++)
        {
            var (p, t) = (Ok(await ExecAsync(http, plain, token, True, ""), plain), Ok(await ExecAsync(http, tls, token, True, ""), tls));
            if (i >= ExecWarmups)
            {
                plainMs.Add(p);
                tlsMs.Add(t);
            }
        }

        return new TlsRound([.. plainMs.Order()], [.. tlsMs.Order()]);
    }

    private static string RenderTls(List<TlsRound> rounds)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine("## mTLS between the gateway and the agent");
        sb.AppendLine();
        sb.AppendLine(inv, $"The same `[\"true\"]` exec through two gateways in the bench process, interleaved call by call, {TlsRounds} rounds of {Execs} each after");
        sb.AppendLine(inv, $"{ExecWarmups} warm-ups (and one unrecorded round first: the mTLS agent is a newer process than the plain one): plain HTTP to an agent without a CA (the path before; the baseline), and TLS with the gateway's client");
        sb.AppendLine("certificate to an agent that checks it against the operator's CA and compares the pod namespace and UID the gateway sends with its");
        sb.AppendLine("own. Both reuse their connections, so the handshake is paid once per connection, not per exec.");
        sb.AppendLine();
        sb.AppendLine("| round | plain p50 | mTLS p50 | mTLS − plain p50 | ratio | plain p95 | mTLS p95 |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        var deltas = new List<double>();
        for (var i = 0; i < rounds.Count; i++)
        {
            var (p, t) = (rounds[i].Plain, rounds[i].Tls);
            var delta = Percentile(t, 0.5) - Percentile(p, 0.5);
            deltas.Add(delta);
            sb.AppendLine(inv, $"| {i + 1} | {Percentile(p, 0.5):F2} ms | {Percentile(t, 0.5):F2} ms | {delta:+0.00;-0.00} ms | {Percentile(t, 0.5) / Percentile(p, 0.5):F2}x | {Percentile(p, 0.95):F2} ms | {Percentile(t, 0.95):F2} ms |");
        }

        sb.AppendLine();
        sb.AppendLine(inv, $"mTLS adds {deltas.Min():+0.00;-0.00} to {deltas.Max():+0.00;-0.00} ms at p50 over the {rounds.Count} rounds (the spread is the machine's noise as much as TLS).");
        return sb.ToString();
    }

    /// <summary>The two reviews the gateway asks the API server on a cache miss.</summary>
    private static async Task ReviewAsync(IKubernetes client, string token, string ns, string name)
    {
        var review = await client.AuthenticationV1.CreateTokenReviewAsync(new V1TokenReview { Spec = new V1TokenReviewSpec { Token = token } });
        var user = review.Status?.User ?? throw new InvalidOperationException("the token was not accepted");
        var access = await client.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
        {
            Spec = new V1SubjectAccessReviewSpec
            {
                User = user.Username,
                Groups = user.Groups,
                Uid = user.Uid,
                ResourceAttributes = new V1ResourceAttributes
                {
                    Group = Group.Name, Resource = "sandboxes", Subresource = "exec", Verb = "create", NamespaceProperty = ns, Name = name,
                },
            },
        });
        if (access.Status?.Allowed != true)
        {
            throw new InvalidOperationException($"{user.Username} may not exec in {ns}/{name}");
        }
    }

    /// <summary>Times <see cref="ApiCalls"/> sequential calls after <see cref="ApiWarmups"/> not kept; sorted.</summary>
    private static async Task<double[]> TimeAsync(Func<Task> call)
    {
        var samples = new List<double>();
        for (var i = 0; i < ApiWarmups + ApiCalls; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call();
            if (i >= ApiWarmups)
            {
                samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }

        return [.. samples.Order()];
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static double Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static string Render(List<CreateSample> cold, List<CreateSample> warm, ExecSeries execTrue, ExecSeries execEcho,
        List<(double Miss, double Hit)> firstExec, int conflicts, List<MissSample> missed, double[] reviews)
    {
        var inv = CultureInfo.InvariantCulture;
        string Each(IEnumerable<double> v) => string.Join(", ", v.Select(x => x.ToString("F0", inv)));
        double[] Sorted(IEnumerable<double> v) => [.. v.Order()];
        string Row(string what, IEnumerable<double> values)
        {
            var v = Sorted(values);
            return string.Create(inv, $"| {what} | {v.Length} | {Percentile(v, 0.5):F2} ms | {Percentile(v, 0.95):F2} ms | {v[0]:F2} ms | {v[^1]:F2} ms |");
        }

        var coldMs = Sorted(cold.Select(c => c.ReadyMs));
        var warmMs = Sorted(warm.Select(w => w.ReadyMs));
        var claimed = warm.Count(w => w.Claimed);

        var sb = new StringBuilder();
        sb.AppendLine("# Sandboxes: create to Ready, cold and from a warm pool; exec through the gateway");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores (shared with other builds and tests, so noisy) in one run: real");
        sb.AppendLine("kube-apiserver v1.20.2, scheduler and controller manager, one simulated CPU node, the operator and the gateway in the bench process.");
        sb.AppendLine("The simulated node runs each sandbox pod's agent (the runtime shim in sandbox mode) as a local `dotnet` process on a loopback IP,");
        sb.AppendLine("so a pod start here is a process start and its JIT, not a container runtime pulling and starting an image under gVisor or Kata;");
        sb.AppendLine("`runtimeClassName: runsc` is only recorded. Every Sandbox and the pool have one shape: image `" + Image + "`, 500m CPU, 512Mi,");
        sb.AppendLine("runtime class `" + RuntimeClass + "`. Percentiles are nearest-rank: p95 of 10 samples and p99 of 50 are the largest.");
        sb.AppendLine();
        sb.AppendLine("## Create to Ready");
        sb.AppendLine();
        sb.AppendLine(inv, $"From the create call to the Sandbox's `Ready` condition seen `True` on the bench's watch; {Creates} Sandboxes one after another, each");
        sb.AppendLine("deleted (and its pod gone) before the next, after one unrecorded warm-up create. Cold (baseline): a namespace without a pool, so each");
        sb.AppendLine(inv, $"Sandbox gets a new pod. Warm: a `SandboxWarmPool` of {PoolReplicas} replicas of the same shape in the Sandboxes' namespace, full and");
        sb.AppendLine("ready before each create; a sample counts as claimed when `status.podName` is one of the pool's ready pods of just before the create.");
        sb.AppendLine();
        sb.AppendLine("| | p50 | p95 | min | max | each |");
        sb.AppendLine("|---|---:|---:|---:|---:|---|");
        sb.AppendLine(inv, $"| cold: new pod (baseline) | {Percentile(coldMs, 0.5):F0} ms | {Percentile(coldMs, 0.95):F0} ms | {coldMs[0]:F0} ms | {coldMs[^1]:F0} ms | {Each(cold.Select(c => c.ReadyMs))} |");
        sb.AppendLine(inv, $"| warm: claimed pool pod | {Percentile(warmMs, 0.5):F0} ms | {Percentile(warmMs, 0.95):F0} ms | {warmMs[0]:F0} ms | {warmMs[^1]:F0} ms | {Each(warm.Select(w => w.ReadyMs))} |");
        sb.AppendLine(inv, $"| ratio cold / warm | {Percentile(coldMs, 0.5) / Percentile(warmMs, 0.5):F1}x | {Percentile(coldMs, 0.95) / Percentile(warmMs, 0.95):F1}x | | | |");
        sb.AppendLine();
        sb.AppendLine(inv, $"Warm samples that claimed a pool pod: {claimed} of {warm.Count}.");
        sb.AppendLine();
        sb.AppendLine("Cold: the operator creates the pod, the scheduler binds it, the simulated kubelet starts the agent process and reports the pod");
        sb.AppendLine("Ready once the agent's /ready answers (polled every 10 ms), and the operator writes the Sandbox Ready. Warm: the operator relabels");
        sb.AppendLine("and re-owns a ready pool pod (one patch) and writes the Sandbox Ready; no pod starts on that path, the pool refills afterwards.");
        sb.AppendLine();
        sb.AppendLine("## Exec round trip");
        sb.AppendLine();
        sb.AppendLine(inv, $"One Ready sandbox; {Execs} sequential execs of each kind after {ExecWarmups} warm-up calls, timed from sending the request to reading");
        sb.AppendLine("the final NDJSON line (`{\"exit\":0,...}`), with exit code and stdout checked. Baseline: the same POST straight to the agent");
        sb.AppendLine(inv, $"(`http://{{status.podIP}}:{AgentPort}/exec`, no token). Via the gateway: `POST /_sandbox/{{ns}}/{{name}}/exec` with user {User}'s bearer");
        sb.AppendLine("token, granted by the `pilotlight-sandbox-user` ClusterRole. The four kinds are interleaved call by call, over kept-alive connections.");
        sb.AppendLine();
        sb.AppendLine("| argv | path | p50 | p95 | p99 | min | max |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var (argv, series) in new[] { ("`[\"true\"]`", execTrue), ("`[\"/bin/sh\", \"-c\", \"echo hi\"]`", execEcho) })
        {
            foreach (var (path, s) in new[] { ("direct to the agent (baseline)", series.Direct), ("via the gateway", series.Gateway) })
            {
                sb.AppendLine(inv, $"| {argv} | {path} | {Percentile(s, 0.5):F2} ms | {Percentile(s, 0.95):F2} ms | {Percentile(s, 0.99):F2} ms | {s[0]:F2} ms | {s[^1]:F2} ms |");
            }
        }

        sb.AppendLine();
        sb.AppendLine("| gateway over direct | p50 added | p50 ratio | p95 added | p99 added |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var (argv, s) in new[] { ("`true`", execTrue), ("`sh -c \"echo hi\"`", execEcho) })
        {
            sb.AppendLine(inv, $"| {argv} | {Percentile(s.Gateway, 0.5) - Percentile(s.Direct, 0.5):+0.00;-0.00} ms | {Percentile(s.Gateway, 0.5) / Percentile(s.Direct, 0.5):F2}x | {Percentile(s.Gateway, 0.95) - Percentile(s.Direct, 0.95):+0.00;-0.00} ms | {Percentile(s.Gateway, 0.99) - Percentile(s.Direct, 0.99):+0.00;-0.00} ms |");
        }

        sb.AppendLine();
        sb.AppendLine("Differences of a millisecond or two are within this machine's noise; the tails on both paths are mostly other load on the cores.");
        sb.AppendLine();
        sb.AppendLine("The gateway keeps each (token, sandbox, verb) review for 10 s, so in the loop above all but at most a call or two are authorised");
        sb.AppendLine("from its cache: what it adds there is the cache lookup and the proxy hop (activity is noted in the gateway's memory for the");
        sb.AppendLine("operator to read, with no API write). What a review-cache miss adds, all `[\"true\"]` via the gateway:");
        sb.AppendLine();
        sb.AppendLine("| | n | p50 | p95 | min | max |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        sb.AppendLine(Row("miss: first call of a user on the warm sandbox for over 10 s (TokenReview + SubjectAccessReview)", missed.Select(m => m.Miss)));
        sb.AppendLine(Row("hit: the same user's next call, right after (no review)", missed.Select(m => m.Hit)));
        sb.AppendLine(Row(string.Create(inv, $"later hit: the same user again {LaterBy.TotalSeconds:F1} s later (no review)"), missed.Select(m => m.Later)));
        sb.AppendLine(Row("first call on a just-Ready cold sandbox (the miss, plus the gateway's first connection to a just-started agent)", firstExec.Select(f => f.Miss)));
        sb.AppendLine(Row("hit: the call right after it", firstExec.Select(f => f.Hit)));
        sb.AppendLine(Row("TokenReview + SubjectAccessReview as the gateway asks them, issued from the bench", reviews));
        sb.AppendLine();
        sb.AppendLine(inv, $"Misses: the three other test users, each granted the same role, in turn every {MissSpacing.TotalSeconds:F1} s after the loop. First calls: on each");
        sb.AppendLine(inv, $"of the {Creates} cold sandboxes above once it was Ready, after one direct exec had warmed its agent{(conflicts == 0 ? "" : $" ({conflicts} left out: the gateway's cache had not yet seen the sandbox Ready and answered 409)")}.");
        sb.AppendLine("The last row is the bench's own round trip to the API server for the same reviews, without the gateway.");
        var (miss, hit, later) = (Sorted(missed.Select(m => m.Miss)), Sorted(missed.Select(m => m.Hit)), Sorted(missed.Select(m => m.Later)));
        sb.AppendLine(inv, $"On the warm sandbox a miss adds {Percentile(miss, 0.5) - Percentile(hit, 0.5):F2} ms at p50 over a hit ({Percentile(miss, 0.5) / Percentile(hit, 0.5):F2}x),");
        sb.AppendLine(inv, $"all of it the reviews; a later hit costs {Percentile(later, 0.5) - Percentile(hit, 0.5):F2} ms more than a hit at p50 (no activity patch any more).");
        return sb.ToString();
    }
}
