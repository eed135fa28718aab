using System.CommandLine;
using Pilotlight.Client;
using Pilotlight.Client.Logs;

namespace Pilotlight.Cli;

/// <summary>`pilotlight logs FN`: a function's logs from all its pods, each line prefixed with its pod; -f follows pods as they come and go.</summary>
public static class LogsCommand
{
    private static readonly Argument<string> Function = new("function") { Description = "The GpuFunction's name." };

    private static readonly Option<bool> Follow = new("--follow", "-f")
    {
        Description = "Keep streaming: pods that start later (a scale-up, a wake from zero) are attached, ended ones let go.",
    };

    private static readonly Option<string?> Since = new("--since")
    {
        Description = "Only lines newer than this, e.g. 10s, 5m, 1h (for pods already running).",
    };

    private static readonly Option<string?> Container = new("--container", "-c")
    {
        Description = "Container to show (default: the model server, the pod's default container; runtime-shim for the shim).",
    };

    /// <summary>The command.</summary>
    public static Command Create()
    {
        var command = new Command("logs", """
            Print the logs of a function's pods, each line prefixed with its pod's name.

            Examples:
              pilotlight logs echo
              pilotlight logs echo -f --since 5m
              pilotlight logs echo -c runtime-shim -n ml
            """);
        command.Arguments.Add(Function);
        command.Options.Add(Follow);
        command.Options.Add(Since);
        command.Options.Add(Container);
        command.SetAction(RunAsync);
        return command;
    }

    private static async Task<int> RunAsync(ParseResult result, CancellationToken cancellationToken)
    {
        var output = result.InvocationConfiguration.Output;
        var error = result.InvocationConfiguration.Error;
        TimeSpan? since = null;
        if (result.GetValue(Since) is { } text)
        {
            if (!GoDuration.TryParse(text, out var parsed))
            {
                return Fail(error, new PilotlightClientException($"--since {text} is not a duration.", "Use a number and a unit: 30s, 5m, 1h."));
            }

            since = parsed;
        }

        var colour = DeployCommand.IsTerminal(output);
        try
        {
            using var connection = GlobalOptions.Connect(result);
            var request = new LogsRequest(connection.Namespace, result.GetValue(Function)!, result.GetValue(Container), result.GetValue(Follow), since);
            await new FunctionLogs(connection).StreamAsync(request,
                line =>
                {
                    output.WriteLine(LogLinePrefix.Format(line, colour));
                    output.Flush();
                },
                notice => error.WriteLine(notice),
                cancellationToken).ConfigureAwait(false);
            return 0;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl-C ends a follow: that is how it is meant to stop.
            return 0;
        }
        catch (PilotlightClientException e)
        {
            return Fail(error, e);
        }
        catch (k8s.Autorest.HttpOperationException e)
        {
            return Fail(error, new PilotlightClientException($"The API server refused a request: {(int)e.Response.StatusCode} {e.Response.ReasonPhrase} {e.Response.Content}".TrimEnd(),
                e.Response.StatusCode == System.Net.HttpStatusCode.Forbidden ? "Your user lacks a permission named above; ask for a Role that grants it." : null, e));
        }
        catch (HttpRequestException e)
        {
            return Fail(error, new PilotlightClientException($"Cannot reach the API server: {e.Message}", "Check --kubeconfig and --context, and that the cluster is up.", e));
        }
    }

    private static int Fail(TextWriter error, PilotlightClientException e)
    {
        error.WriteLine($"error: {e.Message}");
        if (e.Hint is { } hint)
        {
            error.WriteLine($"hint: {hint}");
        }

        return 1;
    }
}
