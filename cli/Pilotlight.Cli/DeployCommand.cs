using System.CommandLine;
using Pilotlight.Client;
using Pilotlight.Client.Deploy;
using Spectre.Console;

namespace Pilotlight.Cli;

/// <summary>
/// `pilotlight deploy -f FILE|DIR`: server-side applies manifests (any kind), then follows each GpuFunction until
/// it is Ready or Stalled, with live progress on a terminal and plain lines elsewhere.
/// </summary>
public static class DeployCommand
{
    private static readonly Option<string[]> Files = new("--filename", "-f")
    {
        Description = "Manifest file or directory (read recursively; .yaml, .yml, .json); - reads standard input. Repeatable.",
        Required = true,
        Arity = ArgumentArity.OneOrMore,
    };

    private static readonly Option<bool> Wait = new("--wait")
    {
        Description = "Wait for each GpuFunction to be Ready (or Stalled) and show its progress (default: true; --wait false to skip).",
        DefaultValueFactory = _ => true,
    };

    private static readonly Option<string> Timeout = new("--timeout")
    {
        Description = "How long to wait for the functions to be Ready, e.g. 90s, 5m, 1h (default: 5m).",
        DefaultValueFactory = _ => "5m",
    };

    private static readonly Option<bool> ForceConflicts = new("--force-conflicts")
    {
        Description = "Take over fields another field manager owns instead of failing on the conflict.",
    };

    /// <summary>The command.</summary>
    public static Command Create()
    {
        var command = new Command("deploy", """
            Apply manifests by server-side apply (field manager pilotlight-cli) and wait for GpuFunctions to be Ready.

            Exit status: 0 when every function is Ready (or scaled to zero); 1 when one is Stalled, the wait times out,
            or a manifest cannot be read or applied.

            Examples:
              pilotlight deploy -f samples/demo/echo-l4.yaml
              pilotlight deploy -f deploy/ --timeout 10m -n ml
              pilotlight deploy -f fn.yaml --wait false
            """);
        command.Options.Add(Files);
        command.Options.Add(Wait);
        command.Options.Add(Timeout);
        command.Options.Add(ForceConflicts);
        command.SetAction(RunAsync);
        return command;
    }

