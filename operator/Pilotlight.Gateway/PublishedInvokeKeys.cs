using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>
/// The invoke-key verifiers the operator publishes in one ConfigMap, kept current by a watch of that ConfigMap alone
/// (a field selector on its name, which the chart's Role names too): the gateway reads no Secret. A revoked key
/// stops working as soon as the rewritten ConfigMap is seen; a deleted or broken ConfigMap opens nothing.
/// </summary>
public sealed partial class PublishedInvokeKeys
{
    private readonly Informer<V1ConfigMap>? _informer;
    private readonly ObjectKey _configMap;
    private readonly ILogger _logger;
    private volatile InvokeKeySet _current = InvokeKeySet.Empty;

    /// <summary>Verifiers from the ConfigMap <paramref name="configMap"/> (namespace and name), read through <paramref name="client"/>.</summary>
    public PublishedInvokeKeys(IKubernetes client, ObjectKey configMap, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(configMap.Namespace);
        _configMap = configMap;
        _logger = logger ?? NullLogger.Instance;
        _informer = new Informer<V1ConfigMap>(ListWatch(client, configMap), time: time, logger: _logger);
        _informer.AddHandler(_ => Refresh());
    }

    /// <summary>A fixed set, already synced (tests).</summary>
    internal PublishedInvokeKeys(InvokeKeySet keys)
    {
        _configMap = new ObjectKey("", "");
        _logger = NullLogger.Instance;
        _current = keys;
    }

    /// <summary>The verifiers now in force.</summary>
    public InvokeKeySet Current => _current;

    /// <summary>True once the ConfigMap was listed (found or not); until then no key can be checked.</summary>
    public bool HasSynced => _informer?.HasSynced ?? true;

    /// <summary>Watches the ConfigMap until <paramref name="cancellationToken"/> fires.</summary>
    public Task RunAsync(CancellationToken cancellationToken) => _informer?.RunAsync(cancellationToken) ?? Task.CompletedTask;

    private void Refresh()
    {
        string? text = null;
        _informer!.Get(_configMap)?.Data?.TryGetValue(InvokeKeys.VerifiersField, out text);
        var keys = InvokeKeySet.Parse(text);
        if (text is not null && keys.Count == 0 && text.Trim() != "[]")
        {
            LogUnreadable(_configMap.Namespace!, _configMap.Name);
        }

        _current = keys;
        LogLoaded(keys.Count);
    }

#pragma warning disable CS0618 // one watch mechanism for every kind, as in ControllerRuntime's ListWatch
    private static ListWatch<V1ConfigMap> ListWatch(IKubernetes client, ObjectKey configMap)
    {
        var byName = $"metadata.name={configMap.Name}";
        return new ListWatch<V1ConfigMap>(
            "configmaps",
            async (cont, limit, ct) =>
            {
                var page = await client.CoreV1.ListNamespacedConfigMapAsync(configMap.Namespace, continueParameter: cont, limit: limit,
                    fieldSelector: byName, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1ConfigMap>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => client.CoreV1.ListNamespacedConfigMapWithHttpMessagesAsync(configMap.Namespace, watch: true,
                    allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: timeout, fieldSelector: byName, cancellationToken: ct)
                .WatchAsync<V1ConfigMap, V1ConfigMapList>(onError, ct));
    }
#pragma warning restore CS0618

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Invoke keys: {Count} verifier(s) in force")]
    private partial void LogLoaded(int count);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "Invoke keys: ConfigMap {Namespace}/{Name} holds no readable verifier list; no key is accepted")]
    private partial void LogUnreadable(string @namespace, string name);
}
