using System.Net;
using System.Text;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Access;

/// <summary>Where and how often the operator publishes invoke-key verifiers.</summary>
public sealed record InvokeKeyPublisherOptions
{
    /// <summary>The ConfigMap the verifiers go to (<c>--invoke-keys-configmap NAMESPACE/NAME</c>); the gateway watches it.</summary>
    public required ObjectKey ConfigMap { get; init; }

    /// <summary>
    /// How often the ConfigMap is read back and repaired even when no Secret changed (someone edited or deleted it).
    /// </summary>
    public TimeSpan Resync { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Wait before trying again after a failed write.</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>Stable Event reasons about invoke-key Secrets.</summary>
public static class InvokeKeyReasons
{
    /// <summary>Warning: the Secret is labelled as an invoke key but opens nothing (bad shape, no key, no functions).</summary>
    public const string Invalid = "InvalidInvokeKey";
}

/// <summary>A labelled Secret that is not a usable invoke key, and why (never the key).</summary>
public sealed record RefusedInvokeKey(V1Secret Secret, string Problem);

/// <summary>
/// Turns the invoke-key Secrets the operator sees into the verifiers the gateway checks keys with (leader only):
/// SHA-256 of each well-formed key with its namespace, functions and Secret, all in one ConfigMap in the operator's
/// namespace, written only when it changes. The gateway never reads a Secret. A Secret that is labelled but
/// unusable is left out and gets a Warning Event (once per version of it) saying why.
/// </summary>
public sealed partial class InvokeKeyPublisher : IController
{
    private readonly IKubernetes _client;
    private readonly Informer<V1Secret> _secrets;
    private readonly InvokeKeyPublisherOptions _options;
    private readonly EventRecorder? _events;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<bool> _changed = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly HashSet<(string Uid, string Version)> _warned = [];
    private string? _published;

    /// <summary>A publisher of the keys in <paramref name="secrets"/> (an informer over Secrets labelled <see cref="InvokeKeys.Label"/>).</summary>
    public InvokeKeyPublisher(IKubernetes client, Informer<V1Secret> secrets, InvokeKeyPublisherOptions options, EventRecorder? events = null,
        TimeProvider? time = null, ILogger? logger = null)
    {
        _client = client;
        _secrets = secrets;
        _options = options;
        _events = events;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _secrets.AddHandler(_ => _changed.Writer.TryWrite(true));
    }

    /// <summary>Secrets labelled <see cref="InvokeKeys.Label"/><c>=true</c>, in every namespace or in <paramref name="namespace"/>.</summary>
    public static ListWatch<V1Secret> ListWatch(IKubernetes client, string? @namespace = null)
    {
        const string selector = $"{InvokeKeys.Label}=true";
#pragma warning disable CS0618 // one watch mechanism for every kind, as in ControllerRuntime's ListWatch
        return new ListWatch<V1Secret>(
            "secrets",
            async (cont, limit, ct) =>
            {
                var page = @namespace is null
                    ? await client.CoreV1.ListSecretForAllNamespacesAsync(continueParameter: cont, limit: limit, labelSelector: selector, cancellationToken: ct).ConfigureAwait(false)
                    : await client.CoreV1.ListNamespacedSecretAsync(@namespace, continueParameter: cont, limit: limit, labelSelector: selector, cancellationToken: ct).ConfigureAwait(false);
                return new ListPage<V1Secret>(page.Items, page.Metadata.ResourceVersion, page.Metadata.ContinueProperty);
            },
            (rv, timeout, onError, ct) => (@namespace is null
                    ? client.CoreV1.ListSecretForAllNamespacesWithHttpMessagesAsync(watch: true, allowWatchBookmarks: true, resourceVersion: rv,
                        timeoutSeconds: timeout, labelSelector: selector, cancellationToken: ct)
                    : client.CoreV1.ListNamespacedSecretWithHttpMessagesAsync(@namespace, watch: true, allowWatchBookmarks: true, resourceVersion: rv,
                        timeoutSeconds: timeout, labelSelector: selector, cancellationToken: ct))
                .WatchAsync<V1Secret, V1SecretList>(onError, ct));
#pragma warning restore CS0618
    }

    /// <inheritdoc />
    public string Name => "invokekeys";

    /// <inheritdoc />
    public IReadOnlyList<IInformer> Informers => [_secrets];

    /// <summary>
    /// The verifiers of the usable keys among <paramref name="secrets"/>, and the Secrets refused with the reason. Pure:
    /// a Secret is usable when its <c>data.key</c> (surrounding whitespace ignored) has the documented shape and its
    /// <see cref="InvokeKeys.FunctionsAnnotation"/> names at least one function.
    /// </summary>
    public static (IReadOnlyList<InvokeKeyVerifier> Verifiers, IReadOnlyList<RefusedInvokeKey> Refused) Build(IEnumerable<V1Secret> secrets)
    {
        var verifiers = new List<InvokeKeyVerifier>();
        var refused = new List<RefusedInvokeKey>();
        foreach (var secret in secrets)
        {
            string? listed = null;
            secret.Metadata.Annotations?.TryGetValue(InvokeKeys.FunctionsAnnotation, out listed);
            var functions = InvokeKeys.ParseFunctions(listed);
            if (secret.Data?.TryGetValue(InvokeKeys.KeyField, out var bytes) != true || bytes is null)
            {
                refused.Add(new(secret, $"it has no data field '{InvokeKeys.KeyField}'"));
                continue;
            }

            var key = Encoding.UTF8.GetString(bytes).Trim();
            if (!InvokeKeys.IsWellFormed(key))
            {
                refused.Add(new(secret, $"data.{InvokeKeys.KeyField} is not an invoke key: it must be '{InvokeKeys.Prefix}' followed by "
                    + $"{InvokeKeys.MinSecretChars} to {InvokeKeys.MaxSecretChars} base64url characters (32 random bytes or more), e.g. {InvokeKeys.HowToMake}"));
                continue;
            }

            if (functions.Count == 0)
            {
                refused.Add(new(secret, $"annotation {InvokeKeys.FunctionsAnnotation} names no function (a comma-separated list, or {InvokeKeys.AllFunctions} for all in the namespace)"));
                continue;
            }

            verifiers.Add(new InvokeKeyVerifier
            {
                Namespace = secret.Metadata.NamespaceProperty,
                Functions = functions.Contains(InvokeKeys.AllFunctions) ? [InvokeKeys.AllFunctions] : functions,
                Secret = secret.Metadata.Name,
                SecretUid = secret.Metadata.Uid ?? "",
                Sha256 = InvokeKeys.Hash(key),
            });
        }

        return (verifiers, refused);
    }

    /// <inheritdoc />
    public async Task RunAsync(ControllerMetrics metrics, CancellationToken cancellationToken)
    {
        // A new leader does not trust what an earlier one wrote: it reads the ConfigMap on its first pass.
        _published = null;
        var lastRead = DateTimeOffset.MinValue;
        while (!cancellationToken.IsCancellationRequested)
        {
            _changed.Reader.TryRead(out _);
            var resync = _time.GetUtcNow() - lastRead >= _options.Resync;
            try
            {
                if (await PublishAsync(resync, cancellationToken).ConfigureAwait(false))
                {
                    lastRead = _time.GetUtcNow();
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Conflict (another writer), the API server away: try again soon, reading the ConfigMap afresh.
                LogPublishFailed(ex.Message);
                _published = null;
                await WaitAsync(_options.RetryAfter, cancellationToken).ConfigureAwait(false);
                continue;
            }

            await WaitAsync(_options.Resync, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for a change of a Secret, or <paramref name="delay"/>, or cancellation (no exception).</summary>
    private async Task WaitAsync(TimeSpan delay, CancellationToken ct)
    {
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var changed = _changed.Reader.WaitToReadAsync(wake.Token).AsTask();
        var timer = Task.Delay(delay, _time, wake.Token);
        await Task.WhenAny(changed, timer).ConfigureAwait(false);
        await wake.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>One pass; true when the ConfigMap was read (and so is known to hold what was published).</summary>
    private async Task<bool> PublishAsync(bool read, CancellationToken ct)
    {
        var (verifiers, refused) = Build(_secrets.List());
        await WarnAsync(refused, ct).ConfigureAwait(false);
        var text = InvokeKeys.Serialize(verifiers);
        if (!read && text == _published)
        {
            return false;
        }

        var at = _options.ConfigMap;
        V1ConfigMap? current;
        try
        {
            current = await _client.CoreV1.ReadNamespacedConfigMapAsync(at.Name, at.Namespace, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            current = null;
        }

        if (current is null)
        {
            await _client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap
            {
                Metadata = new V1ObjectMeta
                {
                    Name = at.Name,
                    NamespaceProperty = at.Namespace,
                    Labels = new Dictionary<string, string>
                    {
                        ["app.kubernetes.io/name"] = "pilotlight", ["app.kubernetes.io/component"] = "invoke-keys",
                    },
                },
                Data = new Dictionary<string, string> { [InvokeKeys.VerifiersField] = text },
            }, at.Namespace, cancellationToken: ct).ConfigureAwait(false);
            LogPublished(verifiers.Count, at.Namespace!, at.Name);
        }
        else if (current.Data is null || !current.Data.TryGetValue(InvokeKeys.VerifiersField, out var held) || held != text)
        {
            // Replaced at the version read: a concurrent writer makes this a conflict, and the next pass reads again.
            current.Data ??= new Dictionary<string, string>();
            current.Data[InvokeKeys.VerifiersField] = text;
            await _client.CoreV1.ReplaceNamespacedConfigMapAsync(current, at.Name, at.Namespace, cancellationToken: ct).ConfigureAwait(false);
            LogPublished(verifiers.Count, at.Namespace!, at.Name);
        }

        _published = text;
        return true;
    }

    private async Task WarnAsync(IReadOnlyList<RefusedInvokeKey> refused, CancellationToken ct)
    {
        var now = refused.Select(r => (r.Secret.Metadata.Uid ?? "", r.Secret.Metadata.ResourceVersion ?? "")).ToHashSet();
        _warned.IntersectWith(now);
        foreach (var (secret, problem) in refused)
        {
            if (!_warned.Add((secret.Metadata.Uid ?? "", secret.Metadata.ResourceVersion ?? "")))
            {
                continue;
            }

            LogRefused(secret.Metadata.NamespaceProperty, secret.Metadata.Name, problem);
            if (_events is not null)
            {
                // Only the metadata goes to the Event: the Secret's data stays here. Listed objects carry no kind.
                var about = new V1Secret { ApiVersion = "v1", Kind = "Secret", Metadata = secret.Metadata };
                await _events.WarningAsync(about, InvokeKeyReasons.Invalid, $"Not used as an invoke key: {problem}.", ct).ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Published {Count} invoke key verifier(s) to ConfigMap {Namespace}/{Name}")]
    private partial void LogPublished(int count, string @namespace, string name);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Invoke key Secret {Namespace}/{Name} refused: {Problem}")]
    private partial void LogRefused(string @namespace, string name, string problem);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Could not publish invoke key verifiers: {Error}")]
    private partial void LogPublishFailed(string error);
}
