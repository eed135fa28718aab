using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;

namespace Pilotlight.Operator.Scaling;

/// <summary>Autoscaler tuning, Knative KPA-shaped.</summary>
public sealed record AutoscalerSettings
{
    /// <summary>Window over which average concurrency sets the steady replica count.</summary>
    public TimeSpan StableWindow { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Short window that detects bursts.</summary>
    public TimeSpan PanicWindow { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>Panic starts when demand over the panic window reaches this multiple of ready capacity.</summary>
    public double PanicThreshold { get; init; } = 2.0;

    /// <summary>How often the autoscaler decides.</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>What the autoscaler knows of one function between ticks.</summary>
/// <param name="Desired">Replicas decided last.</param>
/// <param name="PanicUntil">While panicking, the time panic ends unless renewed.</param>
/// <param name="LastRequest">When a request last arrived at any gateway.</param>
/// <param name="LastActive">
/// When a request last finished, or the function was last seen with one in flight: the
/// scaledown window counts from the later of this and <paramref name="LastRequest"/>.
/// </param>
public sealed record ScaleState(int Desired, DateTimeOffset? PanicUntil, DateTimeOffset? LastRequest, DateTimeOffset? LastActive = null);

/// <summary>Demand as the gateways report it: (time, total in-flight including held requests) samples.</summary>
public sealed record DemandSample(DateTimeOffset At, double InFlight);

/// <summary>What the gateways say about a function at this tick, beyond the averaged samples.</summary>
/// <param name="InFlight">Requests in flight now, held ones included.</param>
/// <param name="BusyPods">
/// Pods with at least one request in flight now, warm standby pods a gateway routed to included: the decision
/// keeps them all, so a warm pod serving before its claim makes desired at least 1 and the claim follows.
/// </param>
/// <param name="MayScaleDown">
/// False while demand is not fully known (a gateway went unread, or the autoscaler has not yet had
/// complete reports for a stable window since it started leading): the decision never falls below the last one.
/// </param>
/// <param name="Waiting">
/// Requests a gateway said wait for the function at zero when it stamped its wake, not yet in a demand report:
/// enough pods for them at once (<see cref="WakeRequest.PodsFor"/>), not one and the rest a tick later.
/// </param>
public sealed record DemandNow(int InFlight = 0, int BusyPods = 0, bool MayScaleDown = true, int Waiting = 0)
{
    /// <summary>Nothing in flight, demand known.</summary>
    public static DemandNow Idle { get; } = new();
}

/// <summary>
/// Decides a function's replica count, purely:
/// desired = ceil(average in-flight over the stable window / target concurrency);
/// when demand over the panic window reaches <see cref="AutoscalerSettings.PanicThreshold"/> x ready capacity,
/// panic: scale up at once to the panic-window estimate and never down until
/// panic has been off for a stable window; add buffer replicas while active; clamp to [min, max].
/// A function is active while anything is in flight and for scaledownWindow after its last
/// request finished (or arrived, if later); inactive, it goes to minReplicas whatever panic says.
/// Never fewer than the pods with requests in flight, nor than in-flight / maxConcurrency;
/// never fewer than the last decision while demand is unknown.
/// </summary>
public static class ScaleDecider
{
    /// <summary>The next state of a function at <paramref name="now"/>.</summary>
    public static ScaleState Decide(ScalingPolicy policy, ScaleState state, IReadOnlyList<DemandSample> samples, int readyReplicas,
        DateTimeOffset now, AutoscalerSettings settings, DemandNow? current = null)
    {
        current ??= DemandNow.Idle;
        var maxConcurrency = Math.Max(1, policy.MaxConcurrency);
        var target = Math.Max(1, policy.TargetConcurrency ?? policy.MaxConcurrency);
        var stable = Average(samples, now - settings.StableWindow);
        var panic = Average(samples, now - settings.PanicWindow);
        var wantStable = (int)Math.Ceiling(stable / target);
        var wantPanic = (int)Math.Ceiling(panic / target);

        if (current.InFlight > 0)
        {
            state = state with { LastActive = Later(state.LastActive, now) };
        }

        var quietSince = Later(state.LastRequest, state.LastActive);
        var scaledown = DurationString.Parse(policy.ScaledownWindow);
        var active = current.InFlight > 0 || current.Waiting > 0 || (quietSince is { } quiet && now - quiet < scaledown);

        var capacity = readyReplicas * target;
        var panicking = state.PanicUntil is { } until && now < until;
        if (!active)
        {
            // The panic hold is for bursts, not for keeping an idle function up past its scaledown window.
            panicking = false;
            state = state with { PanicUntil = null };
        }
        else if (panic > 0 && panic >= settings.PanicThreshold * capacity)
        {
            panicking = true;
            state = state with { PanicUntil = now + settings.StableWindow };
        }
        else if (!panicking)
        {
            state = state with { PanicUntil = null };
        }

        var desired = panicking ? Math.Max(state.Desired, Math.Max(wantPanic, wantStable)) : wantStable;
        desired = active ? Math.Max(desired, 1) + policy.BufferReplicas : 0;

        var max = Math.Max(policy.MinReplicas, policy.MaxReplicas);
        desired = Math.Max(desired, (int)Math.Ceiling(current.InFlight / (double)maxConcurrency));
        desired = Math.Max(desired, (int)Math.Ceiling(current.Waiting / (double)target));
        desired = Math.Clamp(desired, policy.MinReplicas, max);

        // A pod with a request in flight keeps its place, above maxReplicas too (it leaves once idle).
        desired = Math.Max(desired, current.BusyPods);
        if (!current.MayScaleDown)
        {
            desired = Math.Max(desired, state.Desired);
        }

        return state with { Desired = desired };
    }

    private static DateTimeOffset? Later(DateTimeOffset? a, DateTimeOffset? b) => a is null ? b : b is null ? a : a > b ? a : b;
    /// <summary>Mean of the samples (taken once a tick) since <paramref name="from"/>; 0 without samples.</summary>
    internal static double Average(IReadOnlyList<DemandSample> samples, DateTimeOffset from)
    {
        double sum = 0;
        var n = 0;
        foreach (var s in samples)
        {
            if (s.At >= from)
            {
                sum += s.InFlight;
                n++;
            }
        }

        return n == 0 ? 0 : sum / n;
    }
}
