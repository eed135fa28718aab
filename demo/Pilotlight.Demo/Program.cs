using System.Diagnostics;
using System.Globalization;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator;
using Pilotlight.Operator.Scaling;
using Pilotlight.Operator.Usage;
using Pilotlight.Testing;

// make demo: the main job end to end on this machine. A real control plane
// (etcd, kube-apiserver, controller-manager, scheduler), simulated GPU nodes
// whose function pods run the real runtime shim and a stand-in model server on
// loopback IPs, the operator with its autoscaler, and the gateway. One
// GpuFunction is invoked cold and warm, then left to scale to zero.
var clock = Stopwatch.StartNew();
void Say(string text) => Console.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1}s] {text}");

var processes = FunctionProcessOptions.FromRepository(Path.Combine(Path.GetTempPath(), "pilotlight-demo-pods"));
foreach (var dll in new[] { processes.ShimDll, processes.ModelServerDll })
{
    if (!File.Exists(dll))
    {
        Console.Error.WriteLine($"demo: {dll} is missing; run `make demo` (it builds the shim and the sample server first)");
        return 2;
    }
}

Say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)");
await using var plane = await ControlPlane.StartAsync();
await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
using var client = plane.CreateClient();
var ns = await plane.CreateNamespaceAsync("demo");

await using var sim = new NodeSimulator(client, new NodeSimulatorOptions { Processes = processes });
await sim.StartAsync();
await sim.AddNodeAsync("gpu-l4-0", GpuNodePreset.L4);
await sim.AddNodeAsync("gpu-h100-0", GpuNodePreset.H100);
Say("simulated nodes: gpu-l4-0 (4 x L4), gpu-h100-0 (8 x H100)");

var gatewayPort = ControlPlane.FreePort();
var gatewayUrl = $"http://127.0.0.1:{gatewayPort}";
await using var gateway = GatewayApp.Build(client, gatewayUrl, logging: _ => { });
await gateway.StartAsync();

using var stop = new CancellationTokenSource();
var settings = new AutoscalerSettings { StableWindow = TimeSpan.FromSeconds(20), PanicWindow = TimeSpan.FromSeconds(4), Tick = TimeSpan.FromSeconds(1) };
var journal = new UsageJournal();
var operatorHost = PilotlightOperator.Create(client, new OperatorOptions
{
    UsageJournal = journal,
    Gateways = [new Uri(gatewayUrl)],
    Autoscaler = settings,
    EndpointBase = gatewayUrl,
}, new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()));
var operatorRun = operatorHost.RunAsync(stop.Token);
Say($"operator and gateway running (gateway {gatewayUrl}; autoscaler stable window {settings.StableWindow.TotalSeconds}s for the demo)");

var kubectl = new Kubectl(plane.KubeconfigPath);
(await kubectl.RunAsync(["apply", "-n", ns, "-f", Path.Combine(RepositoryRoot.Path, "samples", "demo", "echo-l4.yaml")])).EnsureSuccess();
Say($"applied samples/demo/echo-l4.yaml in namespace {ns}");

async Task<GpuFunction> GetAsync() =>
    await client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, ns, "gpufunctions", "echo");

while ((await GetAsync()).Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") != true)
{
    await Task.Delay(200);
}

var fn = await GetAsync();
Say($"echo is Ready ({fn.Status!.Conditions!.First(c => c.Type == "Ready").Reason}), replicas {fn.Status.Replicas}, endpoint {fn.Status.Endpoint}");

// Functions are private: a caller needs a token for the gateway's audience from someone RBAC lets invoke them.
using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(3) };
var url = $"{gatewayUrl}/{ns}/echo/predict";
using (var stranger = await http.PostAsync(url, new StringContent("who am I?")))
{
    Say($"without a token: {(int)stranger.StatusCode} ({(await stranger.Content.ReadAsStringAsync()).Trim()})");
}

