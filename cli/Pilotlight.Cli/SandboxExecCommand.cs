using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox exec NAME -- COMMAND...`: runs a command; its stdout and stderr stream apart; exits with its code.</summary>
public static class SandboxExecCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = "NAME or NAMESPACE/NAME." };
        var argv = new Argument<string[]>("command") { Description = "The program and its arguments (after --); no shell is involved.", Arity = ArgumentArity.OneOrMore };
        var stdin = new Option<bool>("--stdin", "-i") { Description = "Feed this process's standard input to the command." };
        var workdir = new Option<string?>("--workdir", "-w") { Description = "Directory to run in, relative to the workspace." };
        var timeout = Durations.Option("--timeout", "Kill the command after this long, e.g. 30s (at most 1h).");
        var env = new Option<string[]>("--env", "-e") { Description = "Environment variable NAME=VALUE (repeatable).", AllowMultipleArgumentsPerToken = false };
        var command = new Command("exec", """
            Run a command in a sandbox. Its stdout and stderr go to yours; the exit code is the command's.

            Examples:
              pilotlight sandbox exec scratch -- python -c 'import sys; print("out"); print("err", file=sys.stderr)'
              echo data | pilotlight sandbox exec scratch -i -- wc -c
            """)
        {
            name, argv, stdin, workdir, timeout, env,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            using var connection = GlobalOptions.Connect(result);
            var (ns, n) = ClientOptions.Target(result.GetValue(name)!, connection.Namespace);
            using var http = GatewayHttp.Create();
            var client = await SandboxCommand.ClientAsync(result, connection, http, ns, ct).ConfigureAwait(false);
            var input = result.GetValue(stdin) ? await Console.In.ReadToEndAsync(ct).ConfigureAwait(false) : null;
            var variables = (result.GetValue(env) ?? []).Select(e => e.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
            var outcome = await client.ExecAsync(ns, n, result.GetValue(argv)!, CliOutput.Stdout(result), CliOutput.Stderr(result), input, result.GetValue(workdir),
                result.GetValue(timeout), variables.Count > 0 ? variables : null, ct).ConfigureAwait(false);
            if (outcome.TimedOut)
            {
                await result.InvocationConfiguration.Error.WriteLineAsync($"Error: the command timed out after {outcome.Duration.TotalSeconds:0.#} s and was killed").ConfigureAwait(false);
                return 124;
            }

            return outcome.ExitCode ?? 1;
        });
        return command;
    }
}
