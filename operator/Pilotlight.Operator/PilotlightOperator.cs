using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator.Functions;
using Pilotlight.Operator.Scaling;

namespace Pilotlight.Operator;

/// <summary>Wires the operator's informers and controllers into a <see cref="ControllerHost"/>.</summary>
public static class PilotlightOperator
{
    /// <summary>The component name on Events and in the Lease.</summary>
    public const string Component = "pilotlight-operator";

    /// <summary>A host running every controller of the operator.</summary>
    public static ControllerHost Create(IKubernetes client, OperatorOptions options, ControllerMetrics? metrics = null,
        TimeProvider? time = null, ILoggerFactory? loggers = null)
    {
        time ??= TimeProvider.System;
        ILogger Logger(string name) => loggers?.CreateLogger(name) ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        var functions = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(client, options.WatchNamespace),
            time: time, logger: Logger("informer.gpufunctions"));
        var managed = $"{FunctionLabels.ManagedBy}={FunctionLabels.ManagedByValue}";
        var pods = new Informer<V1Pod>(ListWatch.ForPods(client, managed,
                options.WatchNamespace is null ? null : $"metadata.namespace={options.WatchNamespace}"),
            time: time, logger: Logger("informer.pods"));
        var nodes = new Informer<V1Node>(ListWatch.ForNodes(client, Gpu.GpuCatalog.ProductLabel), time: time, logger: Logger("informer.nodes"));

        var demand = new GatewayDemandSource(new HttpClient(), () => options.Gateways, Logger("autoscaler"));
        var autoscaler = new Autoscaler(functions, demand, options.Autoscaler, time, Logger("autoscaler"));
        var reconciler = new GpuFunctionReconciler(client, pods, nodes, options.Catalog, options.Pods,
            new EventRecorder(client, Component, time, Logger("events")), options.EndpointBase, time, Logger("gpufunction"))
        {
            DesiredReplicas = autoscaler.DesiredReplicas,
            PodLoad = autoscaler.PodLoad,
            LastRequest = autoscaler.LastRequest,
            Journal = options.UsageJournal,
        };
        var controller = new Controller<GpuFunction>("gpufunction", functions, reconciler,
                new ControllerOptions { Workers = options.Workers }, time, Logger("controller.gpufunction"))
            .Owns(pods, GpuFunction.KindName)
            .Reads(nodes);
        autoscaler.Changed = controller.Enqueue;

        var sandboxes = new Informer<Sandbox>(ListWatch.ForCustomResource<Sandbox>(client, options.WatchNamespace),
            time: time, logger: Logger("informer.sandboxes"));
        var sandboxReconciler = new Sandboxes.SandboxReconciler(client, pods, options.Catalog, options.Sandboxes,
            new EventRecorder(client, Component, time, Logger("events")), time, Logger("sandbox"));
        var sandboxController = new Controller<Sandbox>("sandbox", sandboxes, sandboxReconciler,
                new ControllerOptions { Workers = options.Workers }, time, Logger("controller.sandbox"))
            .Owns(pods, Sandbox.KindName);
        var pools = new Informer<SandboxWarmPool>(ListWatch.ForCustomResource<SandboxWarmPool>(client, options.WatchNamespace),
            time: time, logger: Logger("informer.sandboxwarmpools"));
        var poolController = new Controller<SandboxWarmPool>("sandboxwarmpool", pools,
                new Sandboxes.SandboxWarmPoolReconciler(client, pods, options.Sandboxes, new EventRecorder(client, Component, time, Logger("events")), time),
                new ControllerOptions { Workers = options.Workers }, time, Logger("controller.sandboxwarmpool"))
            .Owns(pods, SandboxWarmPool.KindName)
            // A claimed pod changes owner: the pool it came from must refill.
            .Watches(pods, p => p.Metadata.Annotations?.TryGetValue("pilotlight.dev/claimed-from", out var from) == true
                ? [new ObjectKey(p.Metadata.NamespaceProperty, from)]
                : []);

        return new ControllerHost(client, new ControllerHostOptions { Identity = options.Identity, LeaderElection = options.LeaderElection },
                metrics, Logger("host"))
            .Add(controller)
            .Add(sandboxController)
            .Add(poolController)
            .Add(autoscaler);
    }
}
