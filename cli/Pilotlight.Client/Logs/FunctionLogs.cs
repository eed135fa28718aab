using System.Collections.Concurrent;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Pilotlight.Client.Deploy;

namespace Pilotlight.Client.Logs;

// WatchAsync over a list call is marked obsolete in favour of WatchList*Async; the list-then-watch form is what
// this needs (attach the pods there are, then follow changes from the list's resourceVersion).
#pragma warning disable CS0618

/// <summary>What to print of a function's logs.</summary>
/// <param name="Namespace">The function's namespace.</param>
/// <param name="Function">The GpuFunction's name.</param>
/// <param name="Container">The container; null for each pod's default (its <c>kubectl.kubernetes.io/default-container</c>, else the first).</param>
/// <param name="Follow">Keep streaming, attaching pods as they start and detaching them as they end.</param>
/// <param name="Since">Only lines newer than this (for pods running when the command starts).</param>
public sealed record LogsRequest(string Namespace, string Function, string? Container, bool Follow, TimeSpan? Since);

/// <summary>
/// Streams the logs of a function's pods, whichever they are at the moment: with <see cref="LogsRequest.Follow"/> a
/// watch on the pods labelled with the function attaches each one once its container runs (a new container after
/// a restart too) and lets it go when its stream ends, so pods that come with a scale-up or a wake from zero show
/// up without restarting the command.
/// </summary>
public sealed class FunctionLogs
{
    private const string DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container";
    private readonly IKubernetes _kubernetes;
    private readonly ApiServerRequests? _api;

    /// <summary>Reads through <paramref name="connection"/>.</summary>
    public FunctionLogs(ClusterConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _kubernetes = connection.Kubernetes;
        _api = ApiServerRequests.For(connection);
    }

    /// <summary>Reads through <paramref name="kubernetes"/>, without checking that the function exists.</summary>
    public FunctionLogs(IKubernetes kubernetes) => _kubernetes = kubernetes;

