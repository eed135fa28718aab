namespace Pilotlight.Client;

/// <summary>A failure a user can act on: what went wrong, and what to do about it.</summary>
public class PilotlightClientException(string message, string? hint = null, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>What to do about it, in a sentence; null where there is nothing to suggest.</summary>
    public string? Hint { get; } = hint;
}
