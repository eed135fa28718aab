namespace Pilotlight.Gateway;

/// <summary>
/// One attempt that reached a pod and got an answer: how it classifies for retries, and whether that answer
/// was copied to the client (then it is over, streamed body included) or held back for a retry. Disposing it
/// frees the pod's slot; twice is harmless.
/// </summary>
internal sealed class Attempt(FunctionRoute route, PodEndpoint pod, AttemptFailure failure, bool declined, int? status) : IDisposable
{
    private int _disposed;

    /// <summary>The pod that answered.</summary>
    public PodEndpoint Pod { get; } = pod;

    /// <summary>Whether the answer is a failure a retry could fix.</summary>
    public AttemptFailure Failure { get; } = failure;

    /// <summary>The answer was held back for a retry: nothing of it reached the client.</summary>
    public bool Declined { get; } = declined;

    /// <summary>The pod's status code; null when the answer was cut short before its headers were copied.</summary>
    public int? Status { get; } = status;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            route.Release(Pod);
        }
    }
}
