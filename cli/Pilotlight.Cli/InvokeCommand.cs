using System.CommandLine;
using System.Diagnostics;
using System.Text;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight invoke NS/FN [PATH]`: calls a function through the gateway and streams its answer to stdout.</summary>
public static class InvokeCommand
{
    public static Command Create()
    {
        var target = new Argument<string>("function") { Description = "NAMESPACE/FUNCTION, or FUNCTION in -n's namespace." };
        var path = new Argument<string?>("path") { Description = "Path (and query) under the function, e.g. /v1/completions.", Arity = ArgumentArity.ZeroOrOne };
        var data = new Option<string?>("--data", "-d") { Description = "Request body: text, @FILE to stream a file, or - for standard input." };
        var method = new Option<string?>("--request", "-X") { Description = "HTTP method (default: POST with a body, else GET)." };
        var headers = new Option<string[]>("--header", "-H") { Description = "Request header 'Name: value' (repeatable).", AllowMultipleArgumentsPerToken = false };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show the status, the gateway's cold-start headers and timing on stderr." };
        var command = new Command("invoke", """
            Invoke a GPU function through the gateway; its response body streams to stdout.

            Examples:
              pilotlight invoke team-a/llm /v1/completions -d '{"prompt":"hi"}' -H 'Content-Type: application/json' -v
              pilotlight invoke team-a/whisper -d @audio.wav
            """)
        {
            target, path, data, method, headers, verbose,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            using var connection = GlobalOptions.Connect(result);
            var (ns, fn) = ClientOptions.Target(result.GetValue(target)!, connection.Namespace);
            var gateway = await ClientOptions.GatewayAsync(result, connection, ns, fn, ct).ConfigureAwait(false);
            var token = await ClientOptions.TokenAsync(result, connection, GatewayCredentials.InvokeAudience, ct).ConfigureAwait(false);
            await using var body = OpenBody(result.GetValue(data));
            var invocation = new Invocation(ns, fn, result.GetValue(path), result.GetValue(method), ParseHeaders(result.GetValue(headers) ?? []), body);
            using var http = GatewayHttp.Create();
            var stopwatch = Stopwatch.StartNew();
            using var response = await new FunctionInvoker(http, gateway, token).InvokeAsync(invocation, ct).ConfigureAwait(false);
            var error = result.InvocationConfiguration.Error;
            if (result.GetValue(verbose))
            {
                var timing = InvocationTiming.From(response);
                await error.WriteLineAsync($"< HTTP {(int)response.StatusCode} {response.ReasonPhrase} after {stopwatch.ElapsedMilliseconds} ms").ConfigureAwait(false);
                if (timing.Start is { } start)
                {
                    await error.WriteLineAsync($"< start: {start}").ConfigureAwait(false);
                }

                if (timing.ColdStart is { } cold)
                {
                    await error.WriteLineAsync($"< cold start: {cold}").ConfigureAwait(false);
                }

                if (timing.RoutedAfter is { } held)
                {
                    await error.WriteLineAsync($"< held by the gateway: {held.TotalMilliseconds:0} ms").ConfigureAwait(false);
                }
            }

            var stdout = CliOutput.Stdout(result);
            await using (var responseBody = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
            {
                var buffer = new byte[64 * 1024];
                int read;
                while ((read = await responseBody.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await stdout.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                    await stdout.FlushAsync(ct).ConfigureAwait(false);
                }
            }

            if (!response.IsSuccessStatusCode)
            {
                await error.WriteLineAsync($"Error: function {ns}/{fn} answered {(int)response.StatusCode} {response.ReasonPhrase}").ConfigureAwait(false);
                return 1;
            }

            return 0;
        });
        return command;
    }

    /// <summary>The body -d names: null, a file (@FILE), standard input (-) or the text itself.</summary>
    internal static Stream? OpenBody(string? data) => data switch
    {
        null => null,
        "-" => Console.OpenStandardInput(),
        ['@', .. var file] => File.Exists(file) ? File.OpenRead(file)
            : throw new PilotlightClientException($"-d @{file}: no such file.", "Give a path to a file, or drop the @ to send the text itself."),
        _ => new MemoryStream(Encoding.UTF8.GetBytes(data)),
    };

    /// <summary>'Name: value' pairs; a malformed one is an error.</summary>
    internal static IReadOnlyList<KeyValuePair<string, string>> ParseHeaders(IEnumerable<string> headers) =>
    [
        .. headers.Select(h => h.IndexOf(':', StringComparison.Ordinal) is var i && i > 0
            ? new KeyValuePair<string, string>(h[..i].Trim(), h[(i + 1)..].Trim())
            : throw new PilotlightClientException($"Header '{h}' is not 'Name: value'.", "Write -H 'Content-Type: application/json'.")),
    ];
}
