using System.Globalization;
using System.Text.Json;
using Pilotlight.Metering;
using Pilotlight.RuntimeShim;

using Pilotlight.Tests.Integration;

namespace Pilotlight.Tests.RuntimeShim;

/// <summary>
/// The sidecars log as the operator does when it passes them its settings (<c>PILOTLIGHT_LOG_FORMAT</c>,
/// <c>PILOTLIGHT_LOG_LEVEL</c>): the shim, the sandbox agent and the meter as real processes write one JSON object
/// per line, of the .NET JSON console formatter's shape, and nothing else; a bad value stops them with a clear error.
/// </summary>
public class SidecarLoggingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>Each line of <paramref name="lines"/> (blank ones skipped) as a JSON log entry of the .NET console formatter's shape.</summary>
    internal static List<JsonElement> JsonEntries(IEnumerable<string> lines, string component)
    {
        var entries = new List<JsonElement>();
        foreach (var line in lines.Where(l => l.Length > 0))
        {
            JsonElement entry;
            try
            {
                entry = JsonDocument.Parse(line).RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw new AssertionException($"{component} wrote a line that is not JSON ({e.Message}): {line}");
            }

            Assert.That(entry.ValueKind, Is.EqualTo(JsonValueKind.Object), $"{component}: {line}");
            foreach (var property in new[] { "Timestamp", "LogLevel", "Category", "Message" })
            {
                Assert.That(entry.TryGetProperty(property, out _), Is.True, $"{component} entry without {property}: {line}");
            }

            entries.Add(entry);
        }

        return entries;
    }

    /// <summary>Starts a program, waits for <paramref name="ready"/>, stops it with SIGTERM and returns its two streams once it exited.</summary>
    private static async Task<(string Stdout, string Stderr, int ExitCode)> RunAndStopAsync(string dll, Dictionary<string, string> env, Func<Task<bool>> ready)
    {
        var dir = Directory.CreateTempSubdirectory("pilotlight-sidecar-log-").FullName;
        var process = ManagedProcess.Start("dotnet", ["exec", dll], Path.Combine(dir, "all.log"), env, Path.Combine(dir, "cri.log"));
        try
        {
            await Eventually.HoldsAsync(async () => !process.HasExited && await ready(), Patience, $"{Path.GetFileName(dll)} up ({process.LogTail(5)})");
            process.Terminate();
            Assert.That(process.WaitForExit(Patience), Is.True, "exits on SIGTERM");
            var (stdout, stderr) = await process.ReadContainerLogAsync(Patience);
            return (string.Join('\n', stdout), string.Join('\n', stderr), process.ExitCode);
        }
        finally
        {
            await process.StopAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string ShimDll => Path.Combine(AppContext.BaseDirectory, "Pilotlight.RuntimeShim.dll");

    private static string MeterDll => Path.Combine(RepositoryRoot.Path, "metering", "Pilotlight.Metering", "bin",
        new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name, "net10.0", "Pilotlight.Metering.dll");

    private static async Task<bool> AnswersAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/ready"));
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    [Test]
    public async Task The_shim_with_json_logging_writes_only_json_lines_through_start_and_drain()
    {
        var port = ControlPlane.FreePort();
        var (stdout, stderr, exit) = await RunAndStopAsync(ShimDll, new()
        {
            ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
            ["PILOTLIGHT_LISTEN_PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["PILOTLIGHT_UPSTREAM"] = $"http://127.0.0.1:{ControlPlane.FreePort()}",
            ["PILOTLIGHT_DRAIN_SECONDS"] = "1",
            ["PILOTLIGHT_LOG_FORMAT"] = "json",
            ["PILOTLIGHT_LOG_LEVEL"] = "Debug",
        }, () => AnswersAsync(port));

        Assert.That(exit, Is.Zero);
        Assert.That(stderr, Is.Empty, "nothing outside the JSON log");
        var entries = JsonEntries(stdout.Split('\n'), "shim");
        Assert.That(entries.Select(e => e.GetProperty("Message").GetString()), Has.Some.Contains("SIGTERM"), "the drain is logged");
        Assert.That(entries.Select(e => e.GetProperty("Category").GetString()), Has.Some.EqualTo("Pilotlight.RuntimeShim"));
    }

    [Test]
    public async Task The_sandbox_agent_at_warning_level_logs_no_information()
    {
        var workspace = Directory.CreateTempSubdirectory("pilotlight-sandbox-").FullName;
        var port = ControlPlane.FreePort();
        try
        {
            var env = new Dictionary<string, string>
            {
                ["PILOTLIGHT_MODE"] = "sandbox",
                ["PILOTLIGHT_WORKSPACE"] = workspace,
                ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
                ["PILOTLIGHT_AGENT_INSECURE"] = "true",
                ["PILOTLIGHT_LISTEN_PORT"] = port.ToString(CultureInfo.InvariantCulture),
                ["PILOTLIGHT_LOG_FORMAT"] = "json",
            };
            var (stdout, stderr, _) = await RunAndStopAsync(ShimDll, env, () => AnswersAsync(port));
            Assert.That(stderr, Is.Empty);
            Assert.That(JsonEntries(stdout.Split('\n'), "agent").Select(e => e.GetProperty("Message").GetString()),
                Has.Some.StartsWith("Sandbox agent listening"), "the default level is Information");

            env["PILOTLIGHT_LOG_LEVEL"] = "Warning";
            (stdout, stderr, _) = await RunAndStopAsync(ShimDll, env, () => AnswersAsync(port));
            Assert.That(stderr, Is.Empty);
            Assert.That(JsonEntries(stdout.Split('\n'), "agent").Select(e => e.GetProperty("LogLevel").GetString()),
                Has.None.EqualTo("Information"));
        }
        finally
        {
            Directory.Delete(workspace, recursive: true);
        }
    }

    [Test]
    public async Task The_meter_with_json_logging_writes_only_json_lines_with_its_warnings_as_warnings()
    {
        var dir = Directory.CreateTempSubdirectory("pilotlight-meter-log-").FullName;
        try
        {
            // A corrupt checkpoint: a warning at start; SIGTERM: the information line of its totals.
            var checkpoint = Path.Combine(dir, "meter.json");
            await File.WriteAllTextAsync(checkpoint, "{ not json");
            var (stdout, stderr, exit) = await RunAndStopAsync(MeterDll, new()
            {
                ["PILOTLIGHT_NAMESPACE"] = "ns", ["PILOTLIGHT_FUNCTION"] = "fn", ["PILOTLIGHT_GPU_COUNT"] = "1",
                ["PILOTLIGHT_CHECKPOINT"] = checkpoint, ["PILOTLIGHT_METRICS_PORT"] = "0", ["PILOTLIGHT_CGROUP"] = Path.Combine(dir, "none"),
                ["PILOTLIGHT_LOG_FORMAT"] = "json",
            }, () => Task.FromResult(File.Exists(checkpoint) && !File.ReadAllText(checkpoint).StartsWith("{ not", StringComparison.Ordinal)));

            Assert.That(exit, Is.Zero);
            Assert.That(stdout, Is.Empty);
            var entries = JsonEntries(stderr.Split('\n'), "meter");
            Assert.That(entries.Select(e => (e.GetProperty("LogLevel").GetString(), e.GetProperty("Message").GetString())),
                Has.Some.Matches<(string? Level, string? Message)>(e => e.Level == "Warning" && e.Message!.Contains("checkpoint corrupt", StringComparison.Ordinal))
                    .And.Some.Matches<(string? Level, string? Message)>(e => e.Level == "Information" && e.Message!.Contains("stopped after", StringComparison.Ordinal)));
            Assert.That(entries.Select(e => e.GetProperty("Category").GetString()), Is.All.EqualTo("Pilotlight.Metering"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase("PILOTLIGHT_LOG_FORMAT", "yaml")]
    [TestCase("PILOTLIGHT_LOG_LEVEL", "loud")]
    [TestCase("PILOTLIGHT_LOG_LEVEL", "None")]
    public void The_shim_refuses_a_bad_log_setting_naming_the_variable(string name, string value)
    {
        var result = ShimOptions.FromEnvironment(new Dictionary<string, string> { [name] = value });
        Assert.That(result.Options, Is.Null);
        Assert.That(result.Error, Does.Contain(name).And.Contain(value));
    }

    [TestCase("PILOTLIGHT_LOG_FORMAT", "yaml")]
    [TestCase("PILOTLIGHT_LOG_LEVEL", "loud")]
    public void The_meter_refuses_a_bad_log_setting_naming_the_variable(string name, string value)
    {
        var (_, error) = MeterLog.FromEnvironment(new Dictionary<string, string> { [name] = value }, TextWriter.Null, TimeProvider.System);
        Assert.That(error, Does.Contain(name).And.Contain(value));
    }

    [Test]
    [TestCase("Error")]
    [TestCase("Critical")]
    public void The_meter_above_warnings_writes_only_why_it_could_not_start(string level)
    {
        var written = new StringWriter();
        var (log, error) = MeterLog.FromEnvironment(new Dictionary<string, string> { ["PILOTLIGHT_LOG_LEVEL"] = level }, written, TimeProvider.System);
        Assert.That(error, Is.Null);

        log.WriteLine("metering: resumed from checkpoint");
        log.WriteLine($"metering: {MeterLog.WarningMark}checkpoint not written");
        log.Write(MeterLog.Level.Critical, "pilotlight-meter: PILOTLIGHT_NAMESPACE is required");

        Assert.That(written.ToString(), Is.EqualTo("pilotlight-meter: PILOTLIGHT_NAMESPACE is required" + Environment.NewLine));
    }
}
