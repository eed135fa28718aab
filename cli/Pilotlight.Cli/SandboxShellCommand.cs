using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox shell SANDBOX [-- COMMAND...]`: an interactive shell (or any command) in a sandbox.</summary>
public static class SandboxShellCommand
{
    public static Command Create()
    {
        var sandbox = new Argument<string>("name") { Description = "NAME or NAMESPACE/NAME." };
        var commandLine = new Argument<string[]>("command") { Description = "What to run (default: /bin/sh).", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("shell", """
            Open an interactive shell in a sandbox, or run a command there on a terminal (a PTY in the sandbox, your
            window's size, Ctrl-C to the remote process group); exits with the command's exit code.

            Examples:
              pilotlight sandbox shell scratch
              pilotlight sandbox shell team-a/scratch -- python3
            """)
        {
            sandbox,
            commandLine,
        };
        CommandActions.Set(command, async (result, cancellationToken) =>
        {
            var (ns, name, gateway, token) = await TargetAsync(result, cancellationToken).ConfigureAwait(false);
            var argv = result.GetValue(commandLine) is { Length: > 0 } given ? given : ["/bin/sh"];
            var tty = LocalTerminal.IsTerminal(0) && LocalTerminal.IsTerminal(1);
            // The console streams first: the runtime notes the terminal's settings when it sets them up, and must
            // note the user's, not raw mode.
            await using var stdin = Console.OpenStandardInput();
            await using var stdout = Console.OpenStandardOutput();
            await using var stderr = Console.OpenStandardError();
            using var raw = tty ? LocalTerminal.EnterRawMode() : null;
            return await new SandboxShell(gateway, token).RunAsync(ns, name, argv, tty, stdin, stdout, stderr, cancellationToken).ConfigureAwait(false);

            async Task<(string Namespace, string Name, Uri Gateway, string Token)> TargetAsync(ParseResult parsed, CancellationToken ct)
            {
                // With the gateway and a token given (options or PILOTLIGHT_GATEWAY / PILOTLIGHT_TOKEN) no kubeconfig is
                // needed: a shell from a machine that can reach the gateway and nothing else.
                var explicitGateway = GatewayEndpoint.Explicit(parsed.GetValue(ClientOptions.Gateway));
                var explicitToken = parsed.GetValue(ClientOptions.Token) ?? Environment.GetEnvironmentVariable(GatewayCredentials.TokenVariable);
                if (explicitGateway is not null && !string.IsNullOrWhiteSpace(explicitToken) && parsed.GetValue(ClientOptions.As) is null)
                {
                    var (givenNs, givenName) = ClientOptions.Target(parsed.GetValue(sandbox)!, parsed.GetValue(GlobalOptions.Namespace) ?? "default");
                    return (givenNs, givenName, explicitGateway, explicitToken.Trim());
                }

                using var connection = GlobalOptions.Connect(parsed);
                var (targetNs, targetName) = ClientOptions.Target(parsed.GetValue(sandbox)!, connection.Namespace);
                var url = await ClientOptions.GatewayAsync(parsed, connection, targetNs, null, ct).ConfigureAwait(false);
                var bearer = await ClientOptions.TokenAsync(parsed, connection, null, ct).ConfigureAwait(false)
                    ?? throw new PilotlightClientException("no token for the gateway",
                        "Pass --token or set PILOTLIGHT_TOKEN, use --as NAMESPACE/SERVICEACCOUNT, or use a kubeconfig user with a token.");
                return (targetNs, targetName, url, bearer);
            }
        });
        return command;
    }
}
