using System.Globalization;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// When the sandbox was last used (an exec starting or finishing, stdin fed, a file read, written, listed or
/// deleted) and how many execs are running, for <c>GET /activity</c> and the sandbox's idle timeout.
/// Starts as "active now".
/// </summary>
internal sealed class SandboxActivity
{
    private readonly TimeProvider _time;
    private long _lastTicks;
    private int _running;

    public SandboxActivity(TimeProvider time)
    {
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _lastTicks = time.GetUtcNow().UtcTicks;
    }

    /// <summary>The last activity, UTC.</summary>
    public DateTimeOffset LastActivity => new(Interlocked.Read(ref _lastTicks), TimeSpan.Zero);

    /// <summary>Execs in flight.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Records activity now.</summary>
    public void Touch()
    {
        var now = _time.GetUtcNow().UtcTicks;
        var seen = Interlocked.Read(ref _lastTicks);
        while (now > seen)
        {
            var previous = Interlocked.CompareExchange(ref _lastTicks, now, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }

    /// <summary>An exec started.</summary>
    public void ExecStarted()
    {
        Interlocked.Increment(ref _running);
        Touch();
    }

    /// <summary>An exec finished, however it ended.</summary>
    public void ExecFinished()
    {
        Interlocked.Decrement(ref _running);
        Touch();
    }

    /// <summary>The report <c>GET /activity</c> answers.</summary>
    public ActivityReport Report() => new(
        LastActivity.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
        Running);
}
