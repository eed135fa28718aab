namespace Pilotlight.Tests.Cli;

/// <summary>How `pilotlight deploy` and `pilotlight logs` read their command lines.</summary>
public class DeployLogsCommandLineTests
{
    private static System.CommandLine.ParseResult Parse(string line) => Pilotlight.Cli.Program.Build().Parse(line);

    [Test]
    public void Deploy_waits_by_default_for_five_minutes_and_takes_several_files()
    {
        var result = Parse("deploy -f a.yaml -f dir/");

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.GetValue<string[]>("--filename"), Is.EqualTo(new[] { "a.yaml", "dir/" }));
        Assert.That(result.GetValue<bool>("--wait"), Is.True);
        Assert.That(result.GetValue<string>("--timeout"), Is.EqualTo("5m"));
        Assert.That(result.GetValue<bool>("--force-conflicts"), Is.False);
    }

    [Test]
    public void Deploy_can_skip_the_wait_and_force_conflicts()
    {
        var result = Parse("deploy -f a.yaml --wait false --timeout 90s --force-conflicts -n ml");

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.GetValue<bool>("--wait"), Is.False);
        Assert.That(result.GetValue<string>("--timeout"), Is.EqualTo("90s"));
        Assert.That(result.GetValue<bool>("--force-conflicts"), Is.True);
    }

    [Test]
    public void Deploy_needs_a_file()
    {
        Assert.That(Parse("deploy").Errors, Is.Not.Empty);
    }

    [Test]
    public void Logs_takes_the_function_and_kubectl_style_options()
    {
        var result = Parse("logs echo -f --since 5m -c runtime-shim");

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.GetValue<string>("function"), Is.EqualTo("echo"));
        Assert.That(result.GetValue<bool>("--follow"), Is.True);
        Assert.That(result.GetValue<string>("--since"), Is.EqualTo("5m"));
        Assert.That(result.GetValue<string>("--container"), Is.EqualTo("runtime-shim"));
    }

    [TestCase("90s", 90)]
    [TestCase("5m", 300)]
    [TestCase("1h30m", 5400)]
    [TestCase("1.5s", 1.5)]
    [TestCase("250ms", 0.25)]
    [TestCase("0", 0)]
    public void Durations_are_read_as_go_writes_them(string text, double seconds)
    {
        Assert.That(Pilotlight.Client.GoDuration.TryParse(text, out var duration), Is.True);
        Assert.That(duration.TotalSeconds, Is.EqualTo(seconds));
    }

    [TestCase("")]
    [TestCase("5")]
    [TestCase("5 minutes")]
    [TestCase("-5m")]
    [TestCase("m")]
    public void Other_durations_are_refused(string text)
    {
        Assert.That(Pilotlight.Client.GoDuration.TryParse(text, out _), Is.False);
    }
}

/// <summary>The live table deploy draws on a terminal, drawn on a console that records what it writes.</summary>
public class DeployLiveTableTests
{
    private sealed class ReadyOnSecondLook : Pilotlight.Client.Deploy.IFunctionObserver
    {
        private int _looks;

        public Task<Pilotlight.Client.Deploy.FunctionObservation> ObserveAsync(Pilotlight.Client.Deploy.AppliedResource function, CancellationToken cancellationToken) =>
            Task.FromResult(new Pilotlight.Client.Deploy.FunctionObservation(
                new Pilotlight.Client.Deploy.FunctionSnapshot(1, 1, 0, 0, 1,
                    [new("Ready", Interlocked.Increment(ref _looks) >= 2 ? "True" : "False", "PodsReady", null)]), []));
    }

    [Test]
    public async Task Shows_each_function_until_ready()
    {
        var writer = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.Yes,
            ColorSystem = Spectre.Console.ColorSystemSupport.Standard,
            Interactive = Spectre.Console.InteractionSupport.Yes,
            Out = new Spectre.Console.AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 160;
        var echo = new Pilotlight.Client.Deploy.AppliedResource(
            new("pilotlight.dev", "v1alpha1", "GpuFunction", "gpufunctions", true), "ns", "echo", 1, "echo.yaml");
        var waiter = new Pilotlight.Client.Deploy.DeployWaiter(new ReadyOnSecondLook()) { PollInterval = TimeSpan.FromMilliseconds(10) };

        var outcome = await Pilotlight.Cli.DeployCommand.WaitLiveAsync(console, waiter, [echo], TimeSpan.FromMinutes(1), CancellationToken.None);

        Assert.That(outcome.Succeeded, Is.True);
        Assert.That(writer.ToString(), Does.Contain("gpufunction.pilotlight.dev/echo").And.Contain("pods requested").And.Contain("Ready"));
    }
}
