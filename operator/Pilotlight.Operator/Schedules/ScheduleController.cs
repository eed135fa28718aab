using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.ControllerRuntime;
using Prometheus;

namespace Pilotlight.Operator.Schedules;

/// <summary>Tuning for the schedule loop.</summary>
public sealed record ScheduleSettings
{
    /// <summary>How often the loop looks for due ticks; a tick's request leaves at most this late.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Conditional status writes tried before a tick is left to the next poll.</summary>
    public int WriteAttempts { get; init; } = 5;
}

/// <summary>Stable Event reasons of scheduled invocations.</summary>
public static class ScheduleReasons
{
    /// <summary>Normal: the scheduled request was answered 2xx.</summary>
    public const string Invoked = "ScheduledInvocation";

    /// <summary>Warning: the scheduled request got another answer or none.</summary>
    public const string Failed = "ScheduledInvocationFailed";

    /// <summary>Warning: a tick came while no operator led and was too old to run when one did.</summary>
    public const string Missed = "ScheduleMissed";
}

/// <summary>
/// Invokes functions on their <c>spec.schedule</c> (leader only): at each tick
/// of <c>cron</c> in <c>timeZone</c> it claims the tick in
/// <c>status.lastScheduleTime</c> by a write conditional on the
/// resourceVersion, then sends <c>POST schedule.path</c> through the gateway
/// and records the answer in <c>status.lastScheduleResult</c>, an Event and
/// <c>pilotlight_scheduled_invocations_total</c>. See
/// <see cref="ScheduleRules"/> for which tick runs when.
/// </summary>
public sealed class ScheduleController : IController
{
    private static readonly Counter Invocations = Metrics.CreateCounter("pilotlight_scheduled_invocations_total",
        "Scheduled invocations by outcome (succeeded: a 2xx answer; failed: another answer or none; missed: too late to run).",
        "namespace", "function", "outcome");

    private readonly Informer<GpuFunction> _functions;
    private readonly IScheduleStore _store;
    private readonly IScheduledInvoker _invoker;
    private readonly EventRecorder? _events;
    private readonly ScheduleSettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ObjectKey, DateTimeOffset> _claimed = new();
    private readonly ConcurrentDictionary<(ObjectKey Key, DateTimeOffset Tick), Task> _running = new();
    private readonly ConcurrentDictionary<(string Cron, string Zone), FunctionSchedule?> _parsed = new();

