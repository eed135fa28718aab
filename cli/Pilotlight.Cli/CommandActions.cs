using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>Runs a command's action, turning actionable failures into a message, a hint and exit code 1.</summary>
internal static class CommandActions
{
    public static void Set(Command command, Func<ParseResult, CancellationToken, Task<int>> action) =>
        command.SetAction(async (result, cancellationToken) =>
        {
            try
            {
                return await action(result, cancellationToken).ConfigureAwait(false);
            }
            catch (PilotlightClientException e)
            {
                var error = result.InvocationConfiguration.Error;
                await error.WriteLineAsync($"Error: {e.Message}").ConfigureAwait(false);
                if (e.Hint is { } hint)
                {
                    await error.WriteLineAsync($"Hint: {hint}").ConfigureAwait(false);
                }

                return 1;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await result.InvocationConfiguration.Error.WriteLineAsync($"Error: {e.Message}").ConfigureAwait(false);
                return 1;
            }
        });
}
