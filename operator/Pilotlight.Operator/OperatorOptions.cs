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

    /// <summary>Gateways whose demand the autoscaler reads (their base URLs).</summary>
    public IReadOnlyList<Uri> Gateways { get; init; } = [];

    /// <summary>Autoscaler tuning.</summary>
    public Scaling.AutoscalerSettings Autoscaler { get; init; } = new();

    /// <summary>Closed billing intervals (persist it with a path on a volume).</summary>
    public Usage.UsageJournal UsageJournal { get; init; } = new();

    /// <summary>Reconciles at once.</summary>
    public int Workers { get; init; } = 4;
}
