using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Pilotlight.Gateway;

namespace Pilotlight.Bench;

/// <summary>
/// What one pod event costs the gateway's routes with 10,000 pods of 10,000 functions cached: the routes as they are
/// (<see cref="FunctionRoutes"/>: the event's function rebuilt from the pod cache's function index, the first list
/// built once per function after sync) against the routes before (reimplemented here as the baseline: every event
/// rebuilds its function's route from a scan of every cached pod of the namespace, the first list too). Both run in
/// this process on the same informer fed from memory (no API server), one after the other, five times; the figures are
/// the first list (from the informer's start to every route built) and the time per pod event over a stream of
/// readiness changes (from the first event written to the last route rebuilt).
/// </summary>
internal static class RouteIndexBench
{
    private const int Functions = 10_000;
    /// <summary>Pod events per measure: more for the index, whose events are short enough for one GC pause to weigh on a few thousand.</summary>
    private const int ScanEvents = 1_000;

    private const int IndexedEvents = 20_000;
    private const int Repetitions = 5;
    private const string Ns = "bench";

    private sealed record Sample(double FirstListMs, double PerEventUs);

    public static async Task<int> RunAsync(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        var runs = new List<(Sample Baseline, Sample Indexed)>();
        for (var rep = 1; rep <= Repetitions; rep++)
        {
            // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
            Sample baseline, indexed;
            if (rep % 2 == 1)
            {
                baseline = await MeasureAsync(indexed: false);
                indexed = await MeasureAsync(indexed: true);
            }
            else
            {
                indexed = await MeasureAsync(indexed: true);
                baseline = await MeasureAsync(indexed: false);
            }

            runs.Add((baseline, indexed));
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"bench: route-index: repetition {rep}: per event {baseline.PerEventUs:F1} µs (scan) vs {indexed.PerEventUs:F1} µs (index); first list {baseline.FirstListMs:F0} ms vs {indexed.FirstListMs:F0} ms"));
        }

        var report = Render(runs);
        await File.WriteAllTextAsync(Path.Combine(resultsDir, "route-index.md"), report);
        Console.Write(report);
        return 0;
    }

    private static async Task<Sample> MeasureAsync(bool indexed)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var stop = new CancellationTokenSource();
        var events = Channel.CreateUnbounded<(WatchEventType, V1Pod)>();
        var listed = Enumerable.Range(0, Functions).Select(i => Pod($"fn-{i}", ready: true, version: 1)).ToList();
        var pods = new Informer<V1Pod>(new ListWatch<V1Pod>("pods",
                (_, _, _) => Task.FromResult(new ListPage<V1Pod>(listed, "1", null)),
                (_, _, _, ct) => events.Reader.ReadAllAsync(ct)),
            new InformerOptions { Transform = GatewayPods.KeepRoutingFields });
        var known = Enumerable.Range(0, Functions).Select(i => new GpuFunction
        {
            Metadata = new V1ObjectMeta { Name = $"fn-{i}", NamespaceProperty = Ns, Uid = $"uid-fn-{i}", ResourceVersion = "1" },
        }).ToList();
        var functions = new Informer<GpuFunction>(new ListWatch<GpuFunction>("gpufunctions",
            (_, _, _) => Task.FromResult(new ListPage<GpuFunction>(known, "1", null)),
            (_, _, _, ct) => Forever<GpuFunction>(ct)));

        // Route rebuilds, counted; the measure ends when the expected number has happened.
        var rebuilt = 0;
        var target = Functions;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Count()
        {
            if (Interlocked.Increment(ref rebuilt) == Volatile.Read(ref target))
            {
                done.TrySetResult();
            }
        }

        if (indexed)
        {
            var routes = new FunctionRoutes(pods, functions, 8099);
            routes.PodsChanged += _ => Count();
        }
        else
        {
            var routes = new ScanningRoutes(pods, functions, 8099);
            routes.Rebuilt += Count;
        }

        var functionsRun = functions.RunAsync(stop.Token);
        await functions.Synced.WaitAsync(TimeSpan.FromMinutes(1));

        var clock = Stopwatch.StartNew();
        var podsRun = pods.RunAsync(stop.Token);
        await done.Task.WaitAsync(TimeSpan.FromMinutes(10));
        var firstList = clock.Elapsed.TotalMilliseconds;

        // A stream of readiness changes, each to another function's pod, made before the clock starts.
        var count = indexed ? IndexedEvents : ScanEvents;
        var changes = Enumerable.Range(0, count).Select(k => Pod($"fn-{k * 7919 % Functions}", ready: k % 2 == 1, version: 2 + k)).ToList();
        done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref rebuilt, 0);
        Volatile.Write(ref target, count);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        clock.Restart();
        foreach (var change in changes)
        {
            events.Writer.TryWrite((WatchEventType.Modified, change));
        }

        await done.Task.WaitAsync(TimeSpan.FromMinutes(10));
        var perEvent = clock.Elapsed.TotalMilliseconds * 1000 / count;

        await stop.CancelAsync();
        await Task.WhenAll(functionsRun, podsRun);
        return new Sample(firstList, perEvent);
    }

    private static V1Pod Pod(string function, bool ready, int version) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = $"{function}-pod",
            NamespaceProperty = Ns,
            Uid = $"pod-{function}",
            ResourceVersion = version.ToString(CultureInfo.InvariantCulture),
            CreationTimestamp = new DateTime(2026, 12, 1, 9, 0, 0, DateTimeKind.Utc),
            Labels = new Dictionary<string, string>
            {
                [FunctionLabels.Function] = function,
                [FunctionLabels.Role] = FunctionLabels.RoleServing,
                [FunctionLabels.ManagedBy] = FunctionLabels.ManagedByValue,
            },
            OwnerReferences = [new V1OwnerReference { Kind = GpuFunction.KindName, Uid = $"uid-{function}", Name = function, ApiVersion = "pilotlight.dev/v1alpha1", Controller = true }],
        },
        Status = new V1PodStatus
        {
            Phase = "Running",
            PodIP = "10.1.0.1",
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
        },
    };

    private static async IAsyncEnumerable<(WatchEventType, T)> Forever<T>([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
        yield break;
    }

    /// <summary>The routes before the function index: each pod event rebuilds its function's route from every cached pod of the namespace.</summary>
    private sealed class ScanningRoutes
    {
        private readonly ConcurrentDictionary<ObjectKey, FunctionRoute> _routes = new();
        private readonly Informer<V1Pod> _pods;
        private readonly Informer<GpuFunction> _functions;
        private readonly int _shimPort;

        public ScanningRoutes(Informer<V1Pod> pods, Informer<GpuFunction> functions, int shimPort)
        {
            _pods = pods;
            _functions = functions;
            _shimPort = shimPort;
            pods.AddHandler(e =>
            {
                if (e.Object.Metadata.Labels?.TryGetValue(FunctionLabels.Function, out var fn) == true)
                {
                    Rebuild(_routes.GetOrAdd(new ObjectKey(e.Object.Metadata.NamespaceProperty, fn), k => new FunctionRoute(k)));
                }
            });
        }

        public event Action? Rebuilt;

        private void Rebuild(FunctionRoute route)
        {
            var function = _functions.Get(route.Key);
            var running = FunctionRoutes.Routable(_pods.List(route.Key.Namespace), route.Key.Name,
                function?.Metadata.DeletionTimestamp is null ? function?.Metadata.Uid : null);
            var live = running.Where(FunctionLabels.IsServing).ToList();
            PodEndpoint Endpoint(V1Pod p) => new(p.Metadata.Name, new Uri($"http://{p.Status.PodIP}:{_shimPort}"), p.Metadata.CreationTimestamp,
                p.Status.Conditions?.FirstOrDefault(c => c.Type == "Ready" && c.Status == "True")?.LastTransitionTime, FunctionOwnership.OwnerUid(p));
            route.SetReady(
                live.Where(PodReadiness.IsReady).Select(Endpoint).ToList(),
                live.Where(p => !PodReadiness.IsReady(p)).Select(Endpoint).ToList(),
                running.Where(p => FunctionLabels.IsWarm(p) && PodReadiness.IsReady(p)).Select(Endpoint).ToList());
            Rebuilt?.Invoke();
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>"median (min – max)" of one figure over the repetitions.</summary>
    private static string Spread(IEnumerable<double> values, string format, string unit = "")
    {
        var all = values.ToArray();
        var inv = CultureInfo.InvariantCulture;
        return $"{Median(all).ToString(format, inv)}{unit} ({all.Min().ToString(format, inv)} – {all.Max().ToString(format, inv)})";
    }

    private static string Render(List<(Sample Baseline, Sample Indexed)> runs)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Route index: the gateway's route update per pod event at 10,000 functions");
        sb.AppendLine();
        sb.AppendLine(inv, $"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores, in one process with no API server: the gateway's pod");
        sb.AppendLine(inv, $"informer (its routing transform on) fed from memory with {Functions:N0} ready pods, one for each of {Functions:N0} GpuFunctions in one");
        sb.AppendLine("namespace, then a stream of readiness changes, each to another function's pod. **Indexed**: `FunctionRoutes` as it is (a pod");
        sb.AppendLine("event rebuilds its function's route from the pod cache's function index; the first list builds each route once, after sync).");
        sb.AppendLine("**Scan** (the baseline, reimplemented in the bench as the code was): every pod event rebuilds its function's route from a scan");
        sb.AppendLine("of every cached pod of the namespace, during the first list too. Both rebuild the route the same way otherwise.");
        sb.AppendLine(inv, $"{Repetitions} repetitions, the two alternating which runs first; the per-event figure is the time from the first event written");
        sb.AppendLine(inv, $"to the watch to the last route rebuilt, divided by their number ({ScanEvents:N0} events for the scan, {IndexedEvents:N0} for the index; informer");
        sb.AppendLine("work included). The first list is from the informer's start to every route built.");
        sb.AppendLine();
        sb.AppendLine("| repetition | per event, scan | per event, indexed | ratio | first list, scan | first list, indexed | ratio |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        for (var i = 0; i < runs.Count; i++)
        {
            var (b, x) = runs[i];
            sb.AppendLine(inv, $"| {i + 1} | {b.PerEventUs:F1} µs | {x.PerEventUs:F1} µs | {b.PerEventUs / x.PerEventUs:F0}x | {b.FirstListMs:F0} ms | {x.FirstListMs:F0} ms | {b.FirstListMs / x.FirstListMs:F0}x |");
        }

        sb.AppendLine();
        sb.AppendLine("| median (min – max) over the repetitions | scan (baseline) | indexed | scan / indexed |");
        sb.AppendLine("|---|---:|---:|---:|");
        sb.AppendLine(inv, $"| per pod event | {Spread(runs.Select(r => r.Baseline.PerEventUs), "F1", " µs")} | {Spread(runs.Select(r => r.Indexed.PerEventUs), "F1", " µs")} | {Spread(runs.Select(r => r.Baseline.PerEventUs / r.Indexed.PerEventUs), "F0", "x")} |");
        sb.AppendLine(inv, $"| first list of {Functions:N0} pods | {Spread(runs.Select(r => r.Baseline.FirstListMs), "F0", " ms")} | {Spread(runs.Select(r => r.Indexed.FirstListMs), "F0", " ms")} | {Spread(runs.Select(r => r.Baseline.FirstListMs / r.Indexed.FirstListMs), "F0", "x")} |");
        sb.AppendLine();
        sb.AppendLine("The scan's cost grows with every pod the gateway caches (and its first list with their square); the index's with the pods");
        sb.AppendLine("of the event's function only. Run: `dotnet run --project bench/Pilotlight.Bench -c Release -- bench/results route-index`.");
        return sb.ToString();
    }
}