    private static async Task<int> RunAsync(ParseResult result, CancellationToken cancellationToken)
    {
        var output = result.InvocationConfiguration.Output;
        var error = result.InvocationConfiguration.Error;
        if (!GoDuration.TryParse(result.GetValue(Timeout), out var timeout))
        {
            return Fail(error, new PilotlightClientException($"--timeout {result.GetValue(Timeout)} is not a duration.", "Use a number and a unit: 90s, 5m, 1h30m."));
        }

        try
        {
            var manifests = ManifestReader.Read(result.GetValue(Files) ?? []);
            if (manifests.Count == 0)
            {
                throw new PilotlightClientException("The manifests hold no objects.", "Check that -f names the right files.");
            }

            using var connection = GlobalOptions.Connect(result);
            var apply = new ServerSideApply(connection);
            var applied = new List<AppliedResource>();
            foreach (var manifest in manifests)
            {
                var done = await apply.ApplyAsync(manifest, result.GetValue(ForceConflicts), cancellationToken).ConfigureAwait(false);
                applied.Add(done);
                await output.WriteLineAsync($"{done.DisplayName} serverside-applied").ConfigureAwait(false);
            }

            var functions = applied.Where(a => a.Resource is { Group: "pilotlight.dev", Kind: "GpuFunction" }).ToList();
            if (!result.GetValue(Wait) || functions.Count == 0)
            {
                return 0;
            }

            var waiter = new DeployWaiter(new ApiFunctionObserver(connection));
            var outcome = IsTerminal(output)
                ? await WaitLiveAsync(AnsiConsole.Console, waiter, functions, timeout, cancellationToken).ConfigureAwait(false)
                : await WaitPlainAsync(waiter, functions, timeout, output, cancellationToken).ConfigureAwait(false);
            return await ReportAsync(outcome, timeout, output, error).ConfigureAwait(false);
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

    /// <summary>One line per function whenever its report changes.</summary>
    private static Task<DeployOutcome> WaitPlainAsync(DeployWaiter waiter, List<AppliedResource> functions, TimeSpan timeout, TextWriter output, CancellationToken ct)
    {
        var last = new Dictionary<string, FunctionProgressReport>();
        return waiter.WaitAsync(functions, timeout, reports =>
        {
            foreach (var (function, report) in reports)
            {
                if (!last.TryGetValue(function.DisplayName, out var before) || before != report)
                {
                    last[function.DisplayName] = report;
                    output.WriteLine($"{function.DisplayName}: {report}");
                }
            }
        }, ct);
    }

    /// <summary>A table redrawn in place while waiting.</summary>
    internal static async Task<DeployOutcome> WaitLiveAsync(IAnsiConsole console, DeployWaiter waiter, IReadOnlyList<AppliedResource> functions, TimeSpan timeout, CancellationToken ct)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("Function", "Stage", "Pods", "Detail");
        // Names and stages stay whole; the scheduler's words wrap.
        table.Columns[0].NoWrap();
        table.Columns[1].NoWrap();
        foreach (var function in functions)
        {
            table.AddRow(Markup.Escape(function.DisplayName), "[grey]applied[/]", "", "");
        }

        DeployOutcome? outcome = null;
        await console.Live(table).AutoClear(false).StartAsync(async context =>
        {
            outcome = await waiter.WaitAsync(functions, timeout, reports =>
            {
                for (var i = 0; i < reports.Count; i++)
                {
                    var report = reports[i].Report;
                    var colour = report.Stage switch
                    {
                        DeployStage.Ready or DeployStage.ScaledToZero => "green",
                        DeployStage.Stalled => "red",
                        _ => "yellow",
                    };
                    table.UpdateCell(i, 1, $"[{colour}]{Markup.Escape(FunctionProgressReport.StageText(report.Stage))}[/]");
                    table.UpdateCell(i, 2, Markup.Escape(report.Summary));
                    table.UpdateCell(i, 3, Markup.Escape(report.Detail));
                }

                context.Refresh();
            }, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return outcome!;
    }

    private static async Task<int> ReportAsync(DeployOutcome outcome, TimeSpan timeout, TextWriter output, TextWriter error)
    {
        foreach (var (function, report) in outcome.Reports)
        {
            if (report.Succeeded)
            {
                await output.WriteLineAsync($"{function.DisplayName} is {FunctionProgressReport.StageText(report.Stage)}").ConfigureAwait(false);
            }
            else if (report.Stage == DeployStage.Stalled)
            {
                await error.WriteLineAsync($"error: {function.DisplayName} is Stalled: {report.Detail}").ConfigureAwait(false);
            }
            else
            {
                await error.WriteLineAsync($"error: {function.DisplayName} not Ready within {result(timeout)}; last seen {report}").ConfigureAwait(false);
            }
        }

        if (!outcome.Succeeded)
        {
            await error.WriteLineAsync(outcome.TimedOut
                ? "hint: `kubectl describe gpufunction NAME` and its pods' events tell more; --timeout waits longer."
                : "hint: the reason above is the operator's (kubectl describe gpufunction NAME); fix it and deploy again.").ConfigureAwait(false);
        }

        return outcome.Succeeded ? 0 : 1;

        static string result(TimeSpan t) => t.TotalMinutes >= 1 && t.Seconds == 0 ? $"{t.TotalMinutes:0}m" : $"{t.TotalSeconds:0}s";
    }

    /// <summary>True when <paramref name="output"/> is the process's own standard output and that is a terminal.</summary>
    internal static bool IsTerminal(TextWriter output) =>
        ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not "dumb";

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
