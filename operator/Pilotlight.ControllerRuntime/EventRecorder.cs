using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Pilotlight.ControllerRuntime;

/// <summary>
/// Writes Kubernetes Events about an object (core/v1, served by every
/// version). Best effort: a failed write is logged, never thrown, so an
/// Event can't fail a reconcile. Messages must not carry secrets.
/// </summary>
public sealed class EventRecorder(IKubernetes client, string component, TimeProvider? time = null, ILogger? logger = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    /// <summary>Records a Normal event.</summary>
    public Task NormalAsync(IKubernetesObject<V1ObjectMeta> about, string reason, string message, CancellationToken ct = default) =>
        RecordAsync(about, "Normal", reason, message, ct);

    /// <summary>Records a Warning event.</summary>
    public Task WarningAsync(IKubernetesObject<V1ObjectMeta> about, string reason, string message, CancellationToken ct = default) =>
        RecordAsync(about, "Warning", reason, message, ct);

    private async Task RecordAsync(IKubernetesObject<V1ObjectMeta> about, string type, string reason, string message, CancellationToken ct)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var ns = about.Metadata.NamespaceProperty ?? "default";
        var ev = new Corev1Event
        {
            Metadata = new V1ObjectMeta { GenerateName = $"{about.Metadata.Name}.", NamespaceProperty = ns },
            InvolvedObject = new V1ObjectReference
            {
                ApiVersion = about.ApiVersion,
                Kind = about.Kind,
                Name = about.Metadata.Name,
                NamespaceProperty = about.Metadata.NamespaceProperty,
                Uid = about.Metadata.Uid,
                ResourceVersion = about.Metadata.ResourceVersion,
            },
            Type = type,
            Reason = reason,
            Message = message.Length > 1024 ? message[..1024] : message,
            Source = new V1EventSource { Component = component },
            ReportingComponent = component,
            ReportingInstance = component,
            FirstTimestamp = now,
            LastTimestamp = now,
            Count = 1,
        };
        try
        {
            await client.CoreV1.CreateNamespacedEventAsync(ev, ns, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _logger.LogWarning("Could not record event {Reason} on {Kind} {Namespace}/{Name}: {Error}",
                reason, about.Kind, ns, about.Metadata.Name, ex.Message);
        }
    }
}
