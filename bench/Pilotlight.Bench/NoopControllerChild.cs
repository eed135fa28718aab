using System.Diagnostics;
using System.Text.Json;
using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Bench;

/// <summary>What a child run reports on its last line of stdout.</summary>
internal sealed record ChildReport(double Seconds, long PeakRssBytes, int Reconciled);

/// <summary>
/// The measured process: a controller whose reconcile does nothing, over
/// every GpuFunction in a namespace, until each has been reconciled once.
/// The list-only mode stops once the informer has listed: the baseline.
/// </summary>
internal static class NoopControllerChild
{
    public static async Task<int> RunAsync(string kubeconfig, string ns, int expect, bool listOnly)
    {
        var clock = Stopwatch.StartNew();
        using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
        var informer = new Informer<GpuFunction>(ListWatch.ForCustomResource<GpuFunction>(client, ns));
        var reconciler = new CountingReconciler(expect);
        var host = new ControllerHost(client, metrics: new ControllerMetrics(Prometheus.Metrics.NewCustomRegistry()))
            .Add(new Controller<GpuFunction>("bench", informer, reconciler, new ControllerOptions { Workers = 4 }));
        using var stop = new CancellationTokenSource();
        var run = host.RunAsync(stop.Token);
        await (listOnly ? informer.Synced : reconciler.AllDone).WaitAsync(TimeSpan.FromMinutes(5));
        var seconds = clock.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await run;
        Console.WriteLine(JsonSerializer.Serialize(new ChildReport(seconds, PeakRss(), reconciler.Count)));
        return 0;
    }

    /// <summary>VmHWM: the process's peak resident set.</summary>
    private static long PeakRss()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    private sealed class CountingReconciler(int expect) : IReconciler<GpuFunction>
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _count;

        public Task AllDone => _done.Task;

        public int Count => Volatile.Read(ref _count);

        public Task<ReconcileResult> ReconcileAsync(GpuFunction entity, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _count) >= expect)
            {
                _done.TrySetResult();
            }

            return Task.FromResult(ReconcileResult.Done);
        }

        public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
