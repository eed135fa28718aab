using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Pilotlight.Client;
using Spectre.Console;

namespace Pilotlight.Cli;

/// <summary>`pilotlight usage [NS/FN]`: GPU-seconds per function from the operator's usage ledger, with a per-minute sparkline.</summary>
public static class UsageCommand
{
    public static Command Create()
    {
        var target = new Argument<string?>("function") { Description = "NAMESPACE/FUNCTION or FUNCTION; none: every function in the namespace.", Arity = ArgumentArity.ZeroOrOne };
        var from = new Option<string?>("--from") { Description = "Window start: a time (2026-11-23T10:00:00Z) or a duration ago (1h, 30m). Default: 1h." };
        var to = new Option<string?>("--to") { Description = "Window end: a time or a duration ago. Default: now." };
        var output = CliOutput.FormatOption();
        var command = new Command("usage", """
            GPU-seconds per function over a window, with a per-minute sparkline (from the operator's usage ledger).

            Examples:
              pilotlight usage -n team-a --from 3h --operator http://127.0.0.1:8080
              pilotlight usage team-a/llm --from 2026-11-23T10:00:00Z --to 2026-11-23T11:00:00Z -o json
            """)
        {
            target, from, to, output,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            using var connection = GlobalOptions.Connect(result);
            var now = DateTimeOffset.UtcNow;
            var end = ParseTime(result.GetValue(to), now) ?? now;
            var start = ParseTime(result.GetValue(from), now) ?? end - TimeSpan.FromHours(1);
            IReadOnlyList<(string Namespace, string Name)> functions;
            if (result.GetValue(target) is { } t)
            {
                functions = [ClientOptions.Target(t, connection.Namespace)];
            }
            else
            {
                var items = await new PilotlightResources(connection).ListAsync(PilotlightKind.GpuFunction, connection.Namespace, ct).ConfigureAwait(false);
                functions = [.. items.Select(i => (connection.Namespace, CliOutput.Text(i, "metadata", "name") ?? ""))];
            }

            var operatorUri = ClientOptions.OperatorUri(result);
            var token = await ClientOptions.TokenAsync(result, connection, null, ct).ConfigureAwait(false);
            using var http = GatewayHttp.Create();
            var client = new UsageClient(http, operatorUri, token);
            var series = new List<UsageSeries>();
            foreach (var (ns, name) in functions)
            {
                series.Add(await client.GetAsync(ns, name, start, end, cancellationToken: ct).ConfigureAwait(false));
            }

            if (result.GetValue(output) is { } format)
            {
                CliOutput.Print(result, new JsonArray([.. series.Select(s => (JsonNode)new JsonObject
                {
                    ["namespace"] = s.Namespace,
                    ["function"] = s.Name,
                    ["from"] = s.From.ToString("O", CultureInfo.InvariantCulture),
                    ["to"] = s.To.ToString("O", CultureInfo.InvariantCulture),
                    ["gpuSeconds"] = s.GpuSeconds,
                    ["perMinute"] = new JsonArray([.. s.Buckets(TimeSpan.FromMinutes(1)).Select(v => (JsonNode?)JsonValue.Create(Math.Round(v, 3)))]),
                })]), format);
                return 0;
            }

            var console = CliOutput.Terminal(result);
            console.WriteLine($"GPU-seconds from {start.UtcDateTime:u} to {end.UtcDateTime:u}, per minute:");
            var table = new Table().NoBorder().AddColumns("FUNCTION", "GPU-SECONDS", "PER MINUTE");
            foreach (var s in series.OrderByDescending(s => s.GpuSeconds))
            {
                table.AddRow(new Text($"{s.Namespace}/{s.Name}"), new Text(s.GpuSeconds.ToString("0.#", CultureInfo.InvariantCulture)),
                    new Text(Sparkline(s.Buckets(TimeSpan.FromMinutes(1)))));
            }

            console.Write(table);
            if (series.Count > 1)
            {
                console.WriteLine();
                console.Write(new BarChart().Width(60).Label("GPU-seconds by function")
                    .AddItems(series.OrderByDescending(s => s.GpuSeconds), s => new BarChartItem($"{s.Name}", Math.Round(s.GpuSeconds, 1), Color.Green)));
            }

            return 0;
        });
        return command;
    }

    /// <summary>A time (ISO 8601) or a duration before <paramref name="now"/> (90s, 30m, 3h, 2d; a leading - is allowed).</summary>
    internal static DateTimeOffset? ParseTime(string? value, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        var v = value.Trim().TrimStart('-');
        if (v.Length > 1 && double.TryParse(v[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var amount) && v[^1] is 's' or 'm' or 'h' or 'd')
        {
            return now - v[^1] switch
            {
                's' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMinutes(amount),
                'h' => TimeSpan.FromHours(amount),
                _ => TimeSpan.FromDays(amount),
            };
        }

        return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            ? at
            : throw new PilotlightClientException($"'{value}' is not a time or a duration.", "Write 2026-11-23T10:00:00Z, or 30m / 3h / 1d for that long ago.");
    }

    /// <summary>One block character per value, scaled to the largest (all lowest when everything is zero).</summary>
    internal static string Sparkline(IReadOnlyList<double> values)
    {
        const string blocks = "▁▂▃▄▅▆▇█";
        var max = values.Count == 0 ? 0 : values.Max();
        var text = new StringBuilder(values.Count);
        foreach (var v in values)
        {
            text.Append(max <= 0 ? blocks[0] : blocks[(int)Math.Round(v / max * (blocks.Length - 1))]);
        }

        return text.ToString();
    }
}
