using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox rm NAME...`: deletes sandboxes (their pods and workspaces go with them).</summary>
public static class SandboxRmCommand
{
    public static Command Create()
    {
        var names = new Argument<string[]>("name") { Description = "Sandboxes: NAME or NAMESPACE/NAME.", Arity = ArgumentArity.OneOrMore };
        var terminate = new Option<bool>("--terminate") { Description = "End it through the gateway but keep the Sandbox object (and its status)." };
        var command = new Command("rm", """
            Remove sandboxes.

            Examples:
              pilotlight sandbox rm scratch
              pilotlight sandbox rm team-a/scratch --terminate
            """)
        {
            names, terminate,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            using var connection = GlobalOptions.Connect(result);
            var resources = new PilotlightResources(connection);
            using var http = GatewayHttp.Create();
            foreach (var value in result.GetValue(names)!)
            {
                var (ns, n) = ClientOptions.Target(value, connection.Namespace);
                if (result.GetValue(terminate))
                {
                    var client = await SandboxCommand.ClientAsync(result, connection, http, ns, ct).ConfigureAwait(false);
                    await client.TerminateAsync(ns, n, ct).ConfigureAwait(false);
                    await result.InvocationConfiguration.Output.WriteLineAsync($"sandbox {ns}/{n} terminating").ConfigureAwait(false);
                }
                else
                {
                    await resources.DeleteAsync(PilotlightKind.Sandbox, ns, n, ct).ConfigureAwait(false);
                    await result.InvocationConfiguration.Output.WriteLineAsync($"sandbox {ns}/{n} deleted").ConfigureAwait(false);
                }
            }

            return 0;
        });
        return command;
    }
}
