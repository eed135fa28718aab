using System.CommandLine;
using System.Text.Json.Nodes;
using Pilotlight.Client;
using Spectre.Console;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox ls [NAME [PATH]]`: the sandboxes of a namespace, or the files in one.</summary>
public static class SandboxLsCommand
{
    public static Command Create()
    {
        var name = new Argument<string?>("name") { Description = "A sandbox ([NAMESPACE/]NAME) to list files of; none: list sandboxes.", Arity = ArgumentArity.ZeroOrOne };
        var path = new Argument<string?>("path") { Description = "Directory in the workspace (default: the workspace).", Arity = ArgumentArity.ZeroOrOne };
        var output = CliOutput.FormatOption();
        var command = new Command("ls", """
            List sandboxes, or the files in a sandbox's directory.

            Examples:
              pilotlight sandbox ls -n team-a
              pilotlight sandbox ls scratch out -o json
            """)
        {
            name, path, output,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            using var connection = GlobalOptions.Connect(result);
            var format = result.GetValue(output);
            if (result.GetValue(name) is not { } target)
            {
                var items = await new PilotlightResources(connection).ListAsync(PilotlightKind.Sandbox, connection.Namespace, ct).ConfigureAwait(false);
                if (format is not null)
                {
                    CliOutput.Print(result, new JsonObject { ["apiVersion"] = "v1", ["kind"] = "List", ["items"] = new JsonArray([.. items.Select(i => (JsonNode)i)]) }, format);
                }
                else
                {
                    CliOutput.Terminal(result).Write(GetCommand.SandboxTable(items, false, DateTimeOffset.UtcNow));
                }

                return 0;
            }

            var (ns, n) = ClientOptions.Target(target, connection.Namespace);
            using var http = GatewayHttp.Create();
            var client = await SandboxCommand.ClientAsync(result, connection, http, ns, ct).ConfigureAwait(false);
            var entries = await client.ListAsync(ns, n, result.GetValue(path) ?? "", ct).ConfigureAwait(false);
            if (format is not null)
            {
                CliOutput.Print(result, new JsonArray([.. entries.Select(e => (JsonNode)new JsonObject { ["name"] = e.Name, ["type"] = e.Type, ["size"] = e.Size })]), format);
                return 0;
            }

            var table = new Table().NoBorder().AddColumns("TYPE", "SIZE", "NAME");
            foreach (var e in entries)
            {
                table.AddRow(new Text(e.Type), new Text(e.Type == "dir" ? "-" : $"{e.Size}"), new Text(e.Name));
            }

            CliOutput.Terminal(result).Write(table);
            return 0;
        });
        return command;
    }
}
