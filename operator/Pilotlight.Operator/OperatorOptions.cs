using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Gpu;

namespace Pilotlight.Operator;

/// <summary>How the operator is configured (command-line flags or Helm values).</summary>
public sealed record OperatorOptions
{
    /// <summary>GPU type to product label mapping.</summary>
    public GpuCatalog Catalog { get; init; } = GpuCatalog.Default;

    /// <summary>Pod template settings (shim image and port).</summary>
    public FunctionPodOptions Pods { get; init; } = new();

    /// <summary>How sandboxes are run.</summary>
    public Sandboxes.SandboxOptions Sandboxes { get; init; } = new();

    /// <summary>Base URL of the gateway; a function's endpoint is BASE/NAMESPACE/NAME.</summary>
    public string EndpointBase { get; init; } = "http://pilotlight-gateway.pilotlight-system";

    /// <summary>Only this namespace, or all when null.</summary>
    public string? WatchNamespace { get; init; }

    /// <summary>Leader election; null when a single instance runs.</summary>
    public LeaderElectionOptions? LeaderElection { get; init; }

    /// <summary>This instance's name in the Lease.</summary>
    public string Identity { get; init; } = Environment.MachineName;

    /// <summary>
    /// Gateways whose demand the autoscaler reads (their base URLs). Every one must answer for a
    /// function to scale down (one that cannot be read is unknown demand, never zero). Empty means
    /// no gateway serves requests: no demand is ever seen and functions stay at minReplicas,
    /// apart from the wake requests gateways stamp on the function itself.
    /// </summary>
    public IReadOnlyList<Uri> Gateways { get; init; } = [];

    /// <summary>
    /// A Service in front of the gateway pods (<c>--gateway-service NAMESPACE/NAME</c>): the autoscaler
    /// watches its core/v1 Endpoints and reads every gateway pod listed there, adding to
    /// <see cref="Gateways"/>. A not-ready address, or Endpoints not seen, is unknown demand.
    /// </summary>
    public ObjectKey? GatewayService { get; init; }

    /// <summary>Autoscaler tuning.</summary>
    public Scaling.AutoscalerSettings Autoscaler { get; init; } = new();

    /// <summary>
    /// Where scheduled requests go first (<c>--schedule-gateway</c>; the chart passes its gateway Service), then
    /// the <see cref="Gateways"/>; with neither, <see cref="EndpointBase"/>.
    /// </summary>
    public Uri? ScheduleGateway { get; init; }

    /// <summary>
    /// A file holding a bearer token for the gateway's audience (<c>--gateway-token-file</c>; the chart mounts a
    /// projected ServiceAccount token, which the kubelet refreshes), sent with scheduled requests. Read at each
    /// request; none is sent when null.
    /// </summary>
    public string? GatewayTokenFile { get; init; }

    /// <summary>Schedule loop tuning (see <see cref="ScheduleGateway"/> for where scheduled requests go).</summary>
    public Schedules.ScheduleSettings Schedules { get; init; } = new();

    /// <summary>Closed billing intervals (persist it with a path on a volume).</summary>
    public Usage.UsageJournal UsageJournal { get; init; } = new();

    /// <summary>What functions may use beyond the schema (volumes, ServiceAccounts); the webhook and the reconciler both apply it.</summary>
    public Admission.AdmissionPolicy Admission { get; init; } = new();

    /// <summary>
    /// Where the verifiers of invoke-key Secrets are published for the gateway (<c>--invoke-keys-configmap</c>); null: invoke
    /// keys are off and Secrets are not watched.
    /// </summary>
    public Access.InvokeKeyPublisherOptions? InvokeKeys { get; init; }

    /// <summary>
    /// How stale a function's <c>status.usage</c> may grow while its pods stay as they are (<c>--usage-status-interval</c>);
    /// a pod opening or closing rewrites it at once.
    /// </summary>
    public TimeSpan UsageStatusInterval { get; init; } = Functions.GpuFunctionReconciler.DefaultUsageStatusInterval;

    /// <summary>Reconciles at once.</summary>
    public int Workers { get; init; } = 8;
}
