using System.Reflection;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Pilotlight.ControllerRuntime;

// WatchAsync over a list call is marked obsolete in favour of WatchList*Async,
// but those have no typed variant for custom objects; one mechanism for all kinds.
#pragma warning disable CS0618

/// <summary>One page of a list call.</summary>
public sealed record ListPage<T>(IList<T> Items, string ResourceVersion, string? Continue);

/// <summary>
/// How an <see cref="Informer{T}"/> lists and watches one kind: a paged list
/// and a watch from a resourceVersion, with bookmarks.
/// </summary>
public sealed class ListWatch<T> where T : IKubernetesObject<V1ObjectMeta>
{
    private readonly Func<string?, int, CancellationToken, Task<ListPage<T>>> _list;
    private readonly Func<string, int, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> _watch;

    /// <summary>A list/watch from two calls.</summary>
    /// <param name="resource">What is listed, for logs and metrics (e.g. <c>pods</c>).</param>
    /// <param name="list">List one page: continue token (null first), page size.</param>
    /// <param name="watch">Watch from a resourceVersion for at most the given seconds, reporting error events to the callback.</param>
    public ListWatch(
        string resource,
        Func<string?, int, CancellationToken, Task<ListPage<T>>> list,
        Func<string, int, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> watch)
    {
        Resource = resource;
        _list = list;
        _watch = watch;
    }

    /// <summary>The plural resource name, used in logs and as a metric label.</summary>
    public string Resource { get; }

    internal Task<ListPage<T>> ListAsync(string? continueToken, int limit, CancellationToken ct) =>
        _list(continueToken, limit, ct);

    internal IAsyncEnumerable<(WatchEventType, T)> WatchAsync(string resourceVersion, int timeoutSeconds, Action<Exception> onError, CancellationToken ct) =>
        _watch(resourceVersion, timeoutSeconds, onError, ct);
}