    /// <summary>A schedule loop over the functions in <paramref name="functions"/>.</summary>
    public ScheduleController(Informer<GpuFunction> functions, IScheduleStore store, IScheduledInvoker invoker, EventRecorder? events = null,
        ScheduleSettings? settings = null, TimeProvider? time = null, ILogger? logger = null)
    {
        _functions = functions;
        _store = store;
        _invoker = invoker;
        _events = events;
        _settings = settings ?? new ScheduleSettings();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public string Name => "schedule";

    /// <inheritdoc />
    public IReadOnlyList<IInformer> Informers => [_functions];

    /// <summary>Invocations started and not yet recorded.</summary>
    public IReadOnlyCollection<Task> Running => [.. _running.Values];

    /// <inheritdoc />
    public async Task RunAsync(ControllerMetrics metrics, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    Tick(cancellationToken);
                    await Task.Delay(_settings.Poll, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    _logger.LogError(ex, "Schedule tick failed");
                }
            }
        }
        finally
        {
            // Leadership lost or shutting down: the invocations in flight record what became of them first.
            await Task.WhenAll(Running).ConfigureAwait(false);
        }
    }

    /// <summary>Starts the invocation of every function whose tick is due now; returns at once.</summary>
    public void Tick(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        foreach (var function in _functions.List())
        {
            // An invalid schedule is the reconciler's to report (InvalidSpec); nothing is sent for it.
            if (function.Metadata.DeletionTimestamp is not null || function.Spec.Schedule is not { } spec || Parse(spec) is not { } schedule)
            {
                continue;
            }

            var key = ObjectKey.Of(function);
            var decision = ScheduleRules.Decide(function, schedule, now, _claimed.TryGetValue(key, out var c) ? c : null);
            if (decision is { Action: not ScheduleAction.None, Tick: { } tick })
            {
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_running.TryAdd((key, tick), done.Task))
                {
                    _ = RunOnceAsync(key, tick, done, cancellationToken);
                }
            }
        }

        foreach (var gone in _claimed.Keys.Where(k => _functions.Get(k) is null).ToList())
        {
            _claimed.TryRemove(gone, out _);
            foreach (var outcome in new[] { "succeeded", "failed", "missed" })
            {
                Invocations.RemoveLabelled(gone.Namespace ?? "", gone.Name, outcome);
            }
        }
    }

    private FunctionSchedule? Parse(InvocationSchedule spec)
    {
        if (_parsed.Count > 10_000)
        {
            _parsed.Clear();
        }

        return _parsed.GetOrAdd((spec.Cron, spec.TimeZone), _ => FunctionSchedule.TryCreate(spec, out var parsed, out var _) ? parsed : null);
    }

    private async Task RunOnceAsync(ObjectKey key, DateTimeOffset tick, TaskCompletionSource done, CancellationToken ct)
    {
        await Task.Yield();
        try
        {
            await HandleAsync(key, tick, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "{Function}: scheduled invocation of the {Tick} tick failed", key, Format(tick));
        }
        finally
        {
            _running.TryRemove((key, tick), out _);
            done.TrySetResult();
        }
    }

    /// <summary>Claims <paramref name="tick"/> for the function and, when that succeeds, sends and records it.</summary>
    /// <returns>True when this call sent the request.</returns>
    public async Task<bool> HandleAsync(ObjectKey key, DateTimeOffset tick, CancellationToken ct)
    {
        if (await ClaimAsync(key, tick, ct).ConfigureAwait(false) is not var (function, action))
        {
            return false;
        }

        var ns = key.Namespace ?? "";
        var path = function.Spec.Schedule?.Path ?? "/";
        if (action == ScheduleAction.Miss)
        {
            Invocations.WithLabels(ns, key.Name, "missed").Inc();
            _logger.LogWarning("{Function}: the {Tick} tick was missed (no operator led then), not run", key, Format(tick));
            await RecordEventAsync(function, true, ScheduleReasons.Missed,
                $"the {Format(tick)} tick came while no operator led and is more than {ScheduleRules.StartingDeadline.TotalMinutes:0} minutes old: not run", ct).ConfigureAwait(false);
            return false;
        }

        var start = _time.GetUtcNow();
        _logger.LogInformation("{Function}: POST {Path} for the {Tick} tick", key, path, Format(tick));
        InvocationOutcome outcome;
        try
        {
            outcome = await _invoker.InvokeAsync(function, tick, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            outcome = new InvocationOutcome(null, "the operator stopped leading before the answer came");
        }

        var finish = _time.GetUtcNow();
        var result = new ScheduleResult
        {
            ScheduleTime = tick.UtcDateTime,
            Outcome = outcome.Succeeded ? "Succeeded" : "Failed",
            StatusCode = outcome.StatusCode,
            Message = outcome.Error is { } error ? Truncate(error) : null,
            StartTime = start.UtcDateTime,
            FinishTime = finish.UtcDateTime,
        };

        // The answer is recorded even when shutting down, briefly: a new leader will not send this tick again either way.
        using var recording = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await RecordResultAsync(key, tick, result, recording.Token).ConfigureAwait(false);
        Invocations.WithLabels(ns, key.Name, outcome.Succeeded ? "succeeded" : "failed").Inc();
        var told = $"POST {path} for the {Format(tick)} tick: {(outcome.StatusCode is { } code ? code.ToString(CultureInfo.InvariantCulture) : outcome.Error)} after {(finish - start).TotalSeconds:0.0}s";
        _logger.LogInformation("{Function}: {Result}", key, told);
        await RecordEventAsync(function, !outcome.Succeeded, outcome.Succeeded ? ScheduleReasons.Invoked : ScheduleReasons.Failed, told, recording.Token)
            .ConfigureAwait(false);
        return true;
    }

    private async Task<(GpuFunction Function, ScheduleAction Action)?> ClaimAsync(ObjectKey key, DateTimeOffset tick, CancellationToken ct)
    {
        for (var attempt = 0; attempt < _settings.WriteAttempts; attempt++)
        {
            // Fresh from the API server, not the cache: the claim must see every earlier one.
            if (await _store.GetAsync(key, ct).ConfigureAwait(false) is not { } function
                || function.Spec.Schedule is not { } spec || Parse(spec) is not { } schedule)
            {
                return null;
            }

            var decision = ScheduleRules.Decide(function, schedule, _time.GetUtcNow());
            if (decision.Tick != tick || decision.Action == ScheduleAction.None)
            {
                // Claimed by someone else (or no longer due): remember it so the cache's lag does not bring us back.
                if (function.Status?.LastScheduleTime is { } last)
                {
                    _claimed.AddOrUpdate(key, ScheduleRules.Utc(last), (_, had) => had > ScheduleRules.Utc(last) ? had : ScheduleRules.Utc(last));
                }

                return null;
            }

            var now = _time.GetUtcNow().UtcDateTime;
            var claim = decision.Action == ScheduleAction.Run
                ? new ScheduleResult { ScheduleTime = tick.UtcDateTime, Outcome = "Pending", StartTime = now }
                : new ScheduleResult
                {
                    ScheduleTime = tick.UtcDateTime, Outcome = "Missed", FinishTime = now,
                    Message = $"no operator led at the tick, and it was more than {ScheduleRules.StartingDeadline.TotalMinutes:0} minutes old when one did",
                };
            if (await _store.TryWriteAsync(key, function.Metadata.ResourceVersion, tick, claim, ct).ConfigureAwait(false))
            {
                _claimed[key] = tick;
                return (function, decision.Action);
            }

            // A conflict: someone wrote the function since it was read. Read again and decide again; never send on a lost claim.
        }

        _logger.LogInformation("{Function}: could not claim the {Tick} tick after {Attempts} conflicts; trying again at the next poll", key, Format(tick),
            _settings.WriteAttempts);
        return null;
    }

    private async Task RecordResultAsync(ObjectKey key, DateTimeOffset tick, ScheduleResult result, CancellationToken ct)
    {
        try
        {
            for (var attempt = 0; attempt < _settings.WriteAttempts; attempt++)
            {
                if (await _store.GetAsync(key, ct).ConfigureAwait(false) is not { } function
                    || function.Status?.LastScheduleTime is not { } last || ScheduleRules.Utc(last) != tick)
                {
                    // Gone, or a later tick was claimed meanwhile: its result is not ours to overwrite.
                    return;
                }

                if (await _store.TryWriteAsync(key, function.Metadata.ResourceVersion, tick, result, ct).ConfigureAwait(false))
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || ct.IsCancellationRequested)
        {
            _logger.LogWarning("{Function}: could not record the result of the {Tick} tick: {Error}", key, Format(tick), ex.Message);
        }
    }

    private async Task RecordEventAsync(GpuFunction function, bool warning, string reason, string message, CancellationToken ct)
    {
        if (_events is null)
        {
            return;
        }

        await (warning ? _events.WarningAsync(function, reason, message, ct) : _events.NormalAsync(function, reason, message, ct)).ConfigureAwait(false);
    }

    private static string Format(DateTimeOffset tick) => tick.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Truncate(string text) => text.Length > 1024 ? text[..1024] : text;
}
