using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pilotlight.Gateway;

/// <summary>
/// Stopping a gateway without cutting what it holds (after knative's queue-proxy drainer): once a
/// drain begins (the preStop hook's <c>/wait-for-drain</c>, or SIGTERM) <c>/readyz</c> fails so the
/// gateway leaves its Service, but it keeps serving: requests held while a function wakes, requests
/// being forwarded, and any that still arrive while the endpoint change spreads. The drain is over
/// once nothing has been in flight for <see cref="GatewayOptions.DrainQuietPeriod"/>, or at
/// <see cref="GatewayOptions.DrainTimeout"/> whatever is left.
/// </summary>
public sealed partial class GatewayDrain
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
    private readonly TimeSpan _bound;
    private readonly TimeSpan _quiet;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private int _active;
    private DateTimeOffset? _lastFinished;
    private DateTimeOffset? _began;

    /// <summary>A drain bounded by <paramref name="bound"/>, over once idle for <paramref name="quiet"/>.</summary>
    public GatewayDrain(TimeSpan bound, TimeSpan quiet, TimeProvider time, ILogger logger)
    {
        _bound = bound;
        _quiet = quiet;
        _time = time;
        _logger = logger;
    }

    /// <summary>True once a drain began: the gateway reports itself not ready.</summary>
    public bool Draining
    {
        get
        {
            lock (_gate)
            {
                return _began is not null;
            }
        }
    }

    /// <summary>Requests in flight (held or forwarded), probes and internal endpoints not counted.</summary>
    public int Active
    {
        get
        {
            lock (_gate)
            {
                return _active;
            }
        }
    }

    /// <summary>Counts one request until the returned handle is disposed.</summary>
    public IDisposable Track()
    {
        lock (_gate)
        {
            _active++;
        }

        return new Request(this);
    }

    /// <summary>Begins the drain (once; later calls join it) and completes when it is over.</summary>
    public Task DrainAsync(CancellationToken cancellationToken)
    {
        bool first;
        lock (_gate)
        {
            first = _began is null;
            _began ??= _time.GetUtcNow();
        }

        if (first)
        {
            LogDraining(_logger, Active, _bound.TotalSeconds);
            _ = Task.Run(WatchAsync, CancellationToken.None);
        }

        return _drained.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Whether a drain that began at <paramref name="began"/> is over at <paramref name="now"/>: past
    /// the bound, or with nothing in flight and no request begun or finished within the quiet period
    /// (counted from the drain's start too, so that requests still routed here while the endpoint
    /// change spreads are served).
    /// </summary>
    public static bool IsOver(DateTimeOffset now, DateTimeOffset began, DateTimeOffset? lastFinished, int active, TimeSpan bound, TimeSpan quiet) =>
        now - began >= bound
        || (active == 0 && now - (lastFinished is { } finished && finished > began ? finished : began) >= quiet);

    private async Task WatchAsync()
    {
        while (true)
        {
            int active;
            bool over;
            lock (_gate)
            {
                active = _active;
                over = IsOver(_time.GetUtcNow(), _began!.Value, _lastFinished, _active, _bound, _quiet);
            }

            if (over)
            {
                if (active > 0)
                {
                    LogBoundReached(_logger, active);
                }
                else
                {
                    LogDrained(_logger);
                }

                _drained.TrySetResult();
                return;
            }

            await Task.Delay(Poll, _time).ConfigureAwait(false);
        }
    }

    private void Finish()
    {
        lock (_gate)
        {
            _active--;
            _lastFinished = _time.GetUtcNow();
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Draining: not ready, serving {Active} request(s) in flight for up to {Bound} s")]
    private static partial void LogDraining(ILogger logger, int active, double bound);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Drained: idle; stopping")]
    private static partial void LogDrained(ILogger logger);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Drain bound reached with {Active} request(s) still in flight; stopping")]
    private static partial void LogBoundReached(ILogger logger, int active);

    private sealed class Request(GatewayDrain drain) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                drain.Finish();
            }
        }
    }
}

/// <summary>
/// The gateway process's lifetime in place of the console one: SIGTERM (also SIGINT, SIGQUIT) drains
/// first and stops the host after; a second signal stops it at once.
/// </summary>
internal sealed class DrainingLifetime(GatewayDrain drain, IHostApplicationLifetime lifetime) : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> _signals = [];
    private int _signalled;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT })
        {
            _signals.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        foreach (var registration in _signals)
        {
            registration.Dispose();
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (Interlocked.Increment(ref _signalled) > 1)
        {
            lifetime.StopApplication();
            return;
        }

        _ = Task.Run(async () =>
        {
            await drain.DrainAsync(CancellationToken.None).ConfigureAwait(false);
            lifetime.StopApplication();
        });
    }
}
