using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;
using Pilotlight.Operator;
using Pilotlight.Operator.Admission;
using Pilotlight.Operator.Gpu;
using Pilotlight.Operator.Scaling;
using Pilotlight.Operator.Usage;
using Microsoft.AspNetCore.Builder;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// One operator (all namespaces) and one gateway on the shared control
/// plane, as a platform would run them, for every test that needs them: two
/// operators on one cluster would fight over the same functions. They run
/// as the chart's ServiceAccounts under the chart's rendered RBAC, never as
/// admin (every integration test that drives an operator or a gateway does so
/// through this one pair). The
/// catalog is a platform team's own (<see cref="Catalog"/>): it lacks B200 and adds a type the shipped one does not
/// know; the autoscaler's windows
/// are short so scale-to-zero happens within a test.
/// </summary>
internal static class SharedOperator
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static Running? _running;

    /// <summary>
    /// The operator's GPU catalog, read as the chart's <c>gpuTypes</c> file would be: the shipped one without B200, plus
    /// X1000, a type the shipped catalog does not name, on nodes whose GFD product label is <c>NVIDIA-X1000</c>.
    /// </summary>
    public static GpuCatalog Catalog { get; } = GpuCatalog.Parse(string.Join('\n',
        GpuCatalog.Default.Products.Where(kv => kv.Key != GpuType.B200).Select(kv => $"{kv.Key.Name}: [{string.Join(", ", kv.Value)}]")
            .Append("X1000: [NVIDIA-X1000]")));

    public static AutoscalerSettings Autoscaling { get; } = new()
    {
        StableWindow = TimeSpan.FromSeconds(6), PanicWindow = TimeSpan.FromSeconds(2), Tick = TimeSpan.FromMilliseconds(500),
    };

    public sealed record Running(ControlPlane Plane, string GatewayUrl, Task Operator, WebApplication Gateway, CancellationTokenSource Stop, UsageJournal Journal)
    {
        /// <summary>The clients the operator and the gateway act through, closed after they stop.</summary>
        internal IReadOnlyList<IDisposable> Clients { get; init; } = [];

        /// <summary>The operator's admission webhook server (HTTPS on loopback).</summary>
        internal WebApplication? Webhook { get; init; }

        /// <summary>The webhook's certificate, as the operator keeps it.</summary>
        internal WebhookCertificates? WebhookCertificates { get; init; }

        /// <summary>The webhook's port on 127.0.0.1.</summary>
        internal int WebhookPort { get; init; }

        /// <summary>
        /// A token for the gateway's audience of the ServiceAccount <see cref="InvokerAccount"/>, bound to the chart's invoker
        /// ClusterRole in every namespace: what test clients invoke private functions with.
        /// </summary>
        public string InvokerToken { get; init; } = "";
    }

    /// <summary>The ServiceAccount test clients invoke functions as (in the release namespace).</summary>
    public const string InvokerAccount = "invoker";

    /// <summary>Mints a token of <paramref name="account"/> (in the release namespace) for the gateway's audience, as <c>kubectl create token</c> would.</summary>
    public static async Task<string> GatewayTokenAsync(Kubernetes admin, string account)
    {
        var request = await admin.CoreV1.CreateNamespacedServiceAccountTokenAsync(new k8s.Models.Authenticationv1TokenRequest
        {
            Spec = new k8s.Models.V1TokenRequestSpec { Audiences = [new Pilotlight.Gateway.InvocationAccessOptions().Audience], ExpirationSeconds = 6 * 3600 },
        }, account, Helm.Namespace);
        return request.Status.Token;
    }

    /// <summary>The cluster ranges the suite's operator denies every sandbox (its <c>--sandbox-egress-deny</c>).</summary>
    public static IReadOnlyList<string> EgressDenied { get; } = ["10.244.0.0/16", "10.96.0.0/12"];

    /// <summary>
    /// The platform's admission policy here: the defaults, and the transcriber sample's own ServiceAccount allowed, as
    /// a platform running that sample would (admission.allowedServiceAccounts).
    /// </summary>
    public static AdmissionPolicy Admission { get; } = new() { AllowedServiceAccounts = AdmissionPolicy.ListFlag("transcriber") };

    /// <summary>Namespaces carrying this label (value <c>on</c>) are under the admission webhook; others are not.</summary>
    public const string WebhookNamespaceLabel = "pilotlight.dev/admission-webhook";

    /// <summary>The chart's ValidatingWebhookConfiguration and certificate Secret names for release "pilotlight".</summary>
    public const string WebhookName = "pilotlight-operator-webhook";

    /// <summary>The chart's invoke-key verifier ConfigMap for release "pilotlight" (--invoke-keys-configmap of both).</summary>
    public static ObjectKey InvokeKeysConfigMap { get; } = new(Helm.Namespace, "pilotlight-invoke-keys");

    /// <summary>The Secret with the sandbox agents' CA and the gateway's client certificate (the chart's <c>&lt;release&gt;-sandbox-agent-tls</c>).</summary>
    public static ObjectKey AgentSecret { get; } = new(Helm.Namespace, "pilotlight-sandbox-agent-tls");

    /// <summary>The sandbox agents' CA and the gateway's client certificate, once started.</summary>
    public static WebhookCertificates? AgentCertificates { get; private set; }

    /// <summary>The operator's ServiceAccount as a user: the one caller of the gateways' internal endpoints.</summary>
    public static string OperatorUser { get; } = $"system:serviceaccount:{Helm.Namespace}:pilotlight-operator";

    /// <summary>True once the shared operator and gateway have been started in this run.</summary>
    public static bool Started { get; private set; }

    public static async Task<Running> GetAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_running is null)
            {
                var plane = await SharedControlPlane.GetAsync();
                var client = plane.CreateClient();

                // Installed as the chart installs them: the operator and the gateway act as their
                // ServiceAccounts with no rights but the chart's roles, so a scenario that needs
                // more fails here, and ChartRbacAudit compares what they did with what they may.
                await (await ChartRbac.RenderAsync()).InstallAsync(plane);
                var operatorClient = plane.CreateClient(ChartRbac.OperatorUser);
                var gatewayClient = plane.CreateClient(ChartRbac.GatewayUser);

                // Functions are private: clients need a token for the gateway's audience from someone the chart's
                // invoker role is bound to, as a platform team would hand one out.
                (await new Kubectl(plane.KubeconfigPath).ApplyAsync(await Helm.TemplateAsync(showOnly: ["templates/user-roles.yaml"]))).EnsureSuccess();
                await client.CoreV1.CreateNamespacedServiceAccountAsync(new k8s.Models.V1ServiceAccount
                {
                    Metadata = new k8s.Models.V1ObjectMeta { Name = InvokerAccount },
                }, Helm.Namespace);
                await client.RbacAuthorizationV1.CreateClusterRoleBindingAsync(new k8s.Models.V1ClusterRoleBinding
                {
                    Metadata = new k8s.Models.V1ObjectMeta { Name = "test-invoker" },
                    RoleRef = new k8s.Models.V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = "pilotlight-invoker" },
                    Subjects = [new k8s.Models.Rbacv1Subject { Kind = "ServiceAccount", Name = InvokerAccount, NamespaceProperty = Helm.Namespace }],
                });
                var invokerToken = await GatewayTokenAsync(client, InvokerAccount);

                // The operator's projected token (the chart mounts one for scheduled requests), as a file.
                var operatorToken = Path.Combine(plane.Directory, "operator-gateway-token");
                await File.WriteAllTextAsync(operatorToken, await GatewayTokenAsync(client, "pilotlight-operator"));

                var gatewayUrl = $"http://127.0.0.1:{ControlPlane.FreePort()}";
                // Invoke keys as the chart turns them on: the operator publishes verifiers, the gateway reads them.
                // The CA sandbox agents trust and the gateway's client certificate, made by the operator (as its
                // ServiceAccount) as with the chart's --sandbox-agent-secret.
                var agentCertificates = new WebhookCertificates(operatorClient, new WebhookCertificateOptions
                {
                    Secret = AgentSecret, Hosts = ["pilotlight-gateway"], CaName = "pilotlight-sandbox-agent-ca", ClientAuthentication = true,
                });
                await agentCertificates.EnsureAsync(CancellationToken.None);
                AgentCertificates = agentCertificates;

                // Its /internal/* answer only the operator's token, as the chart sets it (--internal-callers).
                var gateway = GatewayApp.Build(gatewayClient, gatewayUrl, new GatewayOptions
                {
                    Access = new InvocationAccessOptions { InvokeKeysConfigMap = InvokeKeysConfigMap },
                    InternalCallers = [OperatorUser],
                    AgentClientCertificate = () => agentCertificates.Current,
                }, registry: Prometheus.Metrics.NewCustomRegistry(), logging: _ => { });
                await gateway.StartAsync();

                // The RuntimeClasses sandboxes may use (a node would have gVisor and Kata installed).
                foreach (var (runtime, handler) in new[] { ("runsc", "runsc"), ("kata", "kata-qemu") })
                {
                    try
                    {
                        await client.NodeV1.CreateRuntimeClassAsync(new k8s.Models.V1RuntimeClass
                        {
                            Metadata = new k8s.Models.V1ObjectMeta { Name = runtime }, Handler = handler,
                        });
                    }
                    catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
                    {
                    }
                }

                // The gateway pods' Service the chart passes as --gateway-service. The shared gateway is a
                // loopback process, which Endpoints cannot list (the API server refuses loopback
                // addresses), so it is named in Gateways and this Service lists no pod: the operator
                // watches its Endpoints as in a cluster and reads nothing more from them.
                // GatewayReplicaTests reads two gateways through such Endpoints.
                await client.CoreV1.CreateNamespacedServiceAsync(new k8s.Models.V1Service
                {
                    Metadata = new k8s.Models.V1ObjectMeta { Name = "pilotlight-gateway-pods" },
                    Spec = new k8s.Models.V1ServiceSpec { ClusterIP = "None", Ports = [new k8s.Models.V1ServicePort { Name = "http", Port = 8080 }] },
                }, Helm.Namespace);
                await client.CoreV1.CreateNamespacedEndpointsAsync(new k8s.Models.V1Endpoints
                {
                    Metadata = new k8s.Models.V1ObjectMeta { Name = "pilotlight-gateway-pods" }, Subsets = [],
                }, Helm.Namespace);

                var catalog = Catalog;
                var stop = new CancellationTokenSource();
                var sandboxes = new Pilotlight.Operator.Sandboxes.SandboxOptions
                {
                    AllowedRuntimeClasses = ["runsc", "kata"], DefaultRuntimeClass = "runsc", MaxTimeout = TimeSpan.FromMinutes(10),
                    // As a platform would set --sandbox-egress-deny: the cluster's pod and service ranges.
                    EgressFloor = [.. Pilotlight.Operator.Sandboxes.SandboxOptions.DefaultEgressFloor, .. EgressDenied],
                    AgentClientCa = () => agentCertificates.CaPem,
                };

                // The admission webhook as the chart installs it, reached by URL on loopback instead of through its
                // Service, and only for namespaces labelled for it: the tests that create invalid objects on purpose
                // (to see InvalidSpec) stay outside it, as an object admitted while the webhook was down would be.
                // The operator (as its ServiceAccount) creates the certificate Secret and fills in the caBundle.
                var webhookPort = ControlPlane.FreePort();
                await client.AdmissionregistrationV1.CreateValidatingWebhookConfigurationAsync(await WebhookConfigurationAsync(webhookPort));
                var certificates = new WebhookCertificates(operatorClient, new WebhookCertificateOptions
                {
                    Secret = new ObjectKey(Helm.Namespace, WebhookName + "-tls"), Hosts = ["127.0.0.1"], Configuration = WebhookName,
                });
                var webhook = await AdmissionServer.StartAsync(new AdmissionWebhook(catalog, Admission, new Pilotlight.Operator.Functions.FunctionPodOptions(), sandboxes)
                    {
                        PodLabelWriters = [OperatorUser],
                    },
                    certificates, System.Net.IPAddress.Loopback, webhookPort, TimeSpan.FromHours(1), stop.Token);
                var journal = new UsageJournal();
                var host = PilotlightOperator.Create(operatorClient, new OperatorOptions
                {
                    Catalog = catalog, Identity = "test", Gateways = [new Uri(gatewayUrl)], Autoscaler = Autoscaling, EndpointBase = gatewayUrl,
                    GatewayService = new ObjectKey(Helm.Namespace, "pilotlight-gateway-pods"),
                    UsageJournal = journal,
                    GatewayTokenFile = operatorToken,
                    Admission = Admission,
                    InvokeKeys = new Pilotlight.Operator.Access.InvokeKeyPublisherOptions { ConfigMap = InvokeKeysConfigMap },
                    // As the chart runs it (--leader-elect, the Lease in the release namespace), with a
                    // lease long enough that a loaded test machine does not lose it between renewals.
                    LeaderElection = new LeaderElectionOptions(Helm.Namespace, "pilotlight-operator")
                    {
                        LeaseDuration = TimeSpan.FromSeconds(60), RenewDeadline = TimeSpan.FromSeconds(45), RetryPeriod = TimeSpan.FromSeconds(2),
                    },
                    Sandboxes = sandboxes,
                }, new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()), loggers: ProgressLoggerProvider.Factory());
                _running = new Running(plane, gatewayUrl, host.RunAsync(stop.Token), gateway, stop, journal) 
                {
                    Clients = [operatorClient, gatewayClient], Webhook = webhook, WebhookCertificates = certificates, WebhookPort = webhookPort,
                    InvokerToken = invokerToken,
                };
                Started = true;
            }

            return _running;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>
    /// The chart's ValidatingWebhookConfiguration, pointed at <paramref name="port"/> on loopback and narrowed to
    /// namespaces labelled <see cref="WebhookNamespaceLabel"/>.
    /// </summary>
    private static async Task<k8s.Models.V1ValidatingWebhookConfiguration> WebhookConfigurationAsync(int port)
    {
        var rendered = await Helm.TemplateAsync(showOnly: ["templates/webhook.yaml"]);
        var configuration = KubernetesYaml.LoadAllFromString(rendered).OfType<k8s.Models.V1ValidatingWebhookConfiguration>().Single();
        foreach (var hook in configuration.Webhooks)
        {
            hook.ClientConfig = new k8s.Models.Admissionregistrationv1WebhookClientConfig { Url = $"https://127.0.0.1:{port}{AdmissionServer.Path}" };
            hook.NamespaceSelector = new k8s.Models.V1LabelSelector { MatchLabels = new Dictionary<string, string> { [WebhookNamespaceLabel] = "on" } };
        }

        return configuration;
    }

    /// <summary>Called by <see cref="SharedControlPlane"/> before the control plane stops.</summary>
    public static async Task StopAsync()
    {
        if (_running is { } running)
        {
            await running.Stop.CancelAsync();
            await running.Operator;
            await running.Gateway.StopAsync();
            await running.Gateway.DisposeAsync();
            if (running.Webhook is { } webhook)
            {
                await webhook.StopAsync();
                await webhook.DisposeAsync();
            }

            // Closes their connections, and with them any watch still open (the API server
            // logs a watch when it ends; ChartRbacAudit reads the log next).
            foreach (var client in running.Clients)
            {
                client.Dispose();
            }

            _running = null;
        }
    }
}
