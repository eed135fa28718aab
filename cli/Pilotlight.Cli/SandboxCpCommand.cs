using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox cp SRC DST`: copies files and directories in or out; one side is <c>SANDBOX:PATH</c>.</summary>
public static class SandboxCpCommand
{
    public static Command Create()
    {
        var source = new Argument<string>("source") { Description = "A local path, or SANDBOX:PATH ([NAMESPACE/]SANDBOX:PATH)." };
        var destination = new Argument<string>("destination") { Description = "A local path, or SANDBOX:PATH." };
        var command = new Command("cp", """
            Copy a file or directory into or out of a sandbox (paths in it are relative to its workspace).
            A directory travels as one tar stream: permission bits, symbolic links and empty directories are kept.
            Copying out, links that point outside the destination are skipped (and named on stderr).

            Examples:
              pilotlight sandbox cp ./project scratch:project
              pilotlight sandbox cp team-a/scratch:out/result.json ./result.json
            """)
        {
            source, destination,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            var (from, to) = (ParseEnd(result.GetValue(source)!), ParseEnd(result.GetValue(destination)!));
            if ((from.Sandbox is null) == (to.Sandbox is null))
            {
                throw new PilotlightClientException("Exactly one side of cp must be in a sandbox (SANDBOX:PATH).", "e.g. pilotlight sandbox cp ./dir scratch:dir");
            }

            using var connection = GlobalOptions.Connect(result);
            var remote = from.Sandbox ?? to.Sandbox!;
            var (ns, n) = ClientOptions.Target(remote, connection.Namespace);
            using var http = GatewayHttp.Create();
            var client = await SandboxCommand.ClientAsync(result, connection, http, ns, ct).ConfigureAwait(false);
            var error = result.InvocationConfiguration.Error;
            if (from.Sandbox is null)
            {
                var sent = await client.CopyToAsync(ns, n, from.Path, to.Path, ct).ConfigureAwait(false);
                await error.WriteLineAsync($"{sent} file(s) copied").ConfigureAwait(false);
                return 0;
            }

            var copied = await client.CopyFromAsync(ns, n, from.Path, to.Path, ct).ConfigureAwait(false);
            foreach (var link in copied.Skipped)
            {
                await error.WriteLineAsync($"skipped {link}: a symbolic link pointing outside {to.Path}").ConfigureAwait(false);
            }

            await error.WriteLineAsync($"{copied.Files} file(s) copied").ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// <c>[NS/]SANDBOX:PATH</c> is in a sandbox; anything else is local (a path starting with . or / never is,
    /// so ./a:b stays local).
    /// </summary>
    internal static (string? Sandbox, string Path) ParseEnd(string value)
    {
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || value[0] is '.' or '/' || value[..colon].Contains('\\', StringComparison.Ordinal))
        {
            return (null, value);
        }

        return (value[..colon], value[(colon + 1)..]);
    }
}