await client.RbacAuthorizationV1.CreateClusterRoleAsync(new V1ClusterRole
{
    // The chart's "<release>-invoker" role.
    Metadata = new V1ObjectMeta { Name = "pilotlight-invoker" },
    Rules = [new V1PolicyRule { ApiGroups = [Group.Name], Resources = ["gpufunctions/invoke"], Verbs = ["create"] }],
});
await client.CoreV1.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = "caller" } }, ns);
await client.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
{
    Metadata = new V1ObjectMeta { Name = "caller-invokes" },
    RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-invoker" },
    Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = "caller", NamespaceProperty = ns }],
}, ns);
var token = await client.CoreV1.CreateNamespacedServiceAccountTokenAsync(new Authenticationv1TokenRequest
{
    Spec = new V1TokenRequestSpec { Audiences = [new InvocationAccessOptions().Audience], ExpirationSeconds = 3600 },
}, "caller", ns);
http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token.Status.Token);
Say($"invoking as ServiceAccount {ns}/caller (bound to pilotlight-invoker; token audience {new InvocationAccessOptions().Audience}, as `kubectl create token caller --audience pilotlight` gives)");
var cold = Stopwatch.StartNew();
using (var response = await http.PostAsync(url, new StringContent("hello, cold")))
{
    Say($"cold invocation: {(int)response.StatusCode} in {cold.Elapsed.TotalSeconds:F2}s, X-Pilotlight-Cold-Start: {string.Join(",", response.Headers.GetValues("X-Pilotlight-Cold-Start"))}");
    Say($"  body: {(await response.Content.ReadAsStringAsync()).Trim()}");
}

var warm = new List<double>();
for (var i = 0; i < 20; i++)
{
    var sw = Stopwatch.StartNew();
    using var response = await http.PostAsync(url, new StringContent($"warm {i}"));
    response.EnsureSuccessStatusCode();
    warm.Add(sw.Elapsed.TotalMilliseconds);
}

warm.Sort();
Say($"20 warm invocations: p50 {warm[10]:F0} ms, max {warm[^1]:F0} ms (the model server computes 40 ms per request)");

Say("idle now; watching replicas until the function is back at zero");
var last = -1;
var idleSince = Stopwatch.StartNew();
while (idleSince.Elapsed < TimeSpan.FromMinutes(3))
{
    var now = await GetAsync();
    var replicas = now.Status?.Replicas ?? 0;
    if (replicas != last)
    {
        Say($"  replicas {replicas} (desired {now.Status?.DesiredReplicas}, ready {now.Status?.ReadyReplicas}, last request {now.Status?.LastRequestTime?.ToString("HH:mm:ss", CultureInfo.InvariantCulture)})");
        last = replicas;
    }

    if (replicas == 0 && now.Status?.DesiredReplicas == 0)
    {
        break;
    }

    await Task.Delay(500);
}

Say($"scaled to zero {idleSince.Elapsed.TotalSeconds:F0}s after the last request (scaledownWindow 20s)");
var billed = (await GetAsync()).Status?.Usage;
Say($"usage: {billed?.GpuSeconds:F1} GPU-seconds billed to {ns}/echo (the operator's ledger: 1 L4 from each pod's start to its deletion)");
var window = await new UsageApi(client, journal, TimeProvider.System).QueryAsync(ns, "echo",
    DateTime.UtcNow.AddSeconds(-clock.Elapsed.TotalSeconds).ToString("o"), DateTime.UtcNow.ToString("o"), CancellationToken.None);
if (window.Report is { } report)
{
    var busy = report.Seconds.Where(p => p.GpuSeconds > 0).ToList();
    Say($"usage over the demo at 1 s resolution (GET /usage): {report.GpuSeconds:F1} GPU-seconds, {busy.Count} seconds with a GPU held, " +
        $"from {busy.FirstOrDefault()?.At:HH:mm:ss} to {busy.LastOrDefault()?.At:HH:mm:ss}");
}

var table = await kubectl.RunAsync(["get", "gfn", "-n", ns, "-o", "wide"]);
Console.WriteLine(table.StandardOutput.TrimEnd());

await stop.CancelAsync();
await operatorRun;
await gateway.StopAsync();
Say("done");
return 0;
