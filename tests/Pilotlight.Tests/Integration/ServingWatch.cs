using k8s;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Operator.Functions;

namespace Pilotlight.Tests.Integration;

/// <summary>
/// Watches one function while a scenario runs (polling as admin): every pod that was ever marked for
/// deletion, and the lowest desired count the operator wrote, so a test can say "nothing was scaled down"
/// without sleeping and looking once.
/// </summary>
internal sealed class ServingWatch : IAsyncDisposable
{
    private readonly IKubernetes _client;
    private readonly string _ns;
    private readonly string _name;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly HashSet<string> _deleted = [];
    private readonly HashSet<string> _seen = [];
    private readonly Lock _gate = new();
    private int? _minDesired;

    public ServingWatch(IKubernetes client, string ns, string name)
    {
        _client = client;
        _ns = ns;
        _name = name;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Pods seen marked for deletion (or gone) since the watch started.</summary>
    public IReadOnlyList<string> Deleted
    {
        get
        {
            lock (_gate)
            {
                return [.. _deleted];
            }
        }
    }

    /// <summary>Pods seen alive.</summary>
    public IReadOnlyList<string> Seen
    {
        get
        {
            lock (_gate)
            {
                return [.. _seen];
            }
        }
    }

    /// <summary>The lowest status.desiredReplicas seen since the watch started (or since <see cref="Reset"/>).</summary>
    public int? MinDesired
    {
        get
        {
            lock (_gate)
            {
                return _minDesired;
            }
        }
    }

    /// <summary>Polls completed; a condition to wait on so the watch has really looked.</summary>
    public int Polls { get; private set; }

    /// <summary>Forgets what was seen: from now on.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            Polls = 0;
            _deleted.Clear();
            _seen.Clear();
            _minDesired = null;
        }
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var pods = await _client.CoreV1.ListNamespacedPodAsync(_ns, labelSelector: $"{FunctionLabels.Function}={_name}", cancellationToken: _stop.Token);
                var fn = await _client.CustomObjects.GetNamespacedCustomObjectAsync<GpuFunction>(Group.Name, Group.Version, _ns, "gpufunctions", _name,
                    cancellationToken: _stop.Token);
                lock (_gate)
                {
                    var alive = pods.Items.Where(p => p.Metadata.DeletionTimestamp is null && FunctionLabels.IsServing(p)).Select(p => p.Metadata.Name).ToHashSet();
                    _deleted.UnionWith(pods.Items.Where(p => p.Metadata.DeletionTimestamp is not null).Select(p => p.Metadata.Name));
                    _deleted.UnionWith(_seen.Where(p => !alive.Contains(p)));
                    _seen.UnionWith(alive);
                    if (fn.Status is { } status)
                    {
                        _minDesired = Math.Min(_minDesired ?? int.MaxValue, status.DesiredReplicas);
                    }
                }

                Polls++;
                await Task.Delay(TimeSpan.FromMilliseconds(200), _stop.Token);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is HttpRequestException or k8s.Autorest.HttpOperationException)
            {
                // An API server restart or a slow moment: look again.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
