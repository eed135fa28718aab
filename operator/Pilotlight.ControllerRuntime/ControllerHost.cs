using k8s;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Pilotlight.ControllerRuntime;

/// <summary>Lease-based leader election settings.</summary>
/// <param name="Namespace">Namespace of the Lease.</param>
/// <param name="LeaseName">Name of the Lease.</param>
public sealed record LeaderElectionOptions(string Namespace, string LeaseName)
{
    /// <summary>How long a lease holds without renewal; a follower takes over after at most this long.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long the leader keeps trying to renew before it gives up leading.</summary>
    public TimeSpan RenewDeadline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval between acquire/renew attempts.</summary>
    public TimeSpan RetryPeriod { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>Options of a <see cref="ControllerHost"/>.</summary>
public sealed record ControllerHostOptions
{
    /// <summary>This instance's identity in the Lease.</summary>
    public string Identity { get; init; } = $"{Environment.MachineName}-{Guid.NewGuid():N}"[..Math.Min(63, Environment.MachineName.Length + 33)];

    /// <summary>Leader election; null runs the controllers unconditionally (one instance only).</summary>
    public LeaderElectionOptions? LeaderElection { get; init; }

    /// <summary>On graceful shutdown, empty the Lease so a follower takes over at once instead of after it expires.</summary>
    public bool ReleaseOnShutdown { get; init; } = true;
}

/// <summary>
/// Runs controllers: their informers always (so a new leader starts with a
/// warm cache), their workers only after every informer has listed once and,
/// with leader election, only while this instance holds the Lease. Needs no
/// generic host, so several can run in one process.
/// </summary>
public sealed class ControllerHost
{
    private readonly IKubernetes _client;
    private readonly ControllerHostOptions _options;
    private readonly ControllerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly List<IController> _controllers = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _isLeader;

    /// <summary>A host talking to <paramref name="client"/>.</summary>
    public ControllerHost(IKubernetes client, ControllerHostOptions? options = null, ControllerMetrics? metrics = null, ILogger? logger = null)
    {
        _client = client;
        _options = options ?? new ControllerHostOptions();
        _metrics = metrics ?? new ControllerMetrics();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>This instance's identity.</summary>
    public string Identity => _options.Identity;

    /// <summary>True while this instance's controllers are running.</summary>
    public bool IsLeader => _isLeader;

    /// <summary>
    /// True once every informer of every controller has finished its first list (whether or not this
    /// instance leads): what a readiness probe waits for.
    /// </summary>
    public bool Synced => _synced.Task.IsCompletedSuccessfully;

    /// <summary>Completes when <see cref="Synced"/> becomes true; never faults (it stays pending if the host stops first).</summary>
    public Task SyncedTask => _synced.Task;

    /// <summary>The resources whose informers have not finished their first list yet (empty once <see cref="Synced"/>).</summary>
    public IReadOnlyList<string> Unsynced =>
        [.. _controllers.SelectMany(c => c.Informers).Distinct().Where(i => !i.Synced.IsCompletedSuccessfully).Select(i => i.Resource).Distinct()];

    /// <summary>Adds a controller; call before <see cref="RunAsync"/>.</summary>
    public ControllerHost Add(IController controller)
    {
        _controllers.Add(controller);
        return this;
    }

    /// <summary>Runs until <paramref name="cancellationToken"/> fires, then stops gracefully.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var informers = _controllers.SelectMany(c => c.Informers).Distinct().ToList();
        foreach (var informer in informers)
        {
            informer.UseMetrics(_metrics);
        }

        var informerTasks = informers.Select(i => Task.Run(() => i.RunAsync(cancellationToken), CancellationToken.None)).ToList();
        try
        {
            await Task.WhenAll(informers.Select(i => i.Synced)).WaitAsync(cancellationToken).ConfigureAwait(false);
            _logger.LogInformation("{Count} informers synced", informers.Count);
            _synced.TrySetResult();
            if (_options.LeaderElection is null)
            {
                await LeadAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await ElectAsync(_options.LeaderElection, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            await Task.WhenAll(informerTasks).ConfigureAwait(false);
        }
    }

    private async Task LeadAsync(CancellationToken ct)
    {
        _isLeader = true;
        _metrics.Leader.Set(1);
        try
        {
            await Task.WhenAll(_controllers.Select(c => c.RunAsync(_metrics, ct))).ConfigureAwait(false);
        }
        finally
        {
            _isLeader = false;
            _metrics.Leader.Set(0);
        }
    }

    private async Task ElectAsync(LeaderElectionOptions election, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var leaseLock = new LeaseLock(_client, election.Namespace, election.LeaseName, _options.Identity);
            using var elector = new LeaderElector(new LeaderElectionConfig(leaseLock)
            {
                LeaseDuration = election.LeaseDuration,
                RenewDeadline = election.RenewDeadline,
                RetryPeriod = election.RetryPeriod,
            });
            using var term = CancellationTokenSource.CreateLinkedTokenSource(ct);
            Task? leading = null;
            elector.OnStartedLeading += () =>
            {
                _logger.LogInformation("{Identity} became leader", _options.Identity);
                leading = LeadAsync(term.Token);
            };
            try
            {
                await elector.RunUntilLeadershipLostAsync(ct).ConfigureAwait(false);
                _logger.LogWarning("{Identity} lost leadership", _options.Identity);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                _logger.LogWarning("Leader election failed: {Error}", ex.Message);
            }

            await term.CancelAsync().ConfigureAwait(false);
            if (leading is not null)
            {
                await leading.ConfigureAwait(false);
                if (ct.IsCancellationRequested && _options.ReleaseOnShutdown)
                {
                    await ReleaseAsync(election).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>
    /// On graceful shutdown the leader empties the Lease so a follower need not wait for it to expire.
    /// Released as client-go releases: holder "" (not null), renew and acquire times kept, a
    /// one-second duration. KubernetesClient's <c>LeaderElector</c> takes a null holder or a null
    /// renew time for "no Lease at all" and tries to create one (409, forever); an empty holder it
    /// takes for "free" and acquires on its next retry.
    /// </summary>
    private async Task ReleaseAsync(LeaderElectionOptions election)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var lease = await _client.CoordinationV1.ReadNamespacedLeaseAsync(election.LeaseName, election.Namespace, cancellationToken: timeout.Token).ConfigureAwait(false);
            if (lease.Spec?.HolderIdentity != _options.Identity)
            {
                return;
            }

            lease.Spec.HolderIdentity = "";
            lease.Spec.LeaseDurationSeconds = 1;
            lease.Spec.RenewTime ??= lease.Spec.AcquireTime ?? DateTime.UtcNow;
            lease.Spec.AcquireTime ??= lease.Spec.RenewTime;
            await _client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, election.LeaseName, election.Namespace, cancellationToken: timeout.Token).ConfigureAwait(false);
            _logger.LogInformation("{Identity} released the lease", _options.Identity);
        }
        catch (Exception ex)
        {
            _logger.LogWarning("Could not release the lease: {Error}", ex.Message);
        }
    }
}
