using System.Security.Cryptography;
using Pilotlight.Contracts;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Gateway;

/// <summary>
/// The gateway's side of <see cref="GatewaySignals"/>: wakes and sandbox activity held in memory for the operator to
/// read, in place of annotations the gateway used to patch onto the custom resources. Bounded: a wake is kept for
/// <see cref="WakeKeptFor"/>, a function's cold-start count while the function lives, a sandbox until it is gone or finished (<see cref="Retain"/>), and past
/// <see cref="MaxEntries"/> of either the oldest go first.
/// </summary>
public sealed class SignalBoard(TimeProvider time)
{
    /// <summary>How long a wake stays on the board (the operator acts on it within a poll).</summary>
    public static readonly TimeSpan WakeKeptFor = TimeSpan.FromMinutes(10);

    /// <summary>Most functions or sandboxes the board holds.</summary>
    public const int MaxEntries = 50_000;

    private readonly Lock _gate = new();
    private readonly Dictionary<ObjectKey, WakeSignal> _wakes = [];
    private readonly Dictionary<ObjectKey, SandboxSignal> _sandboxes = [];
    private readonly Dictionary<ObjectKey, ColdStartSignal> _coldStarts = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _version;

    /// <summary>This process's epoch.</summary>
    public string Epoch { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant();

    /// <summary>Requests wait for <paramref name="function"/>: <paramref name="held"/> of them at <paramref name="at"/>.</summary>
    public void Wake(ObjectKey function, DateTimeOffset at, int held) => Change(() =>
    {
        _wakes[function] = new WakeSignal { Namespace = function.Namespace!, Name = function.Name, At = at, Held = held };
        Trim(_wakes, w => w.At);
    });

    /// <summary>
    /// A request for the function with <paramref name="uid"/> was held while a pod started, then served: one more cold
    /// start. Counts of a deleted function (another UID under the name) start again from zero.
    /// </summary>
    public void ColdStart(ObjectKey function, string uid) => Change(() =>
    {
        var count = _coldStarts.TryGetValue(function, out var was) && was.Uid == uid ? was.Count : 0;
        _coldStarts[function] = new ColdStartSignal
        {
            Namespace = function.Namespace!, Name = function.Name, Uid = uid, Count = count + 1, At = time.GetUtcNow(),
        };
        // Past the bound a count goes: the operator then takes nothing from this gateway for that function until
        // the new count passes the one it took (an undercount, never a double count).
        Trim(_coldStarts, c => c.At);
    });

    /// <summary>The function is gone: so are its counts.</summary>
    public void ForgetFunction(ObjectKey function)
    {
        lock (_gate)
        {
            if (_coldStarts.Remove(function))
            {
                Changed();
            }
        }
    }

    /// <summary>A call on the sandbox begins (<paramref name="delta"/> 1) or ends (-1); either is activity.</summary>
    public void Activity(ObjectKey sandbox, string uid, int delta) => Change(() =>
    {
        var now = time.GetUtcNow();
        var was = Current(sandbox, uid);
        _sandboxes[sandbox] = was with { LastActivity = now, Active = Math.Max(0, was.Active + delta) };
        Trim(_sandboxes, s => s.LastActivity ?? DateTimeOffset.MinValue);
    });

    /// <summary>A caller asked to terminate the sandbox.</summary>
    public void Terminate(ObjectKey sandbox, string uid) => Change(() =>
    {
        var was = Current(sandbox, uid);
        _sandboxes[sandbox] = was with { TerminateRequested = was.TerminateRequested ?? time.GetUtcNow() };
    });

    /// <summary>True when a caller asked this gateway to terminate the sandbox with that UID.</summary>
    public bool TerminateRequested(ObjectKey sandbox, string uid)
    {
        lock (_gate)
        {
            return _sandboxes.TryGetValue(sandbox, out var s) && s.Uid == uid && s.TerminateRequested is not null;
        }
    }

    /// <summary>Drops sandboxes for which <paramref name="keep"/> is false (gone, or finished) and wakes past their time.</summary>
    public void Retain(Func<SandboxSignal, bool> keep)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            var dropped = false;
            foreach (var (key, _) in _sandboxes.Where(kv => !keep(kv.Value)).ToList())
            {
                dropped |= _sandboxes.Remove(key);
            }

            foreach (var (key, _) in _wakes.Where(kv => now - kv.Value.At > WakeKeptFor).ToList())
            {
                dropped |= _wakes.Remove(key);
            }

            if (dropped)
            {
                Changed();
            }
        }
    }

    /// <summary>
    /// The board once its version is past <paramref name="after"/> (at once for another epoch), or as it is after
    /// <paramref name="wait"/>.
    /// </summary>
    public async Task<GatewaySignals> ReadAsync(string? epoch, long after, TimeSpan wait, CancellationToken ct)
    {
        Task changed;
        lock (_gate)
        {
            if (epoch != Epoch || _version > after)
            {
                return Snapshot();
            }

            changed = _changed.Task;
        }

        try
        {
            await changed.WaitAsync(wait, time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        lock (_gate)
        {
            return Snapshot();
        }
    }

    private SandboxSignal Current(ObjectKey sandbox, string uid) =>
        _sandboxes.TryGetValue(sandbox, out var s) && s.Uid == uid ? s
        : new SandboxSignal { Namespace = sandbox.Namespace!, Name = sandbox.Name, Uid = uid };

    private void Change(Action change)
    {
        lock (_gate)
        {
            change();
            Changed();
        }
    }

    // Under _gate.
    private void Changed()
    {
        _version++;
        var was = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        was.SetResult();
    }

    // Under _gate.
    private GatewaySignals Snapshot() => new()
    {
        Epoch = Epoch, Version = _version, Wakes = [.. _wakes.Values], ColdStarts = [.. _coldStarts.Values], Sandboxes = [.. _sandboxes.Values],
    };

    private static void Trim<T>(Dictionary<ObjectKey, T> entries, Func<T, DateTimeOffset> age)
    {
        if (entries.Count > MaxEntries)
        {
            foreach (var (key, _) in entries.OrderBy(kv => age(kv.Value)).Take(entries.Count - MaxEntries).ToList())
            {
                entries.Remove(key);
            }
        }
    }
}
