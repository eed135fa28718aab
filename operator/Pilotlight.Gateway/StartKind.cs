namespace Pilotlight.Gateway;

/// <summary>How the pod that served a request came to serve it: the <c>X-Pilotlight-Start</c> header.</summary>
public enum StartKind
{
    /// <summary>Routed to a pod that was already serving when the request arrived (at once, or after waiting for room).</summary>
    Ready,

    /// <summary>
    /// Served by a warm standby pod, ready before the request arrived: routed to it at once from the gateway's
    /// cache (the operator claims it after), or held and then handed one.
    /// </summary>
    Warm,

    /// <summary>Held while a pod started: created, or still loading, when the request arrived.</summary>
    Cold,
}

/// <summary>Tells the three starts apart, from what the gateway knew at the request's arrival and the pod it landed on.</summary>
public static class StartKinds
{
    /// <summary>
    /// Pod times come from the API with one-second resolution: a pod counts as ready before the request only
    /// when it was ready at least this long before the request arrived.
    /// </summary>
    public static readonly TimeSpan ApiClockResolution = TimeSpan.FromSeconds(1);

    /// <summary>The header value: cold, warm or ready.</summary>
    public static string Value(this StartKind kind) => kind switch
    {
        StartKind.Cold => "cold",
        StartKind.Warm => "warm",
        _ => "ready",
    };

    /// <summary>
    /// Ready when the pod was serving at the request's arrival; warm when it was not serving then but had been
    /// Ready (in the API) since before the arrival, which only a standby pod can be (routed to at once, or
    /// claimed from the pool while the request was held); cold otherwise: created after the arrival, still
    /// starting then, or ready only in the gateway's own probe.
    /// </summary>
    /// <param name="servingAtArrival">The pod was among the function's serving pods when the request arrived.</param>
    /// <param name="arrived">When the request arrived.</param>
    /// <param name="created">The pod's creationTimestamp.</param>
    /// <param name="readySince">When the pod's Ready condition last turned True; null when the API has not said so.</param>
    public static StartKind Classify(bool servingAtArrival, DateTimeOffset arrived, DateTimeOffset? created, DateTimeOffset? readySince)
    {
        if (servingAtArrival)
        {
            return StartKind.Ready;
        }

        if (created is null || created >= arrived)
        {
            return StartKind.Cold;
        }

        return readySince is { } ready && ready + ApiClockResolution <= arrived ? StartKind.Warm : StartKind.Cold;
    }
}
