using k8s;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// What the integration classes that send traffic through the shared operator
/// and gateway have in common: a client and kubectl on the shared control plane,
/// a node simulator of their own whose function pods run the real shim and
/// sample model server (on their own loopback range, <c>127.{podNetwork}.x.y</c>),
/// a pool name for their nodes, and an HTTP client. Set up before, and torn
/// down after, anything the class itself sets up.
/// </summary>
/// <param name="podNetwork">Second octet of the simulator's pod IPs; distinct per class so classes run in parallel.</param>
/// <param name="poolPrefix">Start of <see cref="Pool"/>, which names the class's nodes and labels them.</param>
/// <param name="httpTimeout">Timeout of <see cref="Http"/>; two minutes when null.</param>
public abstract class ServingFixture(int podNetwork, string poolPrefix, TimeSpan? httpTimeout = null)
{
    /// <summary>Label on the class's nodes whose value is <see cref="Pool"/>: manifests select their nodes with it.</summary>
    protected const string PoolLabel = "pilotlight.dev/test-pool";

    /// <summary>The shared control plane.</summary>
    protected ControlPlane Plane { get; private set; } = null!;

    /// <summary>An admin client of <see cref="Plane"/>.</summary>
    protected Kubernetes Client { get; private set; } = null!;

    /// <summary>kubectl against <see cref="Plane"/>.</summary>
    protected Kubectl Kubectl { get; private set; } = null!;

    /// <summary>The class's own node simulator, running pod processes.</summary>
    protected NodeSimulator Sim { get; private set; } = null!;

    /// <summary>HTTP client for invocations, with the token of a caller allowed to invoke any function.</summary>
    protected HttpClient Http { get; private set; } = null!;

    /// <summary>A token for the gateway's audience of a caller allowed to invoke every function (what <see cref="Http"/> sends).</summary>
    protected string InvokerToken { get; private set; } = "";

    /// <summary>HTTP client with no credentials of its own (the sandbox API's callers set theirs per request).</summary>
    protected HttpClient Anonymous { get; private set; } = null!;

    /// <summary>Base URL of the shared gateway.</summary>
    protected string GatewayUrl { get; private set; } = "";

    /// <summary>A name unique to this run of the class: its nodes' names start with it and carry it as <see cref="PoolLabel"/>.</summary>
    protected string Pool { get; } = $"{poolPrefix}-{Guid.NewGuid():N}"[..(poolPrefix.Length + 8)];

    [OneTimeSetUp]
    public async Task SetUpServingAsync()
    {
        var shared = await SharedOperator.GetAsync();
        Plane = shared.Plane;
        GatewayUrl = shared.GatewayUrl;
        Client = Plane.CreateClient();
        Kubectl = new Kubectl(Plane.KubeconfigPath);
        Sim = new NodeSimulator(Client, new NodeSimulatorOptions
        {
            PodNetwork = podNetwork,
            Processes = FunctionProcessOptions.FromRepository(Path.Combine(Plane.Directory, "pods")),
        });
        await Sim.StartAsync();
        // Functions are private by default: every invocation carries the test invoker's token.
        Http = new HttpClient { Timeout = httpTimeout ?? TimeSpan.FromMinutes(2) };
        InvokerToken = shared.InvokerToken;
        Http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", InvokerToken);
        Anonymous = new HttpClient { Timeout = httpTimeout ?? TimeSpan.FromMinutes(2) };
    }

    [OneTimeTearDown]
    public async Task TearDownServingAsync()
    {
        Http.Dispose();
        Anonymous.Dispose();
        await Sim.DeleteNodesAsync();
        await Sim.DisposeAsync();
        Client.Dispose();
    }

    /// <summary>Adds a node of <see cref="Pool"/>, named <c>{Pool}-{suffix}</c>.</summary>
    protected Task AddPoolNodeAsync(GpuNodePreset preset, string suffix = "l4") =>
        Sim.AddNodeAsync($"{Pool}-{suffix}", preset, new Dictionary<string, string> { [PoolLabel] = Pool });
}
