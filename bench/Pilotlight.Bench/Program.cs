using Pilotlight.Bench;

// make bench: `Pilotlight.Bench <results-dir>` runs every benchmark on a fresh
// local control plane. The child modes are what the parent measures in a
// separate process, so their peak RSS is their own.
// A relative results folder is the repository's, wherever `dotnet run` starts us.
if (args.Length > 1 && args[0] is not "noop-controller" || args.Length == 1)
{
    args[0] = Path.IsPathRooted(args[0]) ? args[0] : Path.Combine(Pilotlight.Testing.RepositoryRoot.Path, args[0]);
}

return args switch
{
    ["noop-controller", var kubeconfig, var ns, var expect, var mode] =>
        await NoopControllerChild.RunAsync(kubeconfig, ns, int.Parse(expect, System.Globalization.CultureInfo.InvariantCulture), mode == "list-only"),
    [var results] => await ControllerBench.RunAsync(results) + await GatewayBench.RunAsync(results) + await MeteringBench.RunAsync(results)
        + await SidecarsBench.RunAsync(results) + await PrewarmBench.RunAsync(results) + await SandboxBench.RunAsync(results) + await BurstBench.RunAsync(results)
        + await WarmRoutingBench.RunAsync(results) + await ProtocolsBench.RunAsync(results) + await GatewayReplicasBench.RunAsync(results)
        + await RouteIndexBench.RunAsync(results) + await ConditionMetricsBench.RunAsync(results, 10_000, 3) + await OperatorScaleBench.RunAsync(results) + await CliStartupBench.RunAsync(results) + await RealNodeColdStartBench.RunAsync(results, required: false),
    [var results, "metering"] => await MeteringBench.RunAsync(results),
    [var results, "sidecars"] => await SidecarsBench.RunAsync(results),
    [var results, "controller"] => await ControllerBench.RunAsync(results),
    [var results, "gateway"] => await GatewayBench.RunAsync(results),
    [var results, "prewarm"] => await PrewarmBench.RunAsync(results),
    [var results, "sandbox"] => await SandboxBench.RunAsync(results),
    [var results, "burst"] => await BurstBench.RunAsync(results),
    [var results, "warm-routing"] => await WarmRoutingBench.RunAsync(results),
    [var results, "protocols"] => await ProtocolsBench.RunAsync(results),
    [var results, "gateway-replicas"] => await GatewayReplicasBench.RunAsync(results),
    [var results, "route-index"] => await RouteIndexBench.RunAsync(results),
    [var results, "operator-scale"] => await OperatorScaleBench.RunAsync(results),
    // A quick run: `operator-scale 200 30` (sizes, comma-separated; the steady-state window in seconds).
    [var results, "operator-scale", var sizes, .. var rest] when rest.Length <= 1 => await OperatorScaleBench.RunAsync(results,
        [.. sizes.Split(',').Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture))],
        rest is [var seconds] ? TimeSpan.FromSeconds(int.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture)) : null),
    // What the API server pays per status shape: `status-shapes [N [ROUNDS]]` (default 3,000 and 2).
    [var results, "status-shapes", .. var shapeArgs] when shapeArgs.Length <= 2 => await StatusShapesBench.RunAsync(results,
        shapeArgs is [var n, ..] ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 3000,
        shapeArgs is [_, var r] ? int.Parse(r, System.Globalization.CultureInfo.InvariantCulture) : 2),
    // What the condition gauges cost at a scrape: `condition-metrics [N [ROUNDS]]` (default 10,000 and 3).
    [var results, "condition-metrics", .. var cmArgs] when cmArgs.Length <= 2 => await ConditionMetricsBench.RunAsync(results,
        cmArgs is [var cmN, ..] ? int.Parse(cmN, System.Globalization.CultureInfo.InvariantCulture) : 10_000,
        cmArgs is [_, var cmR] ? int.Parse(cmR, System.Globalization.CultureInfo.InvariantCulture) : 3),
    [var results, "cli-startup"] => await CliStartupBench.RunAsync(results),
    [var results, "real-node-cold-start"] => await RealNodeColdStartBench.RunAsync(results, required: true),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Pilotlight.Bench <results-dir> [controller|gateway|metering|sidecars|prewarm|sandbox|burst|warm-routing|protocols|gateway-replicas|route-index|operator-scale [SIZES [WINDOW_S]]|status-shapes [N [ROUNDS]]|condition-metrics [N [ROUNDS]]|cli-startup|real-node-cold-start]");
    return 2;
}
