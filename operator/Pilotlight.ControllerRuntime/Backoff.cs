namespace Pilotlight.ControllerRuntime;

/// <summary>
/// Capped exponential back-off with jitter: attempt n waits
/// min(initial x 2^n, max), scaled by a factor drawn from [1 - jitter, 1].
/// </summary>
/// <param name="Initial">Delay after the first failure.</param>
/// <param name="Max">The cap.</param>
/// <param name="Jitter">Fraction of the delay that is random, 0..1.</param>
/// <param name="Random">Source of jitter; inject a seeded one in tests.</param>
public sealed record Backoff(TimeSpan Initial, TimeSpan Max, double Jitter = 0.2, Random? Random = null)
{
    /// <summary>The delay before retry number <paramref name="failures"/> (0 for the first retry).</summary>
    public TimeSpan Delay(int failures)
    {
        var exponent = Math.Min(failures, 30);
        var raw = Math.Min(Initial.TotalMilliseconds * Math.Pow(2, exponent), Max.TotalMilliseconds);
        var factor = 1 - (Jitter * (Random ?? Random.Shared).NextDouble());
        return TimeSpan.FromMilliseconds(raw * factor);
    }
}
