using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox ...`: the parent of the sandbox subcommands, one file each.</summary>
public static class SandboxCommand
{
    public static Command Create()
    {
        var command = new Command("sandbox", """
            Create, use and remove sandboxes: isolated containers to run commands and move files in.

            Examples:
              pilotlight sandbox create scratch --image python:3.12-slim
              pilotlight sandbox exec scratch -- python -c 'print(1)'
              pilotlight sandbox cp ./data scratch:data
              pilotlight sandbox shell scratch
              pilotlight sandbox rm scratch
            """);
        // Subcommands, one line each (keep sorted; each file owns its command).
        command.Subcommands.Add(SandboxCpCommand.Create());
        command.Subcommands.Add(SandboxCreateCommand.Create());
        command.Subcommands.Add(SandboxExecCommand.Create());
        command.Subcommands.Add(SandboxLsCommand.Create());
        command.Subcommands.Add(SandboxRmCommand.Create());
        command.Subcommands.Add(SandboxShellCommand.Create());
        return command;
    }

    /// <summary>A client for the sandbox API: the gateway and a token for the API server's audience (what the gateway reviews).</summary>
    internal static async Task<SandboxClient> ClientAsync(ParseResult result, ClusterConnection connection, HttpClient http, string ns, CancellationToken ct)
    {
        var gateway = await ClientOptions.GatewayAsync(result, connection, ns, null, ct).ConfigureAwait(false);
        var token = await ClientOptions.TokenAsync(result, connection, null, ct).ConfigureAwait(false);
        return new SandboxClient(new PilotlightResources(connection), http, gateway, token);
    }
}
