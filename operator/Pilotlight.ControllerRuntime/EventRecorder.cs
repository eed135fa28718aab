using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace Pilotlight.ControllerRuntime;

/// <summary>
/// Writes Kubernetes Events about an object (core/v1, served by every
/// version). Best effort: a failed write is logged, never thrown, so an
/// Event can't fail a reconcile. Messages must not carry secrets.
/// Repeats are folded as client-go's EventCorrelator folds them (see
/// <see cref="EventRecorderOptions"/>): the same event again within the window
/// patches the existing Event's <c>count</c> and <c>lastTimestamp</c>; past
/// ten distinct messages for one reason the rest share one "combined" Event;
/// and each object has a token-bucket rate limit whose drops are counted in
/// <c>pilotlight_events_dropped_total{reason="rate_limited"}</c>.
/// </summary>
public sealed class EventRecorder
{
    private readonly IKubernetes _client;
    private readonly string _component;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly EventCorrelator _correlator;
    private readonly Counter.Child _rateLimited;

    /// <summary>A recorder writing as <paramref name="component"/>; <paramref name="registry"/> (default: the default registry) gets its metric.</summary>
    public EventRecorder(IKubernetes client, string component, TimeProvider? time = null, ILogger? logger = null,
        EventRecorderOptions? options = null, CollectorRegistry? registry = null)
    {
        _client = client;
        _component = component;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _correlator = new EventCorrelator(options ?? new EventRecorderOptions(), _time);
        _rateLimited = Metrics.WithCustomRegistry(registry ?? Metrics.DefaultRegistry)
            .CreateCounter("pilotlight_events_dropped_total", "Kubernetes Events not written, by reason (rate_limited).", "reason")
            .WithLabels("rate_limited");
    }

    /// <summary>Records a Normal event.</summary>
    public Task NormalAsync(IKubernetesObject<V1ObjectMeta> about, string reason, string message, CancellationToken ct = default) =>
        RecordAsync(about, "Normal", reason, message, ct);

    /// <summary>Records a Warning event.</summary>
    public Task WarningAsync(IKubernetesObject<V1ObjectMeta> about, string reason, string message, CancellationToken ct = default) =>
        RecordAsync(about, "Warning", reason, message, ct);

    private async Task RecordAsync(IKubernetesObject<V1ObjectMeta> about, string type, string reason, string message, CancellationToken ct)
    {
        message = message.Length > 1024 ? message[..1024] : message;
        var ns = about.Metadata.NamespaceProperty ?? "default";
        var series = _correlator.Observe(new EventCorrelator.Facts(
            _component, about.Metadata.Uid, about.Kind, about.Metadata.NamespaceProperty, about.Metadata.Name, type, reason, message));
        if (series is null)
        {
            _rateLimited.Inc();
            _logger.LogDebug("Event {Reason} on {Kind} {Namespace}/{Name} dropped by the rate limit", reason, about.Kind, ns, about.Metadata.Name);
            return;
        }

        try
        {
            await series.Writes.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            // The latest state, so writes of one Event never go backwards however the waiters were ordered.
            var (count, last, text) = series.Snapshot();
            if (count <= series.Written)
            {
                return;
            }

            if (series.Name is { } name && await PatchAsync(ns, name, count, last, text, ct).ConfigureAwait(false))
            {
                series.Written = count;
                return;
            }

            var created = await _client.CoreV1.CreateNamespacedEventAsync(
                NewEvent(about, ns, type, reason, text, series.First, last, count), ns, cancellationToken: ct).ConfigureAwait(false);
            series.Name = created.Metadata.Name;
            series.Written = count;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _logger.LogWarning("Could not record event {Reason} on {Kind} {Namespace}/{Name}: {Error}",
                reason, about.Kind, ns, about.Metadata.Name, ex.Message);
        }
        finally
        {
            series.Writes.Release();
        }
    }

    /// <summary>Merge-patches count, lastTimestamp and message; false when the Event is gone (404), so a new one is made.</summary>
    private async Task<bool> PatchAsync(string ns, string name, int count, DateTimeOffset last, string message, CancellationToken ct)
    {
        var patch = new JsonObject
        {
            ["count"] = count,
            ["lastTimestamp"] = last.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
            ["message"] = message,
        };
        try
        {
            await _client.CoreV1.PatchNamespacedEventAsync(
                new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch), name, ns, cancellationToken: ct).ConfigureAwait(false);
            return true;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private Corev1Event NewEvent(IKubernetesObject<V1ObjectMeta> about, string ns, string type, string reason, string message,
        DateTimeOffset first, DateTimeOffset last, int count) => new()
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
        Message = message,
        Source = new V1EventSource { Component = _component },
        ReportingComponent = _component,
        ReportingInstance = _component,
        FirstTimestamp = first.UtcDateTime,
        LastTimestamp = last.UtcDateTime,
        Count = count,
    };
}
