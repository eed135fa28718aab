using System.Net.Sockets;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using k8s;
using k8s.Models;
using Grpc.Core;
using Pilotlight.DevicePluginSim;
using Pilotlight.DevicePluginSim.V1Beta1;

// Simulated GPUs for a real kubelet (test support; tests/real-node/README.md):
//   Pilotlight.DevicePluginSim --plugin-dir <kubelet root>/device-plugins --node NAME --kubeconfig PATH
//                              [--count 2] [--product NVIDIA-L4] [--memory-mib 23034]
// Registers nvidia.com/gpu with the kubelet, serves the device-plugin API on a socket in the
// plugin directory, and labels the node as GPU Feature Discovery would. When the kubelet
// restarts it deletes the plugin's socket; the plugin then serves and registers again.
var options = SimOptions.Parse(args);
if (options.Error is { } error)
{
    await Console.Error.WriteLineAsync($"Pilotlight.DevicePluginSim: {error}");
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();

await LabelNodeAsync(options, stop.Token);
using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }));
var log = loggers.CreateLogger("Pilotlight.DevicePluginSim");
var socket = Path.Combine(options.PluginDirectory, "pilotlight-sim-gpu.sock");
while (!stop.IsCancellationRequested)
{
    File.Delete(socket);
    using var serving = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
    var server = new Server
    {
        Services = { DevicePlugin.BindService(new SimulatedGpus(options.Count, options.Node, serving.Token, log)) },
        Ports = { new ServerPort("unix:" + socket, 0, ServerCredentials.Insecure) },
    };
    server.Start();
    // C-core binds "<host>:<port>", so the socket's file is named with ":0"; a bound socket keeps working when
    // its file is renamed, and the kubelet dials the name the registration gives.
    File.Move(socket + ":0", socket, overwrite: true);
    log.LogInformation("serving the device-plugin API on {Socket}", socket);
    try
    {
        await RegisterAsync(options, Path.GetFileName(socket), stop.Token);
        log.LogInformation("registered {Resource} x{Count} ({Product}) with the kubelet", SimOptions.Resource, options.Count, options.Product);
        // The kubelet removes every socket in the directory when it starts: then serve and register again.
        while (!stop.IsCancellationRequested && Path.Exists(socket))
        {
            await Task.Delay(TimeSpan.FromSeconds(1), stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        if (!stop.IsCancellationRequested)
        {
            log.LogWarning("the plugin socket is gone (the kubelet restarted): registering again");
        }
    }
    catch (Exception e) when (e is not OperationCanceledException)
    {
        log.LogWarning("registration failed ({Message}); retrying in 2 s", e.Message);
        await Task.Delay(TimeSpan.FromSeconds(2), stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    await serving.CancelAsync();
    await server.KillAsync();
}

File.Delete(socket);
return 0;

static async Task RegisterAsync(SimOptions options, string endpoint, CancellationToken ct)
{
    var kubeletSocket = Path.Combine(options.PluginDirectory, "kubelet.sock");
    var handler = new SocketsHttpHandler
    {
        ConnectCallback = async (_, token) =>
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await s.ConnectAsync(new UnixDomainSocketEndPoint(kubeletSocket), token);
                return new NetworkStream(s, ownsSocket: true);
            }
            catch
            {
                s.Dispose();
                throw;
            }
        },
    };
    using var channel = GrpcChannel.ForAddress("http://kubelet", new GrpcChannelOptions { HttpHandler = handler });
    var client = new Registration.RegistrationClient(channel);
    await client.RegisterAsync(new RegisterRequest
    {
        Version = "v1beta1",
        Endpoint = endpoint,
        ResourceName = SimOptions.Resource,
        Options = new DevicePluginOptions { GetPreferredAllocationAvailable = true },
    }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: ct);
}

// The labels GPU Feature Discovery puts on a node with these GPUs; the operator places
// functions by nvidia.com/gpu.product.
static async Task LabelNodeAsync(SimOptions options, CancellationToken ct)
{
    using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(options.Kubeconfig));
    var labels = new Dictionary<string, string>
    {
        ["nvidia.com/gpu.present"] = "true",
        ["nvidia.com/gpu.product"] = options.Product,
        ["nvidia.com/gpu.count"] = options.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["nvidia.com/gpu.memory"] = options.MemoryMiB.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
    var patch = new V1Patch(new { metadata = new { labels } }, V1Patch.PatchType.MergePatch);
    await client.CoreV1.PatchNodeAsync(patch, options.Node, cancellationToken: ct);
}
