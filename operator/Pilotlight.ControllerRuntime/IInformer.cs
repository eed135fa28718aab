namespace Pilotlight.ControllerRuntime;

/// <summary>The part of an informer a host needs: run it, know when it synced.</summary>
public interface IInformer
{
    /// <summary>The resource it follows.</summary>
    string Resource { get; }

    /// <summary>Completes once the first list is cached.</summary>
    Task Synced { get; }

    /// <summary>Lists and watches until cancelled.</summary>
    Task RunAsync(CancellationToken cancellationToken);

    /// <summary>Reports relists to <paramref name="metrics"/>.</summary>
    internal void UseMetrics(ControllerMetrics metrics);
}
