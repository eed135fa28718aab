using k8s;
using k8s.Models;

namespace Pilotlight.Client.Deploy;

/// <summary>What one look at a function found: its status (null while it is not there) and its pods.</summary>
public sealed record FunctionObservation(FunctionSnapshot? Function, IReadOnlyList<V1Pod> Pods);

/// <summary>Reads a function and its pods from the API server.</summary>
public interface IFunctionObserver
{
    /// <summary>The function <paramref name="function"/> as it is now.</summary>
    Task<FunctionObservation> ObserveAsync(AppliedResource function, CancellationToken cancellationToken);
}

/// <summary>The outcome of waiting: each function's last report, and whether all succeeded.</summary>
/// <param name="Reports">The last report of each function, in the order given.</param>
/// <param name="TimedOut">True when the timeout passed before every function was done.</param>
public sealed record DeployOutcome(IReadOnlyList<(AppliedResource Function, FunctionProgressReport Report)> Reports, bool TimedOut)
{
    /// <summary>True when every function is Ready (or scaled to zero).</summary>
    public bool Succeeded => !TimedOut && Reports.All(r => r.Report.Succeeded);
}

/// <summary>
/// Waits for applied functions to be Ready or Stalled, reporting each change. A Stalled function counts as failed
/// once it has stayed Stalled for <see cref="StallGrace"/>: a pod created just before the scheduler sees a new node
/// is Unschedulable for a moment, and that should not fail a deploy.
/// </summary>
public sealed class DeployWaiter(IFunctionObserver observer, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>How long a function must stay Stalled before the wait gives up on it.</summary>
    public TimeSpan StallGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the functions are looked at.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for every function in <paramref name="functions"/> to be done;
    /// <paramref name="onChange"/> gets every function's report whenever one changes.
    /// </summary>
    public async Task<DeployOutcome> WaitAsync(
        IReadOnlyList<AppliedResource> functions, TimeSpan timeout,
        Action<IReadOnlyList<(AppliedResource Function, FunctionProgressReport Report)>> onChange,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(functions);
        ArgumentNullException.ThrowIfNull(onChange);
        var started = _time.GetTimestamp();
        var reports = new FunctionProgressReport[functions.Count];
        var stalledSince = new long?[functions.Count];
        var final = new bool[functions.Count];
        while (true)
        {
            var changed = false;
            for (var i = 0; i < functions.Count; i++)
            {
                if (final[i])
                {
                    continue;
                }

                var seen = await observer.ObserveAsync(functions[i], cancellationToken).ConfigureAwait(false);
                var report = FunctionProgress.Assess(seen.Function, seen.Pods, functions[i].Generation);
                stalledSince[i] = report.Stage == DeployStage.Stalled ? stalledSince[i] ?? _time.GetTimestamp() : null;
                final[i] = report.Succeeded || (stalledSince[i] is { } since && _time.GetElapsedTime(since) >= StallGrace);
                changed |= report != reports[i];
                reports[i] = report;
            }

            var snapshot = functions.Select((f, i) => (f, reports[i])).ToList();
            if (changed)
            {
                onChange(snapshot);
            }

            if (final.All(f => f))
            {
                return new DeployOutcome(snapshot, TimedOut: false);
            }

            if (_time.GetElapsedTime(started) >= timeout)
            {
                return new DeployOutcome(snapshot, TimedOut: true);
            }

            await Task.Delay(PollInterval, _time, cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>Observes functions through the API server: the GpuFunction object and the pods labelled with its name.</summary>
public sealed class ApiFunctionObserver : IFunctionObserver
{
    /// <summary>The label the operator puts on a function's pods (Pilotlight.Contracts' FunctionLabels.Function).</summary>
    public const string FunctionLabel = "pilotlight.dev/function";

    private readonly IKubernetes _kubernetes;
    private readonly ApiServerRequests _api;

    /// <summary>Observes through <paramref name="connection"/>.</summary>
    public ApiFunctionObserver(ClusterConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _kubernetes = connection.Kubernetes;
        _api = ApiServerRequests.For(connection);
    }

    /// <inheritdoc/>
    public async Task<FunctionObservation> ObserveAsync(AppliedResource function, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(function);
        var json = await _api.GetAsync(function.Resource.PathOf(function.Namespace, function.Name), cancellationToken).ConfigureAwait(false);
        var pods = await _kubernetes.CoreV1.ListNamespacedPodAsync(function.Namespace ?? "default",
            labelSelector: $"{FunctionLabel}={function.Name}", cancellationToken: cancellationToken).ConfigureAwait(false);
        return new FunctionObservation(json is null ? null : FunctionSnapshot.FromJson(json), [.. pods.Items]);
    }
}