    /// <summary>
    /// Sends each line to <paramref name="onLine"/> (one at a time), and pods attached and detached to
    /// <paramref name="onNotice"/>. Without follow, returns once the current logs are out; with it, when cancelled.
    /// </summary>
    public async Task StreamAsync(LogsRequest request, Action<PodLogLine> onLine, Action<string> onNotice, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(onLine);
        ArgumentNullException.ThrowIfNull(onNotice);
        await EnsureFunctionExistsAsync(request, cancellationToken).ConfigureAwait(false);
        var gate = new Lock();
        void Emit(PodLogLine line)
        {
            lock (gate)
            {
                onLine(line);
            }
        }

        var selector = $"{ApiFunctionObserver.FunctionLabel}={request.Function}";
        var list = await _kubernetes.CoreV1.ListNamespacedPodAsync(request.Namespace, labelSelector: selector, cancellationToken: cancellationToken).ConfigureAwait(false);
        var pods = list.Items.OrderBy(p => p.Metadata.CreationTimestamp).ToList();
        if (!request.Follow)
        {
            foreach (var pod in pods.Where(p => ContainerId(p, ContainerOf(p, request)) is not null))
            {
                await CopyAsync(pod, ContainerOf(pod, request), request, follow: false, since: request.Since, Emit, cancellationToken).ConfigureAwait(false);
            }

            if (pods.Count == 0)
            {
                onNotice($"no pods of {request.Function} in {request.Namespace} (scaled to zero? the first request wakes it; -f waits for pods)");
            }

            return;
        }

        var attached = new ConcurrentDictionary<string, Task>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void Consider(V1Pod pod, TimeSpan? since)
        {
            var container = ContainerOf(pod, request);
            if (pod.Metadata.DeletionTimestamp is not null || ContainerId(pod, container) is not { } id)
            {
                return;
            }

            // One stream per container instance: a restarted container has a new ID and is attached again.
            var key = $"{pod.Metadata.Uid}/{container}/{id}";
            if (attached.ContainsKey(key))
            {
                return;
            }

            attached[key] = Task.Run(async () =>
            {
                onNotice($"+ {pod.Metadata.Name} ({container})");
                try
                {
                    await CopyAsync(pod, container, request, follow: true, since, Emit, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is HttpOperationException or HttpRequestException or IOException)
                {
                    onNotice($"! {pod.Metadata.Name}: {e.Message}");
                }

                onNotice($"- {pod.Metadata.Name} ({container})");
            }, CancellationToken.None);
        }

        foreach (var pod in pods)
        {
            Consider(pod, request.Since);
        }

        if (pods.Count == 0)
        {
            onNotice($"waiting for pods of {request.Function} in {request.Namespace} (scaled to zero: the first request wakes it)");
        }

        var resourceVersion = list.Metadata.ResourceVersion;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    var watch = _kubernetes.CoreV1.ListNamespacedPodWithHttpMessagesAsync(request.Namespace, labelSelector: selector,
                        watch: true, resourceVersion: resourceVersion, timeoutSeconds: 300, cancellationToken: cancellationToken);
                    await foreach (var (type, pod) in watch.WatchAsync<V1Pod, V1PodList>(cancellationToken: cancellationToken).ConfigureAwait(false))
                    {
                        resourceVersion = pod.Metadata.ResourceVersion ?? resourceVersion;
                        if (type is WatchEventType.Added or WatchEventType.Modified)
                        {
                            // A pod that appears after the command started is shown from its first line.
                            Consider(pod, since: null);
                        }
                    }
                }
                catch (Exception e) when (e is HttpOperationException or KubernetesException or HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
                {
                    // The watch broke (or its resourceVersion is too old): list again and go on from there.
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                    var relist = await _kubernetes.CoreV1.ListNamespacedPodAsync(request.Namespace, labelSelector: selector, cancellationToken: cancellationToken).ConfigureAwait(false);
                    foreach (var pod in relist.Items)
                    {
                        Consider(pod, since: null);
                    }

                    resourceVersion = relist.Metadata.ResourceVersion;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(attached.Values).ConfigureAwait(false);
        }
    }

    private async Task EnsureFunctionExistsAsync(LogsRequest request, CancellationToken ct)
    {
        if (_api is null)
        {
            return;
        }

        var path = $"/apis/pilotlight.dev/v1alpha1/namespaces/{Uri.EscapeDataString(request.Namespace)}/gpufunctions/{Uri.EscapeDataString(request.Function)}";
        if (await _api.GetAsync(path, ct).ConfigureAwait(false) is null)
        {
            throw new PilotlightClientException($"No GpuFunction {request.Function} in namespace {request.Namespace}.",
                "Check the name and pass -n for its namespace (kubectl get gpufunctions -A lists them).");
        }
    }

    private async Task CopyAsync(V1Pod pod, string container, LogsRequest request, bool follow, TimeSpan? since, Action<PodLogLine> emit, CancellationToken ct)
    {
        int? sinceSeconds = since is { } s ? Math.Max(1, (int)Math.Ceiling(s.TotalSeconds)) : null;
        using var stream = await _kubernetes.CoreV1.ReadNamespacedPodLogAsync(pod.Metadata.Name, request.Namespace, container: container,
            follow: follow, sinceSeconds: sinceSeconds, cancellationToken: ct).ConfigureAwait(false);
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
        {
            emit(new PodLogLine(pod.Metadata.Name, container, line));
        }
    }

    /// <summary>The container to show: the one asked for, else the pod's default, else its first.</summary>
    internal static string ContainerOf(V1Pod pod, LogsRequest request) =>
        request.Container
        ?? (pod.Metadata.Annotations?.TryGetValue(DefaultContainerAnnotation, out var preferred) == true ? preferred : null)
        ?? pod.Spec.Containers.FirstOrDefault()?.Name
        ?? "";

    /// <summary>The ID of the container's current instance once it has started (its logs exist); null before.</summary>
    internal static string? ContainerId(V1Pod pod, string container)
    {
        var status = pod.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == container);
        return status is { ContainerID: { Length: > 0 } id } && (status.State?.Running is not null || status.State?.Terminated is not null) ? id : null;
    }
}
