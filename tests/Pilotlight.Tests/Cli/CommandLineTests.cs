using System.Text.Json.Nodes;
using Pilotlight.Cli;
using Pilotlight.Client;
using CliProgram = Pilotlight.Cli.Program;

namespace Pilotlight.Tests.Cli;

public class CommandLineTests
{
    [Test]
    public void Data_at_a_file_reaches_invoke_as_written_since_response_files_are_off()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "--not-an-option");
            var result = CliProgram.Parse(["invoke", "ns/fn", "/predict", "-d", "@" + file, "-H", "A: 1", "-H", "B:2", "-X", "PUT"]);
            Assert.That(result.Errors, Is.Empty);
            Assert.That(result.Tokens.Select(t => t.Value), Does.Contain("@" + file));
            using var body = InvokeCommand.OpenBody("@" + file);
            Assert.That(new StreamReader(body!).ReadToEnd(), Is.EqualTo("--not-an-option"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void Headers_are_name_colon_value()
    {
        Assert.That(InvokeCommand.ParseHeaders(["Content-Type: application/json", "X:1:2"]),
            Is.EqualTo(new[] { KeyValuePair.Create("Content-Type", "application/json"), KeyValuePair.Create("X", "1:2") }));
        Assert.Throws<Pilotlight.Client.PilotlightClientException>(() => InvokeCommand.ParseHeaders(["nocolon"]));
    }

    [Test]
    public void Exec_takes_everything_after_the_double_dash_as_the_command()
    {
        var result = CliProgram.Parse(["sandbox", "exec", "work", "-n", "ns", "--", "/bin/sh", "-c", "echo -n hi"]);
        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.GetValue<string[]>("command"), Is.EqualTo(new[] { "/bin/sh", "-c", "echo -n hi" }));
    }

    [Test]
    public void Every_read_command_takes_output_json_or_yaml_and_refuses_others()
    {
        foreach (var args in new[] { new[] { "get", "functions" }, ["describe", "sandbox", "x"], ["usage"], ["sandbox", "ls"] })
        {
            Assert.That(CliProgram.Parse([.. args, "-o", "yaml"]).Errors, Is.Empty, string.Join(' ', args));
            Assert.That(CliProgram.Parse([.. args, "-o", "xml"]).Errors, Is.Not.Empty, string.Join(' ', args));
        }
    }

    [Test]
    public void Every_command_has_an_example_in_its_help()
    {
        var root = CliProgram.Build();
        var commands = root.Subcommands.Concat(root.Subcommands.Single(c => c.Name == "sandbox").Subcommands);
        foreach (var command in commands)
        {
            Assert.That(command.Description, Does.Contain("Example"), command.Name);
        }
    }

    [TestCase("scratch:dir/a.txt", "scratch", "dir/a.txt")]
    [TestCase("team-a/scratch:out", "team-a/scratch", "out")]
    [TestCase("./local:file", null, "./local:file")]
    [TestCase("/abs/path", null, "/abs/path")]
    [TestCase("plain", null, "plain")]
    public void Cp_ends_are_local_or_sandbox_colon_path(string value, string? sandbox, string path) =>
        Assert.That(SandboxCpCommand.ParseEnd(value), Is.EqualTo((sandbox, path)));

    [Test]
    public void Usage_windows_are_times_or_durations_ago()
    {
        var now = new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
        Assert.That(UsageCommand.ParseTime("3h", now), Is.EqualTo(now.AddHours(-3)));
        Assert.That(UsageCommand.ParseTime("-90s", now), Is.EqualTo(now.AddSeconds(-90)));
        Assert.That(UsageCommand.ParseTime("2026-11-23T10:00:00Z", now), Is.EqualTo(now.AddHours(-2)));
        Assert.That(UsageCommand.ParseTime(null, now), Is.Null);
        Assert.Throws<Pilotlight.Client.PilotlightClientException>(() => UsageCommand.ParseTime("yesterday", now));
    }

    [Test]
    public void The_sparkline_scales_to_the_busiest_minute()
    {
        Assert.That(UsageCommand.Sparkline([0, 30, 60]), Is.EqualTo("▁▅█"));
        Assert.That(UsageCommand.Sparkline([0, 0]), Is.EqualTo("▁▁"));
    }

    [Test]
    public void Targets_are_namespace_slash_name_or_a_name_in_the_default_namespace()
    {
        Assert.That(ClientOptions.Target("team-a/llm", "default"), Is.EqualTo(("team-a", "llm")));
        Assert.That(ClientOptions.Target("llm", "team-b"), Is.EqualTo(("team-b", "llm")));
    }

    [Test]
    public void Yaml_output_quotes_strings_yaml_would_misread()
    {
        var yaml = CliOutput.ToYaml(new JsonObject { ["name"] = "llm", ["replicas"] = 2, ["version"] = "1.0", ["flag"] = "true", ["items"] = new JsonArray("a", "b: c") });
        Assert.That(yaml, Is.EqualTo("name: llm\nreplicas: 2\nversion: \"1.0\"\nflag: \"true\"\nitems:\n- a\n- \"b: c\"\n"));
    }

    [Test]
    public void A_function_row_shows_endpoint_gpu_replicas_cold_starts_and_usage()
    {
        var function = JsonNode.Parse("""
            {"metadata":{"name":"llm","namespace":"a","creationTimestamp":"2026-11-23T11:00:00Z"},
             "spec":{"gpu":{"type":"L4","count":1}},
             "status":{"endpoint":"http://gw/a/llm","gpu":"L4","readyReplicas":1,"desiredReplicas":2,"warmReplicas":1,
                       "lastRequestTime":"2026-11-23T11:59:00Z","coldStarts":47,"usage":{"gpuSeconds":12.34}}}
            """)!.AsObject();
        var text = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(text), Ansi = Spectre.Console.AnsiSupport.No, ColorSystem = Spectre.Console.ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 200;
        console.Write(GetCommand.FunctionTable([function], false, new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero)));
        Assert.That(text.ToString(), Does.Contain("llm").And.Contain("http://gw/a/llm").And.Contain("1/2").And.Contain("60s ago").And.Contain("12.3"));
        Assert.That(text.ToString(), Does.Match(@"COLD[\s\S]*60s ago\s+47\s+12\.3"), "the COLD column, after LAST REQUEST");
        Assert.That(DescribeCommand.Fields(function, PilotlightKind.GpuFunction, DateTimeOffset.UnixEpoch), Does.Contain(("Cold starts", "47")));
    }

    [Test]
    public void Durations_are_written_like_90s_or_5m()
    {
        Assert.That(CliProgram.Parse(["sandbox", "create", "x", "--image", "i", "--wait", "90s"]).GetValue<TimeSpan?>("--wait"), Is.EqualTo(TimeSpan.FromSeconds(90)));
        Assert.That(CliProgram.Parse(["sandbox", "create", "x", "--image", "i"]).GetValue<TimeSpan?>("--wait"), Is.EqualTo(TimeSpan.FromMinutes(2)));
        Assert.That(CliProgram.Parse(["sandbox", "exec", "x", "--timeout", "1.5m", "--", "true"]).GetValue<TimeSpan?>("--timeout"), Is.EqualTo(TimeSpan.FromSeconds(90)));
        Assert.That(CliProgram.Parse(["sandbox", "create", "x", "--image", "i", "--wait", "soon"]).Errors, Is.Not.Empty);
    }
}
