using Pilotlight.Api.Schema;
using Pilotlight.Api.V1Alpha1;

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
public sealed record ScaleState(int Desired, DateTimeOffset? PanicUntil, DateTimeOffset? LastRequest);

/// <summary>Demand as the gateways report it: (time, total in-flight including held requests) samples.</summary>
public sealed record DemandSample(DateTimeOffset At, double InFlight);

/// <summary>
/// Decides a function's replica count, purely:
/// desired = ceil(average in-flight over the stable window / target concurrency);
/// when demand over the panic window reaches <see cref="AutoscalerSettings.PanicThreshold"/> x ready capacity,
/// panic: scale up at once to the panic-window estimate and never down until
/// panic has been off for a stable window; clamp to [min, max]; add buffer
/// replicas while active; zero only after scaledownWindow without a request.
/// </summary>
public static class ScaleDecider
{
    /// <summary>The next state of a function at <paramref name="now"/>.</summary>
    public static ScaleState Decide(ScalingPolicy policy, ScaleState state, IReadOnlyList<DemandSample> samples, int readyReplicas,
        DateTimeOffset now, AutoscalerSettings settings)
    {
        var target = Math.Max(1, policy.TargetConcurrency ?? policy.MaxConcurrency);
        var stable = Average(samples, now - settings.StableWindow);
        var panic = Average(samples, now - settings.PanicWindow);
        var wantStable = (int)Math.Ceiling(stable / target);
        var wantPanic = (int)Math.Ceiling(panic / target);

        var capacity = readyReplicas * target;
        var panicking = state.PanicUntil is { } until && now < until;
        if (panic > 0 && panic >= settings.PanicThreshold * capacity)
        {
            panicking = true;
            state = state with { PanicUntil = now + settings.StableWindow };
        }
        else if (!panicking)
        {
            state = state with { PanicUntil = null };
        }

        var desired = panicking ? Math.Max(state.Desired, Math.Max(wantPanic, wantStable)) : wantStable;

        var scaledown = DurationString.Parse(policy.ScaledownWindow);
        var active = state.LastRequest is { } last && now - last < scaledown;
        if (active)
        {
            desired = Math.Max(desired, 1) + policy.BufferReplicas;
        }
        else if (!panicking)
        {
            desired = 0;
        }

        desired = Math.Clamp(desired, policy.MinReplicas, Math.Max(policy.MinReplicas, policy.MaxReplicas));
        return state with { Desired = desired };
    }

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
