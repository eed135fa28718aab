using System.CommandLine;
using System.Text.Json.Nodes;
using Pilotlight.Client;
using Spectre.Console;

namespace Pilotlight.Cli;

/// <summary>`pilotlight describe function|sandbox NAME`: its fields, conditions and recent events.</summary>
public static class DescribeCommand
{
    public static Command Create()
    {
        var kind = new Argument<string>("kind") { Description = "function or sandbox." };
        kind.AcceptOnlyFromAmong("function", "functions", "gpufunction", "gfn", "sandbox", "sandboxes", "sbx");
        var name = new Argument<string>("name") { Description = "NAME or NAMESPACE/NAME." };
        var output = CliOutput.FormatOption();
        var command = new Command("describe", """
            Show a GPU function or sandbox: its settings, status, conditions and recent events.

            Examples:
              pilotlight describe function team-a/llm
              pilotlight describe sandbox scratch -n team-a -o json
            """)
        {
            kind, name, output,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            var which = GetCommand.ParseKind(result.GetValue(kind)!);
            using var connection = GlobalOptions.Connect(result);
            var (ns, n) = ClientOptions.Target(result.GetValue(name)!, connection.Namespace);
            var resources = new PilotlightResources(connection);
            var obj = await resources.GetAsync(which, ns, n, ct).ConfigureAwait(false);
            if (result.GetValue(output) is { } format)
            {
                CliOutput.Print(result, obj, format);
                return 0;
            }

            var events = await resources.EventsAsync(ns, n, which == PilotlightKind.GpuFunction ? "GpuFunction" : "Sandbox", cancellationToken: ct).ConfigureAwait(false);
            var now = DateTimeOffset.UtcNow;
            var console = CliOutput.Terminal(result);
            var fields = new Grid().AddColumn(new GridColumn().PadRight(2)).AddColumn();
            foreach (var (label, value) in Fields(obj, which, now))
            {
                fields.AddRow(new Text(label + ":"), new Text(value));
            }

            console.Write(fields);
            console.WriteLine();
            console.WriteLine("Conditions:");
            var conditions = new Table().NoBorder().AddColumns("TYPE", "STATUS", "REASON", "AGE", "MESSAGE");
            foreach (var c in (obj["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>())
            {
                conditions.AddRow(new Text(CliOutput.Text(c, "type") ?? ""), new Text(CliOutput.Text(c, "status") ?? ""), new Text(CliOutput.Text(c, "reason") ?? ""),
                    new Text(CliOutput.Age(CliOutput.Time(c, "lastTransitionTime"), now)), new Text(CliOutput.Text(c, "message") ?? ""));
            }

            console.Write(conditions);
            console.WriteLine();
            console.WriteLine("Events:");
            if (events.Count == 0)
            {
                console.WriteLine("  <none>");
            }
            else
            {
                var table = new Table().NoBorder().AddColumns("TYPE", "REASON", "AGE", "COUNT", "MESSAGE");
                foreach (var e in events)
                {
                    var at = e.LastTimestamp ?? e.EventTime ?? e.Metadata.CreationTimestamp;
                    table.AddRow(new Text(e.Type ?? ""), new Text(e.Reason ?? ""), new Text(CliOutput.Age(at is { } t ? new DateTimeOffset(t, TimeSpan.Zero) : null, now)),
                        new Text($"{e.Count ?? 1}"), new Text(e.Message ?? ""));
                }

                console.Write(table);
            }

            return 0;
        });
        return command;
    }

    /// <summary>The fields shown for an object, in order.</summary>
    internal static IEnumerable<(string Label, string Value)> Fields(JsonObject obj, PilotlightKind kind, DateTimeOffset now)
    {
        yield return ("Name", CliOutput.Text(obj, "metadata", "name") ?? "");
        yield return ("Namespace", CliOutput.Text(obj, "metadata", "namespace") ?? "");
        yield return ("Created", $"{CliOutput.Text(obj, "metadata", "creationTimestamp")} ({CliOutput.Age(CliOutput.Time(obj, "metadata", "creationTimestamp"), now)} ago)");
        yield return ("Image", CliOutput.Text(obj, "spec", "image") ?? "");
        if (kind == PilotlightKind.GpuFunction)
        {
            yield return ("Endpoint", CliOutput.Text(obj, "status", "endpoint") ?? "-");
            yield return ("GPU", CliOutput.Text(obj, "status", "gpu") ?? $"{CliOutput.Text(obj, "spec", "gpu", "count") ?? "-"} x {CliOutput.Text(obj, "spec", "gpu", "type") ?? "-"}");
            yield return ("Replicas", $"{CliOutput.Text(obj, "status", "readyReplicas") ?? "0"} ready / {CliOutput.Text(obj, "status", "desiredReplicas") ?? "0"} desired / "
                + $"{CliOutput.Text(obj, "status", "warmReplicas") ?? "0"} warm / {CliOutput.Text(obj, "status", "replicas") ?? "0"} total");
            yield return ("Last request", CliOutput.Text(obj, "status", "lastRequestTime") ?? "never");
            yield return ("Cold starts", CliOutput.Text(obj, "status", "coldStarts") ?? "0");
            yield return ("GPU-seconds", CliOutput.Text(obj, "status", "usage", "gpuSeconds") ?? "0");
            yield return ("Access", CliOutput.Text(obj, "spec", "access") ?? "-");
        }
        else
        {
            yield return ("State", GetCommand.SandboxState(obj));
            yield return ("Pod", CliOutput.Text(obj, "status", "podName") ?? "-");
            yield return ("Started", CliOutput.Text(obj, "status", "startTime") ?? "-");
            yield return ("Expires", CliOutput.Text(obj, "status", "expiresAt") is { } at ? $"{at} ({CliOutput.Age(CliOutput.Time(obj, "status", "expiresAt"), now)})" : "-");
            yield return ("Timeout", CliOutput.Text(obj, "spec", "timeout") ?? "-");
            yield return ("Idle timeout", CliOutput.Text(obj, "spec", "idleTimeout") ?? "-");
            yield return ("GPU-seconds", CliOutput.Text(obj, "status", "usage", "gpuSeconds") ?? "0");
        }
    }
}
