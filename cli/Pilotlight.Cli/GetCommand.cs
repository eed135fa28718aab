using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Pilotlight.Client;
using Spectre.Console;

namespace Pilotlight.Cli;

/// <summary>`pilotlight get functions|sandboxes`: a table, or the objects as JSON/YAML.</summary>
public static class GetCommand
{
    public static Command Create()
    {
        var kind = new Argument<string>("kind") { Description = "functions (gpufunctions, gfn) or sandboxes (sandbox, sbx)." };
        kind.AcceptOnlyFromAmong("functions", "function", "gpufunctions", "gfn", "sandboxes", "sandbox", "sbx");
        var allNamespaces = new Option<bool>("--all-namespaces", "-A") { Description = "List across all namespaces." };
        var output = CliOutput.FormatOption();
        var command = new Command("get", """
            List GPU functions or sandboxes.

            Examples:
              pilotlight get functions -n team-a
              pilotlight get sandboxes -A -o yaml
            """)
        {
            kind, allNamespaces, output,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            var which = ParseKind(result.GetValue(kind)!);
            using var connection = GlobalOptions.Connect(result);
            var ns = result.GetValue(allNamespaces) ? null : connection.Namespace;
            var items = await new PilotlightResources(connection).ListAsync(which, ns, ct).ConfigureAwait(false);
            if (result.GetValue(output) is { } format)
            {
                CliOutput.Print(result, new JsonObject
                {
                    ["apiVersion"] = "v1",
                    ["kind"] = "List",
                    ["items"] = new JsonArray([.. items.Select(i => (JsonNode)i)]),
                }, format);
                return 0;
            }

            if (items.Count == 0)
            {
                await result.InvocationConfiguration.Error.WriteLineAsync($"No {PilotlightResources.Plural(which)} found{(ns is null ? "" : $" in namespace {ns}")}.").ConfigureAwait(false);
                return 0;
            }

            var table = which == PilotlightKind.GpuFunction ? FunctionTable(items, ns is null, DateTimeOffset.UtcNow) : SandboxTable(items, ns is null, DateTimeOffset.UtcNow);
            CliOutput.Terminal(result).Write(table);
            return 0;
        });
        return command;
    }

    internal static PilotlightKind ParseKind(string value) =>
        value is "sandboxes" or "sandbox" or "sbx" ? PilotlightKind.Sandbox : PilotlightKind.GpuFunction;

    /// <summary>Functions: endpoint, GPU, replicas ready/desired/warm, last request, cold starts, GPU-seconds.</summary>
    internal static Table FunctionTable(IEnumerable<JsonObject> items, bool withNamespace, DateTimeOffset now)
    {
        var table = Plain(withNamespace, "NAME", "ENDPOINT", "GPU", "READY", "WARM", "LAST REQUEST", "COLD", "GPU-SECONDS", "AGE");
        foreach (var f in items)
        {
            var cells = new List<string>();
            if (withNamespace)
            {
                cells.Add(CliOutput.Text(f, "metadata", "namespace") ?? "");
            }

            var gpuSeconds = CliOutput.Text(f, "status", "usage", "gpuSeconds");
            cells.AddRange(
            [
                CliOutput.Text(f, "metadata", "name") ?? "",
                CliOutput.Text(f, "status", "endpoint") ?? "-",
                CliOutput.Text(f, "status", "gpu") ?? Gpu(f),
                $"{CliOutput.Text(f, "status", "readyReplicas") ?? "0"}/{CliOutput.Text(f, "status", "desiredReplicas") ?? "0"}",
                CliOutput.Text(f, "status", "warmReplicas") ?? "0",
                CliOutput.Text(f, "status", "lastRequestTime") is null ? "never" : CliOutput.Age(CliOutput.Time(f, "status", "lastRequestTime"), now) + " ago",
                CliOutput.Text(f, "status", "coldStarts") ?? "0",
                gpuSeconds is null ? "0" : double.Parse(gpuSeconds, CultureInfo.InvariantCulture).ToString("0.#", CultureInfo.InvariantCulture),
                CliOutput.Age(CliOutput.Time(f, "metadata", "creationTimestamp"), now),
            ]);
            table.AddRow([.. cells.Select(c => new Text(c))]);
        }

        return table;
    }

    /// <summary>Sandboxes: state, pod, expiry.</summary>
    internal static Table SandboxTable(IEnumerable<JsonObject> items, bool withNamespace, DateTimeOffset now)
    {
        var table = Plain(withNamespace, "NAME", "STATE", "IMAGE", "POD", "EXPIRES", "AGE");
        foreach (var s in items)
        {
            var cells = new List<string>();
            if (withNamespace)
            {
                cells.Add(CliOutput.Text(s, "metadata", "namespace") ?? "");
            }

            cells.AddRange(
            [
                CliOutput.Text(s, "metadata", "name") ?? "",
                SandboxState(s),
                CliOutput.Text(s, "spec", "image") ?? "",
                CliOutput.Text(s, "status", "podName") ?? "-",
                CliOutput.Age(CliOutput.Time(s, "status", "expiresAt"), now),
                CliOutput.Age(CliOutput.Time(s, "metadata", "creationTimestamp"), now),
            ]);
            table.AddRow([.. cells.Select(c => new Text(c))]);
        }

        return table;
    }

    /// <summary>Finished (with its reason), Ready, or Pending (with the Ready condition's reason).</summary>
    internal static string SandboxState(JsonObject sandbox) =>
        SandboxClient.Condition(sandbox, "Finished") is { Status: "True" } finished ? $"Finished ({finished.Reason})"
        : SandboxClient.Condition(sandbox, "Ready") is { Status: "True" } ? "Ready"
        : SandboxClient.Condition(sandbox, "Ready") is { Reason: { } reason } ? $"Pending ({reason})"
        : "Pending";

    private static string Gpu(JsonObject f) =>
        CliOutput.Text(f, "spec", "gpu", "type") is { } type ? $"{CliOutput.Text(f, "spec", "gpu", "count") ?? "1"}x {type}" : "-";

    private static Table Plain(bool withNamespace, params string[] columns)
    {
        var table = new Table().NoBorder();
        table.ShowHeaders = true;
        if (withNamespace)
        {
            table.AddColumn(new TableColumn("NAMESPACE").PadLeft(0));
        }

        foreach (var c in columns)
        {
            table.AddColumn(new TableColumn(c).PadLeft(0).PadRight(3));
        }

        return table;
    }
}
