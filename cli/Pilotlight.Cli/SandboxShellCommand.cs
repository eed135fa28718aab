using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight shell SANDBOX [-- COMMAND...]`: an interactive shell (or any command) in a sandbox.</summary>
public static class SandboxShellCommand
{
    private static readonly Option<string?> GatewayOption = new("--gateway")
    {
        Description = "The Pilotlight gateway's URL (default: $PILOTLIGHT_GATEWAY).",
    };

    private static readonly Option<string?> TokenOption = new("--token")
    {
        Description = "A Kubernetes bearer token the gateway accepts (default: $PILOTLIGHT_TOKEN).",
    };

    public static Command Create()
    {
        var sandbox = new Argument<string>("SANDBOX") { Description = "The sandbox's name." };
        var commandLine = new Argument<string[]>("COMMAND") { Description = "What to run (default: /bin/sh).", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("shell",
            "Open an interactive shell in a sandbox, or run a command there on a terminal; exits with the command's exit code.\n\n"
            + "Examples:\n  pilotlight shell my-sandbox\n  pilotlight shell my-sandbox -- python3")
        {
            sandbox,
            commandLine,
            GatewayOption,
            TokenOption,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            var error = result.InvocationConfiguration.Error;
            try
            {
                var (gateway, token) = Gateway(result);
                var ns = result.GetValue(GlobalOptions.Namespace) ?? "default";
                var argv = result.GetValue(commandLine) is { Length: > 0 } given ? given : ["/bin/sh"];
                var tty = LocalTerminal.IsTerminal(0) && LocalTerminal.IsTerminal(1);
                // The console streams first: the runtime notes the terminal's settings when it sets them up, and must
                // note the user's, not raw mode.
                await using var stdin = Console.OpenStandardInput();
                await using var stdout = Console.OpenStandardOutput();
                await using var stderr = Console.OpenStandardError();
                using var raw = tty ? LocalTerminal.EnterRawMode() : null;
                return await new SandboxShell(gateway, token).RunAsync(ns, result.GetValue(sandbox)!, argv, tty, stdin, stdout, stderr, cancellationToken);
            }
            catch (PilotlightClientException e)
            {
                await error.WriteLineAsync($"error: {e.Message}");
                if (e.Hint is { } hint)
                {
                    await error.WriteLineAsync(hint);
                }

                return 1;
            }
        });
        return command;
    }

    /// <summary>The gateway and token to use; the shared discovery replaces this.</summary>
    private static (Uri Gateway, string Token) Gateway(ParseResult result)
    {
        var url = result.GetValue(GatewayOption) ?? Environment.GetEnvironmentVariable("PILOTLIGHT_GATEWAY");
        if (string.IsNullOrEmpty(url) || !Uri.TryCreate(url, UriKind.Absolute, out var gateway) || gateway.Scheme is not ("http" or "https"))
        {
            throw new PilotlightClientException("no gateway URL", "Pass --gateway https://... or set PILOTLIGHT_GATEWAY.");
        }

        var token = result.GetValue(TokenOption) ?? Environment.GetEnvironmentVariable("PILOTLIGHT_TOKEN");
        return string.IsNullOrEmpty(token)
            ? throw new PilotlightClientException("no token", "Pass --token or set PILOTLIGHT_TOKEN (for example: kubectl create token NAME --audience pilotlight).")
            : (gateway, token);
    }
}
