using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Pilotlight.Tests.RuntimeShim;

/// <summary>
/// The sandbox agent's process hygiene, on the agent as a real process (a child subreaper and not dumpable only
/// there): what an exec started is killed whole on timeout or disconnect, escaped processes included, and nothing
/// else is; adopted orphans are reaped; the code it runs cannot read the agent's memory or environment.
/// </summary>
public sealed class SandboxProcessHygieneTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Starts a detached <c>sleep</c> (<c>setsid</c>, its parent gone at once: out of the exec's tree), writes its pid
    /// on a line, then waits; the sleep's pid is the exec's first line of output.
    /// </summary>
    private const string EscapeThenWait =
        "setsid sh -c 'sleep 120 & echo $! > escaped.'$$; while [ ! -s escaped.$$ ]; do sleep 0.02; done; cat escaped.$$; exec sleep 120";

    [Test]
    public async Task ASetsidBackgroundProcessIsGoneAfterTheExecTimesOut()
    {
        await using var agent = await RealAgent.StartAsync();

        using var response = await agent.PostExecAsync(new { argv = new[] { "/bin/sh", "-c", EscapeThenWait }, timeoutSeconds = 3 });
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var escaped = agent.Track(await FirstPidAsync(reader));
        Assert.That(ParentOf(escaped), Is.EqualTo(agent.Pid), "the detached sleep left the exec's tree and was adopted by the agent");

        var final = await FinalLineAsync(reader);
        Assert.That(final.GetProperty("timedOut").GetBoolean(), Is.True);
        await WaitUntilAsync(() => !Exists(escaped), $"the escaped process {escaped} is killed and reaped after the timeout");
    }

    [Test]
    public async Task ASetsidBackgroundProcessIsGoneAfterTheClientDisconnects()
    {
        await using var agent = await RealAgent.StartAsync();

        var response = await agent.PostExecAsync(new { argv = new[] { "/bin/sh", "-c", EscapeThenWait }, timeoutSeconds = 600 });
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var escaped = agent.Track(await FirstPidAsync(reader));
        Assert.That(ParentOf(escaped), Is.EqualTo(agent.Pid));

        reader.Dispose();
        response.Dispose();

        await WaitUntilAsync(() => !Exists(escaped), $"the escaped process {escaped} is killed and reaped after the disconnect");
    }

    [Test]
    public async Task OrphansThatExitAreReapedSoNoZombiesAccumulate()
    {
        const int orphans = 20;
        await using var agent = await RealAgent.StartAsync();
        // Each subshell starts a child and exits at once, orphaning it; the orphan notes its pid and its parent
        // (the adopter) a moment later, then exits: it is left for its new parent to reap.
        await File.WriteAllTextAsync(Path.Combine(agent.Workspace, "orphans.sh"), $$"""
            i=0
            while [ $i -lt {{orphans}} ]; do
              (sh -c 'sleep 0.3; echo "$$ $(cut -d" " -f4 /proc/$$/stat)" >> orphans' &)
              i=$((i+1))
            done
            """);

        var exit = await agent.ExecAsync(new { argv = new[] { "/bin/sh", "orphans.sh" } });
        Assert.That(exit.GetProperty("exit").GetInt32(), Is.Zero);

        var path = Path.Combine(agent.Workspace, "orphans");
        string[] lines = [];
        await WaitUntilAsync(() => (lines = File.Exists(path) ? File.ReadAllLines(path) : []).Length == orphans, $"all {orphans} orphans ran");
        var pids = lines.Select(l => int.Parse(l.Split(' ')[0], CultureInfo.InvariantCulture)).ToList();
        Assert.That(lines.Select(l => int.Parse(l.Split(' ')[1], CultureInfo.InvariantCulture)), Is.All.EqualTo(agent.Pid),
            "every orphan was adopted by the agent");

        await WaitUntilAsync(() => !pids.Any(Exists), "every adopted orphan is reaped once it has exited");
        Assert.That(ZombieChildrenOf(agent.Pid), Is.Empty);
    }

    [Test]
    public async Task AnExecsTimeoutKillsNeitherAnotherExecNorTheSandboxCommand()
    {
        await using var agent = await RealAgent.StartAsync(
            """["/bin/sh", "-c", "sleep 120 & echo $$ $! > main.pids; wait"]""");
        var mainPids = Path.Combine(agent.Workspace, "main.pids");
        await WaitUntilAsync(() => File.Exists(mainPids) && File.ReadAllText(mainPids).EndsWith('\n'), "the sandbox command started");
        var main = File.ReadAllText(mainPids).Split(' ', StringSplitOptions.TrimEntries).Select(p => agent.Track(int.Parse(p, CultureInfo.InvariantCulture))).ToList();

        // The other exec escapes a process too, then waits for a file before it ends by itself.
        using var other = await agent.PostExecAsync(new
        {
            argv = new[] { "/bin/sh", "-c", "setsid sh -c 'sleep 120 & echo $! > other.escaped'; while [ ! -s other.escaped ]; do sleep 0.02; done; echo $$; cat other.escaped; while [ ! -e go ]; do sleep 0.02; done; echo done" },
            timeoutSeconds = 600,
        });
        using var otherReader = new StreamReader(await other.Content.ReadAsStreamAsync());
        var otherText = new StringBuilder();
        while (otherText.ToString().Count(c => c == '\n') < 2)
        {
            otherText.Append(Chunk((await otherReader.ReadLineAsync().WaitAsync(Patience))!));
        }

        var otherPids = otherText.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(p => agent.Track(int.Parse(p, CultureInfo.InvariantCulture))).ToList();

        using (var timedOut = await agent.PostExecAsync(new { argv = new[] { "/bin/sh", "-c", EscapeThenWait }, timeoutSeconds = 3 }))
        {
            using var reader = new StreamReader(await timedOut.Content.ReadAsStreamAsync());
            var escaped = agent.Track(await FirstPidAsync(reader));
            Assert.That((await FinalLineAsync(reader)).GetProperty("timedOut").GetBoolean(), Is.True);
            await WaitUntilAsync(() => !Exists(escaped), "the timed-out exec's escaped process is gone");
        }

        Assert.That(main.Where(p => !IsRunning(p)), Is.Empty, "the sandbox command and its child still run");
        Assert.That(otherPids.Where(p => !IsRunning(p)), Is.Empty, "the other exec and its escaped process still run");

        await File.WriteAllTextAsync(Path.Combine(agent.Workspace, "go"), "");
        var rest = await otherReader.ReadToEndAsync().WaitAsync(Patience);
        var lines = rest.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(string.Concat(lines[..^1].Select(Chunk)), Is.EqualTo("done\n"));
        Assert.That(JsonDocument.Parse(lines[^1]).RootElement.GetProperty("exit").GetInt32(), Is.Zero);
        Assert.That(IsRunning(otherPids[1]), Is.True, "an exec that ends by itself leaves its background processes running, as before");
    }

    [Test]
    public async Task TheCodeAnExecRunsCannotReadTheAgentsEnvironment()
    {
        // The threat: the sandbox's code runs as the agent's own (non-root) user. Root would read any process's
        // environ through DAC override, dumpable or not, so as root the agent (and with it the code it runs) is
        // started as nobody. A dumpable process of the same user (the exec's own shell) stays readable: the check
        // tells the two apart.
        await using var agent = await RealAgent.StartAsync(unprivileged: true);
        var output = await agent.ExecRawAsync(new
        {
            argv = new[] { "/bin/sh", "-c", "id -u; cat /proc/$AGENT/environ > /dev/null && echo agent-readable; cat /proc/$$/environ > /dev/null && echo own-readable" },
            env = new Dictionary<string, string> { ["AGENT"] = agent.Pid.ToString(CultureInfo.InvariantCulture) },
        });

        var lines = output.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Is.Not.EqualTo("0"), "the check runs as an unprivileged user");
        Assert.That(lines[1..], Is.EqualTo(new[] { "own-readable" }), "a dumpable process of the same user is readable, the agent is not");
        Assert.That(output.Stderr, Does.Contain("Permission denied"));
    }

    private static async Task<int> FirstPidAsync(StreamReader reader)
    {
        var line = await reader.ReadLineAsync().WaitAsync(Patience);
        return int.Parse(Chunk(line!).Trim(), CultureInfo.InvariantCulture);
    }

    private static async Task<JsonElement> FinalLineAsync(StreamReader reader)
    {
        var lines = (await reader.ReadToEndAsync().WaitAsync(Patience)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return JsonDocument.Parse(lines[^1]).RootElement;
    }

    private static string Chunk(string line)
    {
        var element = JsonDocument.Parse(line).RootElement;
        return Encoding.UTF8.GetString(Convert.FromBase64String(element.GetProperty("data").GetString()!));
    }

    private static string? Stat(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>State letter and parent of <paramref name="pid"/>; null when it is gone.</summary>
    private static (char State, int Parent)? StateOf(int pid)
    {
        if (Stat(pid) is not { } text)
        {
            return null;
        }

        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return (fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture));
    }

    /// <summary>Whether <paramref name="pid"/> is in /proc at all: a zombie still is, until its parent reaps it.</summary>
    private static bool Exists(int pid) => StateOf(pid) is not null;

    private static bool IsRunning(int pid) => StateOf(pid) is { State: not ('Z' or 'X') };

    private static int? ParentOf(int pid) => StateOf(pid)?.Parent;

    private static List<int> ZombieChildrenOf(int parent) =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && StateOf(pid) is { State: 'Z' } state && state.Parent == parent)];

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Patience)
            {
                Assert.Fail($"not within {Patience}: {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>What one exec wrote and its final line.</summary>
    private sealed record ExecText(string Stdout, string Stderr, JsonElement Final);

    /// <summary>
    /// The agent as the program runs it (ShimProcess), on a free port with a fresh workspace. Disposing stops it
    /// and kills whatever a test recorded with <see cref="Track"/> that is still there, so nothing outlives the test.
    /// </summary>
    private sealed class RealAgent : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly Task<string> _stderr;
        private readonly List<(int Pid, string? Stat)> _tracked = [];

        private RealAgent(Process process, HttpClient client, string workspace)
        {
            _process = process;
            _stderr = process.StandardError.ReadToEndAsync();
            Client = client;
            Workspace = workspace;
        }

        public int Pid => _process.Id;

        public HttpClient Client { get; }

        public string Workspace { get; }

        /// <summary>
        /// Starts the agent, with <paramref name="command"/> as its sandbox command if given; when
        /// <paramref name="unprivileged"/> and the tests run as root, as the user nobody (through <c>setpriv</c>).
        /// </summary>
        public static async Task<RealAgent> StartAsync(string? command = null, bool unprivileged = false)
        {
            var workspace = Directory.CreateTempSubdirectory("pilotlight-sandbox-").FullName;
            string[]? launcher = null;
            if (unprivileged && OperatingSystem.IsLinux() && Environment.UserName == "root")
            {
                File.SetUnixFileMode(workspace, (UnixFileMode)0x1FF); // 0777: the workspace is nobody's to write.
                launcher = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
            }

            var port = ControlPlane.FreePort();
            var env = new Dictionary<string, string>
            {
                ["PILOTLIGHT_MODE"] = "sandbox",
                ["PILOTLIGHT_WORKSPACE"] = workspace,
                ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
                ["PILOTLIGHT_AGENT_INSECURE"] = "true",
                ["PILOTLIGHT_LISTEN_PORT"] = port.ToString(CultureInfo.InvariantCulture),
            };
            if (command is not null)
            {
                env["PILOTLIGHT_SANDBOX_COMMAND"] = command;
            }

            var process = ShimProcess.Start(env, launcher);
            try
            {
                return new RealAgent(process, await ShimProcess.ReadyClientAsync(port), workspace);
            }
            catch
            {
                process.Kill();
                process.Dispose();
                throw;
            }
        }

        /// <summary>Records <paramref name="pid"/> (as it is now) to be killed at the end if still there.</summary>
        public int Track(int pid)
        {
            _tracked.Add((pid, Stat(pid)));
            return pid;
        }

        public Task<HttpResponseMessage> PostExecAsync(object body) =>
            Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/exec") { Content = JsonContent.Create(body) }, HttpCompletionOption.ResponseHeadersRead);

        /// <summary>Runs an exec to its end: its final line.</summary>
        public async Task<JsonElement> ExecAsync(object body) => (await ExecRawAsync(body)).Final;

        public async Task<ExecText> ExecRawAsync(object body)
        {
            using var response = await PostExecAsync(body);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
            var stdout = new StringBuilder();
            var stderr = new StringBuilder();
            var lines = (await response.Content.ReadAsStringAsync().WaitAsync(Patience)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var line in lines[..^1])
            {
                var element = JsonDocument.Parse(line).RootElement;
                (element.GetProperty("stream").GetString() == "stdout" ? stdout : stderr).Append(Chunk(line));
            }

            return new ExecText(stdout.ToString(), stderr.ToString(), JsonDocument.Parse(lines[^1]).RootElement);
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }

            foreach (var (pid, stat) in _tracked)
            {
                // Only the very process recorded (its stat's start time unchanged), never a later one with its pid.
                var now = Stat(pid);
                if (now is not null && stat is not null && StartTime(now) == StartTime(stat))
                {
                    try
                    {
                        using var leftover = Process.GetProcessById(pid);
                        leftover.Kill();
                    }
                    catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                    {
                        // Gone meanwhile.
                    }
                }
            }

            var stderr = await _stderr;
            Directory.Delete(Workspace, recursive: true);
            Assert.That(stderr, Does.Not.Contain("Exception"));
        }

        private static string StartTime(string stat) => stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
    }
}
