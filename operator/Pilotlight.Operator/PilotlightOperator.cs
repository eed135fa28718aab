using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
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
        TimeProvider? time = null, ILoggerFactory? loggers = null, OperatorMetrics? operatorMetrics = null)
    {
        time ??= TimeProvider.System;
        operatorMetrics ??= new OperatorMetrics(time: time);

        // One recorder for every controller: repeats are folded and rate-limited per object whoever reports them.
        var events = new EventRecorder(client, Component, time, Logger("events"), registry: operatorMetrics.Registry);
        ILogger Logger(string name) => loggers?.CreateLogger(name) ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        // The caches that grow with the functions keep one copy of each string their objects repeat (namespaces, labels,
        // condition types, reasons and messages): at 10,000 functions a fresh copy per object was megabytes.
        var cached = new InformerOptions { Transform = PooledTransform(new StringPool()) };
        var functions = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(client, options.WatchNamespace),
            cached, time: time, logger: Logger("informer.gpufunctions"));
        var managed = $"{FunctionLabels.ManagedBy}={FunctionLabels.ManagedByValue}";
        var pods = new Informer<V1Pod>(ListWatch.ForPods(client, managed,
                options.WatchNamespace is null ? null : $"metadata.namespace={options.WatchNamespace}"),
            cached, time: time, logger: Logger("informer.pods"));
        var services = new Informer<V1Service>(ListWatch.ForServices(client, managed,
                options.WatchNamespace is null ? null : $"metadata.namespace={options.WatchNamespace}"),
            cached, time: time, logger: Logger("informer.services"));
        // The sandbox controllers look pods up by owner and warm shape, not by scanning the namespace.
        Sandboxes.SandboxPodIndexes.AddTo(pods);
        var nodes = new Informer<V1Node>(ListWatch.ForNodes(client, Gpu.GpuCatalog.ProductLabel), time: time, logger: Logger("informer.nodes"));

        // Every gateway pod behind the gateway Service is read, not the Service (which reaches one pod per poll).
        var gatewayService = options.GatewayService is { } named ? named with { Namespace = named.Namespace ?? "default" } : null;
        var gatewayEndpoints = gatewayService is null ? null
            : new Informer<V1Endpoints>(ListWatch.ForEndpoints(client, gatewayService.Namespace!, $"metadata.name={gatewayService.Name}"),
                time: time, logger: Logger("informer.endpoints"));
        GatewaySet Gateways() => GatewaySet.Of(options.Gateways).With(gatewayService is null ? GatewaySet.Empty
            : GatewaySet.FromEndpoints(gatewayService, gatewayEndpoints!.Get(gatewayService)));
        // The gateways' internal endpoints take the operator's token (the one scheduled requests carry) where they
        // name the operator as their caller.
        var gatewayToken = Schedules.GatewayInvoker.BearerFrom(options.GatewayTokenFile);
        var demand = new GatewayDemandSource(new HttpClient(), Gateways, Logger("autoscaler")) { Authenticate = gatewayToken };
        var signals = new GatewaySignalFeed(new HttpClient { Timeout = Timeout.InfiniteTimeSpan }, Gateways, gatewayToken, time, Logger("signals"))
        {
            GatewayInformers = gatewayEndpoints is null ? [] : [gatewayEndpoints],
        };
        var autoscaler = new Autoscaler(functions, demand, options.Autoscaler, time, Logger("autoscaler"))
        {
            DemandInformers = gatewayEndpoints is null ? [] : [gatewayEndpoints],
            Wakes = signals.Wake,
            Metrics = operatorMetrics,
        };
        var reconciler = new GpuFunctionReconciler(client, pods, nodes, options.Catalog, options.Pods,
            events, options.EndpointBase, time, Logger("gpufunction"))
        {
            DesiredReplicas = autoscaler.DesiredReplicas,
            PodLoad = autoscaler.PodLoad,
            LastRequest = autoscaler.LastRequest,
            ColdStarts = signals.ColdStarts,
            Journal = options.UsageJournal,
            Admission = options.Admission,
            Metrics = operatorMetrics,
            Services = services,
            UsageStatusInterval = options.UsageStatusInterval,
        };
        var controller = new Controller<GpuFunction>("gpufunction", functions, reconciler,
                new ControllerOptions { Workers = options.Workers }, time, Logger("controller.gpufunction"))
            .Owns(pods, GpuFunction.KindName)
            .Owns(services, GpuFunction.KindName)
            .Reads(nodes);
        autoscaler.Changed = controller.Enqueue;
        signals.FunctionWoken = controller.Enqueue;
        signals.ColdStartsCounted = controller.Enqueue;
        var schedules = new Schedules.ScheduleController(functions, new Schedules.KubernetesScheduleStore(client),
            new Schedules.GatewayInvoker(new HttpClient { Timeout = Timeout.InfiniteTimeSpan },
                () => ScheduleTargets(options)) { Authenticate = Schedules.GatewayInvoker.BearerFrom(options.GatewayTokenFile) },
            events, options.Schedules, time, Logger("schedule"));

        var sandboxes = new Informer<Sandbox>(ListWatch.ForCustomResource<Sandbox>(client, options.WatchNamespace),
            cached, time: time, logger: Logger("informer.sandboxes"));
        operatorMetrics.UseConditions(
            () => functions.List().Select(f => (ObjectKey.Of(f), f.Status?.Conditions)),
            () => sandboxes.List().Select(s => (ObjectKey.Of(s), s.Status?.Conditions)));
        // The operator's NetworkPolicies, so that a tenant's edit or deletion of a sandbox's or pool's policy is undone.
        var policies = new Informer<V1NetworkPolicy>(ListWatch.ForNetworkPolicies(client, $"{FunctionLabels.ManagedBy}={FunctionLabels.ManagedByValue}"),
            time: time, logger: Logger("informer.networkpolicies"));
        var policyKeeper = new Sandboxes.SandboxPolicies(client, policies, events);
        var pools = new Informer<SandboxWarmPool>(ListWatch.ForCustomResource<SandboxWarmPool>(client, options.WatchNamespace),
            time: time, logger: Logger("informer.sandboxwarmpools"));
        var sandboxReconciler = new Sandboxes.SandboxReconciler(client, pods, pools, policyKeeper, options.Catalog, options.Sandboxes,
            events, time, Logger("sandbox"))
        {
            Signals = signals,
            Journal = options.UsageJournal,
        };
        var sandboxController = new Controller<Sandbox>("sandbox", sandboxes, sandboxReconciler,
                new ControllerOptions { Workers = options.Workers }, time, Logger("controller.sandbox"))
            .Owns(pods, Sandbox.KindName)
            .Owns(policies, Sandbox.KindName);
        signals.SandboxTerminated = sandboxController.Enqueue;
        var poolController = new Controller<SandboxWarmPool>("sandboxwarmpool", pools,
                new Sandboxes.SandboxWarmPoolReconciler(client, pods, policyKeeper, options.Sandboxes, events, time),
                new ControllerOptions { Workers = options.Workers }, time, Logger("controller.sandboxwarmpool"))
            .Owns(pods, SandboxWarmPool.KindName)
            .Owns(policies, SandboxWarmPool.KindName)
            // A claimed pod changes owner: the pool it came from must refill.
            .Watches(pods, p => p.Metadata.Annotations?.TryGetValue("pilotlight.dev/claimed-from", out var from) == true
                ? [new ObjectKey(p.Metadata.NamespaceProperty, from)]
                : []);

        var host = new ControllerHost(client, new ControllerHostOptions { Identity = options.Identity, LeaderElection = options.LeaderElection },
                metrics, Logger("host"))
            .Add(controller)
            .Add(sandboxController)
            .Add(poolController)
            .Add(autoscaler)
            .Add(signals)
            .Add(schedules)
            .Add(operatorMetrics.LeaderScope());
        if (options.InvokeKeys is { } invokeKeys)
        {
            // Only Secrets labelled as invoke keys are listed; the gateway gets their verifiers, never a Secret.
            var keySecrets = new Informer<V1Secret>(Access.InvokeKeyPublisher.ListWatch(client, options.WatchNamespace),
                time: time, logger: Logger("informer.secrets"));
            host.Add(new Access.InvokeKeyPublisher(client, keySecrets, invokeKeys, events,
                time, Logger("invokekeys")));
        }

        return host;
    }

    /// <summary>
    /// The operator's cache transform: <c>managedFields</c> dropped (<see cref="InformerTransforms.StripManagedFields"/>),
    /// then the strings that objects repeat taken from <paramref name="strings"/>; nothing read changes value.
    /// </summary>
    internal static Func<object, object> PooledTransform(StringPool strings) => obj =>
    {
        InformerTransforms.StripManagedFields(obj);
        strings.PoolMetadata(obj);
        switch (obj)
        {
            case GpuFunction { Status: { } status }:
                strings.PoolConditions(status.Conditions);
                break;
            case Sandbox { Status: { } status }:
                strings.PoolConditions(status.Conditions);
                break;
        }

        return obj;
    };

    /// <summary>
    /// Where scheduled requests go, in order: the schedule gateway (the chart's gateway Service), then the
    /// gateways named by URL; with neither, the endpoint base (which may be an external address).
    /// </summary>
    private static IReadOnlyList<Uri> ScheduleTargets(OperatorOptions options) =>
        options.ScheduleGateway is { } first ? [first, .. options.Gateways]
        : options.Gateways.Count > 0 ? options.Gateways
        : Uri.TryCreate(options.EndpointBase, UriKind.Absolute, out var endpoint) ? [endpoint] : [];
}