/// <summary>Factories for the list/watches the operator needs.</summary>
public static class ListWatch
{
    /// <summary>
    /// A custom resource across all namespaces (or one, when
    /// <paramref name="namespace"/> is set). Group, version and plural come
    /// from the type's <see cref="KubernetesEntityAttribute"/>.
    /// </summary>
    public static ListWatch<T> ForCustomResource<T>(IKubernetes client, string? @namespace = null, string? labelSelector = null)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        var entity = typeof(T).GetCustomAttribute<KubernetesEntityAttribute>()
            ?? throw new ArgumentException($"{typeof(T).Name} has no [KubernetesEntity] attribute");
        string group = entity.Group, version = entity.ApiVersion, plural = entity.PluralName;
        return new ListWatch<T>(
            plural,
            async (cont, limit, ct) =>
            {
                var page = @namespace is null
                    ? await client.CustomObjects.ListClusterCustomObjectWithHttpMessagesAsync<CustomResourceList<T>>(
                        group, version, plural, continueParameter: cont, limit: limit, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false)
                    : await client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync<CustomResourceList<T>>(
                        group, version, @namespace, plural, continueParameter: cont, limit: limit, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<T>(page.Body.Items ?? new List<T>(), page.Body.Metadata.ResourceVersion, page.Body.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => (@namespace is null
                    ? client.CustomObjects.ListClusterCustomObjectWithHttpMessagesAsync<CustomResourceList<T>>(
                        group, version, plural, watch: true, allowWatchBookmarks: true, resourceVersion: rv,
                        timeoutSeconds: timeout, labelSelector: labelSelector, cancellationToken: ct)
                    : client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync<CustomResourceList<T>>(
                        group, version, @namespace, plural, watch: true, allowWatchBookmarks: true, resourceVersion: rv,
                        timeoutSeconds: timeout, labelSelector: labelSelector, cancellationToken: ct))
                .WatchAsync<T, CustomResourceList<T>>(onError, ct));
    }

    /// <summary>Pods in all namespaces matching <paramref name="labelSelector"/>.</summary>
    public static ListWatch<V1Pod> ForPods(IKubernetes client, string? labelSelector = null, string? fieldSelector = null) =>
        new(
            "pods",
            async (cont, limit, ct) =>
            {
                var page = await client.CoreV1.ListPodForAllNamespacesAsync(
                    continueParameter: cont, limit: limit, labelSelector: labelSelector, fieldSelector: fieldSelector,
                    cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1Pod>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.CoreV1.ListPodForAllNamespacesWithHttpMessagesAsync(
                    watch: true, allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: timeout,
                    labelSelector: labelSelector, fieldSelector: fieldSelector, cancellationToken: ct)
                .WatchAsync<V1Pod, V1PodList>(onError, ct));

    /// <summary>
    /// core/v1 Endpoints in one namespace (served by every API server; EndpointSlice is only beta on
    /// 1.20), narrowed by <paramref name="fieldSelector"/> (e.g. <c>metadata.name=NAME</c>).
    /// </summary>
    public static ListWatch<V1Endpoints> ForEndpoints(IKubernetes client, string @namespace, string? fieldSelector = null) =>
        new(
            "endpoints",
            async (cont, limit, ct) =>
            {
                var page = await client.CoreV1.ListNamespacedEndpointsAsync(@namespace,
                    continueParameter: cont, limit: limit, fieldSelector: fieldSelector, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1Endpoints>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.CoreV1.ListNamespacedEndpointsWithHttpMessagesAsync(@namespace,
                    watch: true, allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: timeout,
                    fieldSelector: fieldSelector, cancellationToken: ct)
                .WatchAsync<V1Endpoints, V1EndpointsList>(onError, ct));

    /// <summary>NetworkPolicies in all namespaces matching <paramref name="labelSelector"/>.</summary>
    public static ListWatch<V1NetworkPolicy> ForNetworkPolicies(IKubernetes client, string? labelSelector = null) =>
        new(
            "networkpolicies",
            async (cont, limit, ct) =>
            {
                var page = await client.NetworkingV1.ListNetworkPolicyForAllNamespacesAsync(
                    continueParameter: cont, limit: limit, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1NetworkPolicy>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.NetworkingV1.ListNetworkPolicyForAllNamespacesWithHttpMessagesAsync(
                    watch: true, allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: timeout,
                    labelSelector: labelSelector, cancellationToken: ct)
                .WatchAsync<V1NetworkPolicy, V1NetworkPolicyList>(onError, ct));

    /// <summary>Services in all namespaces matching <paramref name="labelSelector"/> (narrowed by <paramref name="fieldSelector"/>).</summary>
    public static ListWatch<V1Service> ForServices(IKubernetes client, string? labelSelector = null, string? fieldSelector = null) =>
        new(
            "services",
            async (cont, limit, ct) =>
            {
                var page = await client.CoreV1.ListServiceForAllNamespacesAsync(
                    continueParameter: cont, limit: limit, labelSelector: labelSelector, fieldSelector: fieldSelector, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1Service>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.CoreV1.ListServiceForAllNamespacesWithHttpMessagesAsync(
                    watch: true, allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: timeout,
                    labelSelector: labelSelector, fieldSelector: fieldSelector, cancellationToken: ct)
                .WatchAsync<V1Service, V1ServiceList>(onError, ct));

    /// <summary>Nodes matching <paramref name="labelSelector"/>.</summary>
    public static ListWatch<V1Node> ForNodes(IKubernetes client, string? labelSelector = null) =>
        new(
            "nodes",
            async (cont, limit, ct) =>
            {
                var page = await client.CoreV1.ListNodeAsync(
                    continueParameter: cont, limit: limit, labelSelector: labelSelector, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1Node>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.CoreV1.ListNodeWithHttpMessagesAsync(
                    watch: true, allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: timeout,
                    labelSelector: labelSelector, cancellationToken: ct)
                .WatchAsync<V1Node, V1NodeList>(onError, ct));
}

/// <summary>The list envelope of a custom resource.</summary>
public sealed class CustomResourceList<T> : IKubernetesObject<V1ListMeta>, IItems<T>
    where T : IKubernetesObject<V1ObjectMeta>
{
    /// <inheritdoc />
    [System.Text.Json.Serialization.JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = "";

    /// <inheritdoc />
    [System.Text.Json.Serialization.JsonPropertyName("kind")]
    public string Kind { get; set; } = "";

    /// <inheritdoc />
    [System.Text.Json.Serialization.JsonPropertyName("metadata")]
    public V1ListMeta Metadata { get; set; } = new();

    /// <inheritdoc />
    [System.Text.Json.Serialization.JsonPropertyName("items")]
    public IList<T> Items { get; set; } = [];
}
