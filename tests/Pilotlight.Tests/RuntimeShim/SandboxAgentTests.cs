using System.Collections;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.RuntimeShim;
using Pilotlight.RuntimeShim.Sandbox;

namespace Pilotlight.Tests.RuntimeShim;

public sealed class SandboxAgentTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Test]
    public async Task ExecSeparatesStdoutAndStderrAndReturnsTheExitCode()
    {
        await using var agent = await Agent.StartAsync();

        using var response = await agent.PostExecAsync(new { argv = new[] { "/bin/sh", "-c", "echo out; echo err >&2; exit 3" } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/x-ndjson"));

        var output = await ExecOutput.ReadAsync(response);
        Assert.That(output.Stdout, Is.EqualTo("out\n"));
        Assert.That(output.Stderr, Is.EqualTo("err\n"));
        Assert.That(output.Exit, Is.EqualTo(3));
        Assert.That(output.TimedOut, Is.False);
        Assert.That(output.Final.GetProperty("durationMs").GetInt64(), Is.GreaterThanOrEqualTo(0));
    }

    [Test]
    public async Task StdinIsFedAndThenClosed()
    {
        await using var agent = await Agent.StartAsync();

        var fed = await agent.ExecAsync(new { argv = new[] { "/bin/sh", "-c", "cat; echo closed >&2" }, stdin = "hello\nwörld\n" });
        Assert.That(fed.Stdout, Is.EqualTo("hello\nwörld\n"));
        Assert.That(fed.Stderr, Is.EqualTo("closed\n"));
        Assert.That(fed.Exit, Is.Zero);

        var none = await agent.ExecAsync(new { argv = new[] { "cat" } });
        Assert.That(none.Stdout, Is.Empty, "without stdin the input is closed at once, so cat ends");
        Assert.That(none.Exit, Is.Zero);
    }

    [Test]
    public async Task EnvAndWorkingDirApplyAndPilotlightVariablesAreNotPassed()
    {
        const string canary = "PILOTLIGHT_SANDBOX_TEST_CANARY";
        await using var agent = await Agent.StartAsync();
        Directory.CreateDirectory(Path.Combine(agent.Workspace, "sub", "dir"));
        Environment.SetEnvironmentVariable(canary, "secret");
        try
        {
            var output = await agent.ExecAsync(new
            {
                argv = new[] { "/bin/sh", "-c", "echo \"$GREETING\"; pwd; env | grep -c '^PILOTLIGHT_' || true; echo \"${HOME:+home-set}\"" },
                env = new Dictionary<string, string> { ["GREETING"] = "hi there" },
                workingDir = "sub/dir",
            });

            var lines = output.Stdout.Split('\n');
            Assert.That(lines[0], Is.EqualTo("hi there"));
            Assert.That(lines[1], Does.EndWith("/sub/dir"));
            Assert.That(lines[2], Is.EqualTo("0"), "no PILOTLIGHT_* variable may reach the command");
            Assert.That(lines[3], Is.EqualTo("home-set"), "the rest of the shim's environment is passed on");
            Assert.That(output.Exit, Is.Zero);
        }
        finally
        {
            Environment.SetEnvironmentVariable(canary, null);
        }
    }

    [Test]
    public async Task OutputIsStreamedWhileTheCommandRunsAndExecsRunConcurrently()
    {
        await using var agent = await Agent.StartAsync();

        // The command prints, then waits for a file only the test creates after it has seen the first line.
        using var response = await agent.PostExecAsync(
            new { argv = new[] { "/bin/sh", "-c", "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second" }, timeoutSeconds = 30 },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());

        var first = await reader.ReadLineAsync().WaitAsync(Patience);
        Assert.That(ExecOutput.Chunk(first!), Is.EqualTo(("stdout", "first\n")));

        var activity = await agent.ActivityAsync();
        Assert.That(activity.GetProperty("running").GetInt32(), Is.EqualTo(1), "the first command is still running");

        var other = await agent.ExecAsync(new { argv = new[] { "/bin/sh", "-c", "echo meanwhile" } });
        Assert.That(other.Stdout, Is.EqualTo("meanwhile\n"));

        await File.WriteAllTextAsync(Path.Combine(agent.Workspace, "go"), "");
        var rest = await reader.ReadToEndAsync().WaitAsync(Patience);
        var output = ExecOutput.Parse(rest);
        Assert.That(output.Stdout, Is.EqualTo("second\n"));
        Assert.That(output.Exit, Is.Zero);
        Assert.That((await agent.ActivityAsync()).GetProperty("running").GetInt32(), Is.Zero);
    }

    [Test]
    public async Task TimeoutKillsTheWholeProcessTree()
    {
        var time = new FakeTimeProvider();
        await using var agent = await Agent.StartAsync(time: time);

        using var response = await agent.PostExecAsync(
            new { argv = new[] { "/bin/sh", "-c", "sleep 30 & echo $!; wait" }, timeoutSeconds = 5 },
            HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var first = ExecOutput.Chunk((await reader.ReadLineAsync().WaitAsync(Patience))!);
        var sleeper = int.Parse(first.Data.Trim(), CultureInfo.InvariantCulture);
        Assert.That(IsRunning(sleeper), Is.True, "the shell's child is running before the timeout");

        time.Advance(TimeSpan.FromSeconds(5));

        var output = ExecOutput.Parse(await reader.ReadToEndAsync().WaitAsync(Patience));
        Assert.That(output.TimedOut, Is.True);
        Assert.That(output.Final.GetProperty("exit").ValueKind, Is.EqualTo(JsonValueKind.Null));
        await WaitUntilAsync(() => !IsRunning(sleeper));
    }

    [Test]
    public async Task TheDefaultTimeoutComesFromTheOptions()
    {
        var time = new FakeTimeProvider();
        await using var agent = await Agent.StartAsync(o => o with { ExecTimeout = TimeSpan.FromSeconds(2) }, time);

        using var response = await agent.PostExecAsync(new { argv = new[] { "/bin/sh", "-c", "echo started; exec sleep 30" } }, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        await reader.ReadLineAsync().WaitAsync(Patience);
        time.Advance(TimeSpan.FromSeconds(2));

        var output = ExecOutput.Parse(await reader.ReadToEndAsync().WaitAsync(Patience));
        Assert.That(output.TimedOut, Is.True);
    }

    [Test]
    public async Task ClientDisconnectKillsTheCommand()
    {
        await using var agent = await Agent.StartAsync();

        var response = await agent.PostExecAsync(new { argv = new[] { "/bin/sh", "-c", "echo $$; exec sleep 30" } }, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var pid = int.Parse(ExecOutput.Chunk((await reader.ReadLineAsync().WaitAsync(Patience))!).Data.Trim(), CultureInfo.InvariantCulture);
        Assert.That(IsRunning(pid), Is.True);

        reader.Dispose();
        response.Dispose();

        await WaitUntilAsync(() => !IsRunning(pid));
        await WaitUntilAsync(async () => (await agent.ActivityAsync()).GetProperty("running").GetInt32() == 0);
    }

    [Test]
    public async Task ABackgroundChildHoldingTheOutputDoesNotKeepTheExecOpen()
    {
        await using var agent = await Agent.StartAsync();

        var output = await agent.ExecAsync(new { argv = new[] { "/bin/sh", "-c", "sleep 30 & echo $!" } });
        var pid = int.Parse(output.Stdout.Trim(), CultureInfo.InvariantCulture);
        try
        {
            Assert.That(output.Exit, Is.Zero);
            Assert.That(output.TimedOut, Is.False);
        }
        finally
        {
            if (IsRunning(pid))
            {
                using var sleeper = Process.GetProcessById(pid);
                sleeper.Kill();
            }
        }
    }

    [TestCase("{\"argv\":[\"pilotlight-no-such-program\"]}", "not found")]
    [TestCase("{\"argv\":[\"./missing.sh\"]}", "not an executable")]
    [TestCase("{\"argv\":[]}", "argv")]
    [TestCase("{\"env\":{\"A\":\"b\"}}", "argv")]
    [TestCase("{\"argv\":[\"\"]}", "argv")]
    [TestCase("{\"argv\":[\"true\"],\"workingDir\":\"../\"}", "outside the workspace")]
    [TestCase("{\"argv\":[\"true\"],\"workingDir\":\"nowhere\"}", "not a directory")]
    [TestCase("{\"argv\":[\"true\"],\"timeoutSeconds\":-1}", "timeoutSeconds")]
    [TestCase("{\"argv\":[\"true\"],\"env\":{\"A=B\":\"c\"}}", "env")]
    [TestCase("{\"argv\":", "invalid exec request")]
    [TestCase("[1,2]", "invalid exec request")]
    public async Task BadExecRequestsAre400BeforeAnyOutput(string body, string reason)
    {
        await using var agent = await Agent.StartAsync();

        using var response = await agent.Client.PostAsync("/exec", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        Assert.That(await ErrorAsync(response), Does.Contain(reason));
    }

    [Test]
    public async Task AnExecutableIsFoundOnTheRequestsPathOrRelativeToTheWorkingDirectory()
    {
        await using var agent = await Agent.StartAsync();
        var bin = Directory.CreateDirectory(Path.Combine(agent.Workspace, "bin")).FullName;
        var script = Path.Combine(bin, "hello");
        await File.WriteAllTextAsync(script, "#!/bin/sh\necho hello from $0\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var viaPath = await agent.ExecAsync(new { argv = new[] { "hello" }, env = new Dictionary<string, string> { ["PATH"] = $"{bin}:/usr/bin:/bin" } });
        Assert.That(viaPath.Stdout, Is.EqualTo($"hello from {script}\n"));

        var relative = await agent.ExecAsync(new { argv = new[] { "./hello" }, workingDir = "bin" });
        Assert.That(relative.Exit, Is.Zero);
        Assert.That(relative.Stdout, Does.StartWith("hello from"));
    }

    [Test]
    public async Task FilesCanBeWrittenReadListedAndDeleted()
    {
        await using var agent = await Agent.StartAsync();

        using (var put = await agent.Client.PutAsync("/files?path=dir/sub/a.txt", new ByteArrayContent("hello"u8.ToArray())))
        {
            Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.Created));
            var written = await put.Content.ReadFromJsonAsync<JsonElement>();
            Assert.That(written.GetProperty("path").GetString(), Is.EqualTo("dir/sub/a.txt"));
            Assert.That(written.GetProperty("bytes").GetInt64(), Is.EqualTo(5));
        }

        var binary = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray();
        using (var put = await agent.Client.PutAsync("/files?path=dir/blob.bin", new ByteArrayContent(binary)))
        {
            Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.Created));
        }

        using (var get = await agent.Client.GetAsync("/files?path=dir/sub/a.txt"))
        {
            Assert.That(get.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(get.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/octet-stream"));
            Assert.That(await get.Content.ReadAsStringAsync(), Is.EqualTo("hello"));
        }

        Assert.That(await agent.Client.GetByteArrayAsync("/files?path=dir/blob.bin"), Is.EqualTo(binary));
        Assert.That(await File.ReadAllTextAsync(Path.Combine(agent.Workspace, "dir", "sub", "a.txt")), Is.EqualTo("hello"));

        using (var overwrite = await agent.Client.PutAsync("/files?path=dir/sub/a.txt", new StringContent("bye")))
        {
            Assert.That(overwrite.StatusCode, Is.EqualTo(HttpStatusCode.Created));
        }

        Assert.That(await agent.Client.GetStringAsync("/files?path=dir/sub/a.txt"), Is.EqualTo("bye"));

        File.CreateSymbolicLink(Path.Combine(agent.Workspace, "dir", "link"), "sub");
        Assert.That(await agent.ListAsync(""), Is.EqualTo(new[] { "dir dir 0" }));
        Assert.That(await agent.ListAsync("dir"), Is.EqualTo(new[] { "blob.bin file 200000", "link link 3", "sub dir 0" }));
        Assert.That(await agent.Client.GetStringAsync("/files?path=dir/link/a.txt"), Is.EqualTo("bye"), "a link inside the workspace is followed");

        using (var delete = await agent.Client.DeleteAsync("/files?path=dir/link"))
        {
            Assert.That(delete.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        }

        Assert.That(File.Exists(Path.Combine(agent.Workspace, "dir", "sub", "a.txt")), Is.True, "deleting a link leaves its target");

        using (var delete = await agent.Client.DeleteAsync("/files?path=dir/sub/a.txt"))
        {
            Assert.That(delete.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        }

        using (var gone = await agent.Client.GetAsync("/files?path=dir/sub/a.txt"))
        {
            Assert.That(gone.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That(await ErrorAsync(gone), Does.Contain("does not exist"));
        }

        using (var again = await agent.Client.DeleteAsync("/files?path=dir/sub/a.txt"))
        {
            Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        }

        using (var missingDir = await agent.Client.GetAsync("/files/list?path=nowhere"))
        {
            Assert.That(missingDir.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        }

        using (var notEmpty = await agent.Client.DeleteAsync("/files?path=dir"))
        {
            Assert.That(notEmpty.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        }

        using (var directory = await agent.Client.GetAsync("/files?path=dir"))
        {
            Assert.That(directory.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        }

        using (var recursive = await agent.Client.DeleteAsync("/files?path=dir&recursive=true"))
        {
            Assert.That(recursive.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        }

        Assert.That(await agent.ListAsync(""), Is.Empty);
    }

    [Test]
    public async Task ReadingAFifoFailsInsteadOfHanging()
    {
        await using var agent = await Agent.StartAsync();
        var made = await agent.ExecAsync(new { argv = new[] { "mkfifo", "pipe" } });
        Assert.That(made.Exit, Is.Zero);

        using var response = await agent.Client.GetAsync("/files?path=pipe").WaitAsync(Patience);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That(await ErrorAsync(response), Does.Contain("not a regular file"));
    }

    [TestCase("../x")]
    [TestCase("a/../../x")]
    [TestCase("/etc/passwd")]
    [TestCase("escape/passwd")]
    [TestCase("escape")]
    [TestCase("inner/up/x")]
    [TestCase("nul\0byte")]
    public async Task PathsOutsideTheWorkspaceAre400(string path)
    {
        await using var agent = await Agent.StartAsync();
        File.CreateSymbolicLink(Path.Combine(agent.Workspace, "escape"), "/etc");
        Directory.CreateDirectory(Path.Combine(agent.Workspace, "inner"));
        File.CreateSymbolicLink(Path.Combine(agent.Workspace, "inner", "up"), "../..");
        var query = Uri.EscapeDataString(path);

        foreach (var request in new[]
        {
            new HttpRequestMessage(HttpMethod.Get, $"/files?path={query}"),
            new HttpRequestMessage(HttpMethod.Put, $"/files?path={query}") { Content = new StringContent("x") },
            new HttpRequestMessage(HttpMethod.Delete, $"/files?path={query}"),
            new HttpRequestMessage(HttpMethod.Get, $"/files/list?path={query}"),
        })
        {
            using (request)
            using (var response = await agent.Client.SendAsync(request))
            {
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), $"{request.Method} {path}");
                Assert.That(await ErrorAsync(response), Does.Contain("outside the workspace").Or.Contain("absolute").Or.Contain("NUL"));
            }
        }

        using var exec = await agent.PostExecAsync(new { argv = new[] { "true" }, workingDir = path });
        Assert.That(exec.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(File.Exists(Path.Combine(Path.GetDirectoryName(agent.Workspace)!, "x")), Is.False);
    }

    [Test]
    public async Task OversizeWritesAre413AndWriteNothing()
    {
        await using var agent = await Agent.StartAsync(o => o with { MaxFileBytes = 10 });

        using (var declared = await agent.Client.PutAsync("/files?path=big/file", new ByteArrayContent(new byte[11])))
        {
            Assert.That(declared.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
            Assert.That(await ErrorAsync(declared), Does.Contain("10 bytes"));
        }

        using (var request = new HttpRequestMessage(HttpMethod.Put, "/files?path=big/file") { Content = new ByteArrayContent(new byte[11]) })
        {
            request.Headers.TransferEncodingChunked = true;
            using var chunked = await agent.Client.SendAsync(request);
            Assert.That(chunked.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        }

        Assert.That(Directory.EnumerateFileSystemEntries(agent.Workspace), Is.Empty, "no file, no directory, no temporary file");

        using var fits = await agent.Client.PutAsync("/files?path=small", new ByteArrayContent(new byte[10]));
        Assert.That(fits.StatusCode, Is.EqualTo(HttpStatusCode.Created));
    }

    [Test]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task ADirectoryRoundTripsAsTarWithModesLinksAndEmptyDirectories()
    {
        await using var agent = await Agent.StartAsync();
        var tree = Directory.CreateDirectory(Path.Combine(agent.Workspace, "tree")).FullName;
        Directory.CreateDirectory(Path.Combine(tree, "empty"));
        Directory.CreateDirectory(Path.Combine(tree, "bin"));
        await File.WriteAllTextAsync(Path.Combine(tree, "bin", "run.sh"), "#!/bin/sh\necho hi\n");
        File.SetUnixFileMode(Path.Combine(tree, "bin", "run.sh"), (UnixFileMode)0x1ED); // 0755
        await File.WriteAllBytesAsync(Path.Combine(tree, "secret"), [1, 2, 3, 0, 255]);
        File.SetUnixFileMode(Path.Combine(tree, "secret"), (UnixFileMode)0x180); // 0600
        File.CreateSymbolicLink(Path.Combine(tree, "latest"), "bin/run.sh");
        File.CreateSymbolicLink(Path.Combine(tree, "python"), "/usr/bin/python3");
        var fifo = Process.Start("mkfifo", Path.Combine(tree, "pipe"));
        await fifo.WaitForExitAsync();

        byte[] tar;
        using (var get = await agent.Client.GetAsync("/archive?path=tree"))
        {
            Assert.That(get.StatusCode, Is.EqualTo(HttpStatusCode.OK), await get.Content.ReadAsStringAsync());
            Assert.That(get.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/x-tar"));
            tar = await get.Content.ReadAsByteArrayAsync();
        }

        var names = new List<string>();
        await using (var reader = new System.Formats.Tar.TarReader(new MemoryStream(tar)))
        {
            while (await reader.GetNextEntryAsync() is { } entry)
            {
                names.Add(entry.Name);
            }
        }

        Assert.That(names, Is.EqualTo(new[] { "bin/", "bin/run.sh", "empty/", "latest", "python", "secret" }), "no FIFO; a link as a link");

        using (var put = await agent.Client.PutAsync("/archive?path=copy/here", new ByteArrayContent(tar)))
        {
            Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.OK), await put.Content.ReadAsStringAsync());
            var answer = JsonDocument.Parse(await put.Content.ReadAsStringAsync()).RootElement;
            Assert.That((answer.GetProperty("path").GetString(), answer.GetProperty("entries").GetInt32(), answer.GetProperty("bytes").GetInt64()),
                Is.EqualTo(("copy/here", 6, 23L)));
        }

        var copy = Path.Combine(agent.Workspace, "copy", "here");
        Assert.That(Directory.Exists(Path.Combine(copy, "empty")), Is.True, "the empty directory");
        Assert.That(File.GetUnixFileMode(Path.Combine(copy, "bin", "run.sh")), Is.EqualTo((UnixFileMode)0x1ED));
        Assert.That(File.GetUnixFileMode(Path.Combine(copy, "secret")), Is.EqualTo((UnixFileMode)0x180));
        Assert.That(await File.ReadAllBytesAsync(Path.Combine(copy, "secret")), Is.EqualTo(new byte[] { 1, 2, 3, 0, 255 }));
        Assert.That(new FileInfo(Path.Combine(copy, "latest")).LinkTarget, Is.EqualTo("bin/run.sh"));
        Assert.That(new FileInfo(Path.Combine(copy, "python")).LinkTarget, Is.EqualTo("/usr/bin/python3"), "a link may point anywhere; nothing goes through it");
        Assert.That(Directory.EnumerateFileSystemEntries(agent.Workspace).Select(Path.GetFileName), Is.EquivalentTo(new[] { "tree", "copy" }), "no temporary file left");

        // Again, over what is there: links and files replaced, not written through.
        using (var again = await agent.Client.PutAsync("/archive?path=copy/here", new ByteArrayContent(tar)))
        {
            Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.OK), await again.Content.ReadAsStringAsync());
        }

        using var missing = await agent.Client.GetAsync("/archive?path=nothing");
        Assert.That(missing.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        using var file = await agent.Client.GetAsync("/archive?path=tree/secret");
        Assert.That(file.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
    }

    /// <summary>Tar archives that try to leave the workspace: each is refused with 400 and nothing lands outside.</summary>
    [TestCase("dotdot")]
    [TestCase("absolute")]
    [TestCase("symlink-then-file")]
    [TestCase("existing-link-then-file")]
    [TestCase("hardlink-through-link")]
    [TestCase("hardlink-dotdot")]
    [TestCase("device")]
    public async Task ArchiveEntriesThatLeaveTheWorkspaceAre400(string attack)
    {
        await using var agent = await Agent.StartAsync();
        var outside = Directory.CreateTempSubdirectory("pilotlight-outside-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(outside, "secret"), "outside");
            // A link already in the directory extracted into, pointing out.
            File.CreateSymbolicLink(Path.Combine(Directory.CreateDirectory(Path.Combine(agent.Workspace, "in")).FullName, "escape"), outside);
            var relativeOut = Path.GetRelativePath(agent.Workspace, outside);
            var entries = attack switch
            {
                "dotdot" => [Regular(relativeOut + "/pwned"), Regular("../../etc/x")],
                "absolute" => [Regular(outside + "/pwned")],
                "symlink-then-file" => [Link("out", outside), Regular("out/pwned")],
                "existing-link-then-file" => [Regular("escape/pwned")],
                "hardlink-through-link" => [new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.HardLink, "copy") { LinkName = "escape/secret" }],
                "hardlink-dotdot" => [new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.HardLink, "copy") { LinkName = relativeOut + "/secret" }],
                _ => new System.Formats.Tar.TarEntry[] { new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.CharacterDevice, "null") { DeviceMajor = 1, DeviceMinor = 3 } },
            };

            var tar = new MemoryStream();
            await using (var writer = new System.Formats.Tar.TarWriter(tar, leaveOpen: true))
            {
                foreach (var entry in entries)
                {
                    await writer.WriteEntryAsync(entry);
                }
            }

            using var put = await agent.Client.PutAsync("/archive?path=in", new ByteArrayContent(tar.ToArray()));
            Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), await put.Content.ReadAsStringAsync());
            Assert.That(await ErrorAsync(put), Does.Contain("outside the workspace").Or.Contain("absolute").Or.Contain("'..'").Or.Contain("not extracted"));
            Assert.That(Directory.EnumerateFileSystemEntries(outside).Select(Path.GetFileName), Is.EqualTo(new[] { "secret" }), "nothing written outside");
            Assert.That(File.Exists(Path.Combine(agent.Workspace, "in", "copy")), Is.False, "no copy of an outside file");
            Assert.That(File.Exists("/etc/x"), Is.False);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }

        static System.Formats.Tar.TarEntry Regular(string name) =>
            new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, name) { DataStream = new MemoryStream("pwned"u8.ToArray()) };

        static System.Formats.Tar.TarEntry Link(string name, string target) =>
            new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, name) { LinkName = target };
    }

    [Test]
    public async Task AnArchiveIntoAPathOutsideTheWorkspaceIs400AndAnOversizeEntry413()
    {
        await using var agent = await Agent.StartAsync(o => o with { MaxFileBytes = 10 });
        using (var outside = await agent.Client.PutAsync("/archive?path=..", new ByteArrayContent([])))
        {
            Assert.That(outside.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        }

        using (var read = await agent.Client.GetAsync("/archive?path=../.."))
        {
            Assert.That(read.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        }

        var tar = new MemoryStream();
        await using (var writer = new System.Formats.Tar.TarWriter(tar, leaveOpen: true))
        {
            await writer.WriteEntryAsync(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "big") { DataStream = new MemoryStream(new byte[11]) });
        }

        using var big = await agent.Client.PutAsync("/archive?path=in", new ByteArrayContent(tar.ToArray()));
        Assert.That(big.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(File.Exists(Path.Combine(agent.Workspace, "in", "big")), Is.False);

        using var garbage = await agent.Client.PutAsync("/archive?path=in", new ByteArrayContent(new byte[1024].Select((_, i) => (byte)(i * 7)).ToArray()));
        Assert.That(garbage.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task ActivityAdvancesWithFileOperationsAndExecs()
    {
        var start = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var time = new FakeTimeProvider(start);
        await using var agent = await Agent.StartAsync(time: time);

        var initial = await agent.ActivityAsync();
        Assert.That(initial.GetProperty("lastActivity").GetString(), Is.EqualTo("2030-01-02T03:04:05.000Z"));
        Assert.That(initial.GetProperty("running").GetInt32(), Is.Zero);

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That((await agent.ActivityAsync()).GetProperty("lastActivity").GetString(), Is.EqualTo("2030-01-02T03:04:05.000Z"), "asking is no activity");

        using (await agent.Client.PutAsync("/files?path=f", new StringContent("x")))
        {
        }

        Assert.That(LastActivity(await agent.ActivityAsync()), Is.EqualTo(start.AddMinutes(1)));

        time.Advance(TimeSpan.FromMinutes(1));
        await agent.ExecAsync(new { argv = new[] { "true" } });
        Assert.That(LastActivity(await agent.ActivityAsync()), Is.EqualTo(start.AddMinutes(2)));

        time.Advance(TimeSpan.FromMinutes(1));
        await agent.ListAsync("");
        Assert.That(LastActivity(await agent.ActivityAsync()), Is.EqualTo(start.AddMinutes(3)));

        static DateTimeOffset LastActivity(JsonElement report) =>
            DateTimeOffset.Parse(report.GetProperty("lastActivity").GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
    }

    [Test]
    public async Task OnlyTheSandboxApiIsServed()
    {
        await using var agent = await Agent.StartAsync();

        using (var ready = await agent.Client.GetAsync("/ready"))
        {
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That((await ready.Content.ReadAsStringAsync()).Trim(), Is.EqualTo("ready"));
        }

        foreach (var path in new[] { "/stats", "/predict", "/", "/files/other" })
        {
            using var response = await agent.Client.GetAsync(path);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), path);
            Assert.That(await ErrorAsync(response), Is.Not.Empty);
        }

        using var wrongMethod = await agent.Client.GetAsync("/exec");
        Assert.That(wrongMethod.StatusCode, Is.EqualTo(HttpStatusCode.MethodNotAllowed));
        Assert.That(await ErrorAsync(wrongMethod), Does.Contain("POST"));
    }

    [Test]
    public async Task FunctionModeIsUnaffected()
    {
        var closed = new Uri($"http://127.0.0.1:{ControlPlane.FreePort()}");
        var options = ShimOptions.Default(closed) with { ListenAddress = IPAddress.Loopback, ListenPort = 0 };
        Assert.That(options.Mode, Is.EqualTo(ShimMode.Function));
        await using var app = ShimApp.Build(options);
        await app.StartAsync();
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single(u => !u.Contains("h2c-handoff", StringComparison.Ordinal))) };
            using var ready = await client.GetAsync("/ready");
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(await ready.Content.ReadAsStringAsync(), Does.Contain("upstream /healthz: connection refused"));

            using var exec = await client.PostAsync("/exec", JsonContent.Create(new { argv = new[] { "true" } }));
            Assert.That(exec.StatusCode, Is.EqualTo(HttpStatusCode.BadGateway), "in function mode /exec is just another path to forward");

            var stats = await client.GetFromJsonAsync<JsonElement>("/stats");
            Assert.That(stats.GetProperty("served").GetInt64(), Is.EqualTo(1));
            Assert.That(stats.GetProperty("maxConcurrency").GetInt32(), Is.EqualTo(1));
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Test]
    public void SandboxEnvironmentDefaults()
    {
        var workspace = Directory.CreateTempSubdirectory("pilotlight-sandbox-").FullName;
        try
        {
            var result = ShimOptions.FromEnvironment(new Hashtable { ["PILOTLIGHT_MODE"] = "sandbox", ["PILOTLIGHT_WORKSPACE"] = workspace, ["PILOTLIGHT_AGENT_INSECURE"] = "true" });
            Assert.That(result.Error, Is.Null);
            Assert.That(result.Options!.Mode, Is.EqualTo(ShimMode.Sandbox));
            Assert.That(result.Options.Sandbox!.Workspace, Is.EqualTo(workspace));
            Assert.That(result.Options.Sandbox.ExecTimeout, Is.EqualTo(TimeSpan.FromSeconds(60)));
            Assert.That(result.Options.Sandbox.MaxFileBytes, Is.EqualTo(67108864));

            result = ShimOptions.FromEnvironment(new Hashtable
            {
                ["PILOTLIGHT_MODE"] = "sandbox", ["PILOTLIGHT_WORKSPACE"] = workspace, ["PILOTLIGHT_AGENT_INSECURE"] = "true",
                ["PILOTLIGHT_EXEC_TIMEOUT"] = "5m", ["PILOTLIGHT_MAX_FILE_BYTES"] = "1024",
            });
            Assert.That(result.Options!.Sandbox!.ExecTimeout, Is.EqualTo(TimeSpan.FromMinutes(5)));
            Assert.That(result.Options.Sandbox.MaxFileBytes, Is.EqualTo(1024));

            result = ShimOptions.FromEnvironment(new Hashtable { ["PILOTLIGHT_EXEC_TIMEOUT"] = "whenever" });
            Assert.That(result.Options?.Mode, Is.EqualTo(ShimMode.Function), "function mode ignores the sandbox's variables");
            Assert.That(result.Options!.Sandbox, Is.Null);
        }
        finally
        {
            Directory.Delete(workspace);
        }
    }

    [Test]
    public void SandboxModeNeedsTheGatewaysCaAndThePodsIdentityUnlessExplicitlyInsecure()
    {
        var workspace = Path.GetTempPath();
        Hashtable Env(params (string Key, string Value)[] extra)
        {
            var env = new Hashtable { ["PILOTLIGHT_MODE"] = "sandbox", ["PILOTLIGHT_WORKSPACE"] = workspace };
            foreach (var (key, value) in extra)
            {
                env[key] = value;
            }

            return env;
        }

        Assert.That(ShimOptions.FromEnvironment(Env()).Error, Does.StartWith("PILOTLIGHT_AGENT_CLIENT_CA=:"), "no CA, no agent");
        Assert.That(ShimOptions.FromEnvironment(Env(("PILOTLIGHT_AGENT_CLIENT_CA", "not a pem"), ("PILOTLIGHT_POD_UID", "u"), ("PILOTLIGHT_POD_NAMESPACE", "n"))).Error,
            Does.StartWith("PILOTLIGHT_AGENT_CLIENT_CA: not a PEM certificate"));

        using var key = System.Security.Cryptography.ECDsa.Create();
        using var ca = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=ca", key, System.Security.Cryptography.HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        var pem = ca.ExportCertificatePem();
        Assert.That(ShimOptions.FromEnvironment(Env(("PILOTLIGHT_AGENT_CLIENT_CA", pem))).Error, Does.Contain("PILOTLIGHT_POD_UID and PILOTLIGHT_POD_NAMESPACE are required"));

        var trusted = ShimOptions.FromEnvironment(Env(("PILOTLIGHT_AGENT_CLIENT_CA", pem), ("PILOTLIGHT_POD_UID", "uid-1"), ("PILOTLIGHT_POD_NAMESPACE", "team")));
        Assert.That((trusted.Options!.Sandbox!.Trust!.PodUid, trusted.Options.Sandbox.Trust.Namespace), Is.EqualTo(("uid-1", "team")));
        Assert.That(trusted.Options.Sandbox.Trust.Mismatch("team", "uid-1"), Is.Null);
        Assert.That(trusted.Options.Sandbox.Trust.Mismatch("team", "uid-2"), Does.Contain("uid-2"));
        Assert.That(trusted.Options.Sandbox.Trust.Mismatch("other", "uid-1"), Is.Not.Null);
        Assert.That(trusted.Options.Sandbox.Trust.Accepts(ca), Is.False, "a CA certificate is not a client certificate");

        Assert.That(ShimOptions.FromEnvironment(Env(("PILOTLIGHT_AGENT_INSECURE", "true"))).Options!.Sandbox!.Trust, Is.Null, "only when asked for by name");
    }

    [TestCase("PILOTLIGHT_MODE", "proxy")]
    [TestCase("PILOTLIGHT_WORKSPACE", "")]
    [TestCase("PILOTLIGHT_WORKSPACE", "/pilotlight/no/such/dir")]
    [TestCase("PILOTLIGHT_EXEC_TIMEOUT", "soon")]
    [TestCase("PILOTLIGHT_EXEC_TIMEOUT", "0s")]
    [TestCase("PILOTLIGHT_EXEC_TIMEOUT", "2h")]
    [TestCase("PILOTLIGHT_MAX_FILE_BYTES", "64Mi")]
    [TestCase("PILOTLIGHT_MAX_FILE_BYTES", "0")]
    [TestCase("PILOTLIGHT_MAX_FILE_BYTES", "-1")]
    [TestCase("PILOTLIGHT_SANDBOX_COMMAND", "python -m http.server")]
    [TestCase("PILOTLIGHT_SANDBOX_COMMAND", "[]")]
    [TestCase("PILOTLIGHT_SANDBOX_COMMAND", "[\"\"]")]
    [TestCase("PILOTLIGHT_SANDBOX_COMMAND", "{\"argv\":[\"sh\"]}")]
    public void InvalidSandboxEnvironmentNamesTheVariable(string name, string value)
    {
        var env = new Hashtable { ["PILOTLIGHT_MODE"] = "sandbox", ["PILOTLIGHT_WORKSPACE"] = Path.GetTempPath(), [name] = value };

        var result = ShimOptions.FromEnvironment(env);

        Assert.That(result.Options, Is.Null);
        Assert.That(result.Error, Does.StartWith($"{name}={value}:"));
        Assert.That(result.Error, Does.Not.Contain('\n'));
    }

    [TestCase(0)]
    [TestCase(5)]
    public async Task TheSandboxCommandRunsInTheWorkspaceAndItsExitEndsTheAgentWithItsCode(int code)
    {
        var (exit, stderr, made) = await RunSandboxCommandAsync($"[\"/bin/sh\", \"-c\", \"echo ${{PILOTLIGHT_MODE:-clean}} > main.txt; exit {code}\"]", "main.txt");

        Assert.That(exit, Is.EqualTo(code), stderr);
        Assert.That(made, Is.EqualTo("clean\n"), "run in the workspace, without the agent's PILOTLIGHT_* variables");
    }

    [Test]
    public async Task ACommandThatCannotStartEndsTheAgentWith127()
    {
        var (exit, stderr, _) = await RunSandboxCommandAsync("[\"pilotlight-no-such-program\"]", null);

        Assert.That(exit, Is.EqualTo(127), "as a shell reports a command not found");
        Assert.That(stderr, Does.Not.Contain("Exception"));
    }

    /// <summary>The agent with <paramref name="command"/> as its sandbox command, run to its end in a fresh workspace.</summary>
    private static async Task<(int ExitCode, string Stderr, string? File)> RunSandboxCommandAsync(string command, string? readBack)
    {
        var workspace = Directory.CreateTempSubdirectory("pilotlight-sandbox-").FullName;
        try
        {
            var (exit, stderr) = await ShimProcess.RunAsync(new()
            {
                ["PILOTLIGHT_MODE"] = "sandbox",
                ["PILOTLIGHT_WORKSPACE"] = workspace,
                ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
                ["PILOTLIGHT_AGENT_INSECURE"] = "true",
                ["PILOTLIGHT_LISTEN_PORT"] = ControlPlane.FreePort().ToString(CultureInfo.InvariantCulture),
                ["PILOTLIGHT_SANDBOX_COMMAND"] = command,
            });
            var path = readBack is null ? null : Path.Combine(workspace, readBack);
            return (exit, stderr, path is not null && File.Exists(path) ? await File.ReadAllTextAsync(path) : null);
        }
        finally
        {
            Directory.Delete(workspace, recursive: true);
        }
    }

    [Test]
    public async Task TheProgramExitsWithCode2WithoutAWorkspace()
    {
        using var process = ShimProcess.Start(new() { ["PILOTLIGHT_MODE"] = "sandbox" });
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.That(process.ExitCode, Is.EqualTo(2));
        Assert.That(await stderr, Does.Contain("PILOTLIGHT_WORKSPACE"));
        Assert.That(await stderr, Does.Not.Contain("Exception"));
    }

    [Test]
    public async Task TheProgramServesTheSandboxApi()
    {
        var workspace = Directory.CreateTempSubdirectory("pilotlight-sandbox-").FullName;
        var port = ControlPlane.FreePort();
        using var process = ShimProcess.Start(new()
        {
            ["PILOTLIGHT_MODE"] = "sandbox",
            ["PILOTLIGHT_WORKSPACE"] = workspace,
            ["PILOTLIGHT_LISTEN_ADDRESS"] = "127.0.0.1",
            ["PILOTLIGHT_AGENT_INSECURE"] = "true",
            ["PILOTLIGHT_LISTEN_PORT"] = port.ToString(CultureInfo.InvariantCulture),
        });
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            using var client = await ShimProcess.ReadyClientAsync(port);

            using var response = await client.PostAsync("/exec", JsonContent.Create(new { argv = new[] { "/bin/sh", "-c", "echo $PILOTLIGHT_MODE-ok > made.txt" } }));
            var output = await ExecOutput.ReadAsync(response);
            Assert.That(output.Exit, Is.Zero);
            Assert.That(await client.GetStringAsync("/files?path=made.txt"), Is.EqualTo("-ok\n"));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }

            Directory.Delete(workspace, recursive: true);
        }

        Assert.That(await stderr, Does.Not.Contain("Exception"));
    }

    private static bool IsRunning(int pid)
    {
        // A zombie has finished; only its parent's wait is missing.
        var stat = $"/proc/{pid}/stat";
        try
        {
            var text = File.ReadAllText(stat);
            var state = text[(text.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state is not ("Z" or "X");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return false;
        }
    }

    private static async Task<string> ErrorAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("error").GetString()!;
    }

    private static Task WaitUntilAsync(Func<bool> condition) => WaitUntilAsync(() => Task.FromResult(condition()));

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? patience = null)
    {
        var deadline = Stopwatch.StartNew();
        var limit = patience ?? Patience;
        while (!await condition())
        {
            if (deadline.Elapsed > limit)
            {
                Assert.Fail($"condition not met within {limit}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>What an exec streamed: stdout and stderr decoded, and the final line.</summary>
    private sealed record ExecOutput(string Stdout, string Stderr, JsonElement Final)
    {
        public int? Exit => Final.GetProperty("exit").ValueKind == JsonValueKind.Null ? null : Final.GetProperty("exit").GetInt32();

        public bool TimedOut => Final.GetProperty("timedOut").GetBoolean();

        public static async Task<ExecOutput> ReadAsync(HttpResponseMessage response)
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
            return Parse(await response.Content.ReadAsStringAsync().WaitAsync(Patience));
        }

        public static ExecOutput Parse(string ndjson)
        {
            var stdout = new List<byte>();
            var stderr = new List<byte>();
            JsonElement? final = null;
            foreach (var line in ndjson.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                Assert.That(final, Is.Null, "nothing may follow the final line");
                var element = JsonDocument.Parse(line).RootElement;
                if (element.TryGetProperty("stream", out var stream))
                {
                    var data = Convert.FromBase64String(element.GetProperty("data").GetString()!);
                    (stream.GetString() == "stdout" ? stdout : stderr).AddRange(data);
                }
                else
                {
                    final = element;
                }
            }

            Assert.That(final, Is.Not.Null, "the output ends with the exit line");
            return new ExecOutput(Encoding.UTF8.GetString([.. stdout]), Encoding.UTF8.GetString([.. stderr]), final!.Value);
        }

        public static (string Stream, string Data) Chunk(string line)
        {
            var element = JsonDocument.Parse(line).RootElement;
            return (element.GetProperty("stream").GetString()!, Encoding.UTF8.GetString(Convert.FromBase64String(element.GetProperty("data").GetString()!)));
        }
    }

    /// <summary>The shim in sandbox mode, started in-process on 127.0.0.1 with a fresh temporary workspace.</summary>
    private sealed class Agent : IAsyncDisposable
    {
        private Agent(WebApplication app, HttpClient client, string workspace)
        {
            App = app;
            Client = client;
            Workspace = workspace;
        }

        public WebApplication App { get; }

        public HttpClient Client { get; }

        public string Workspace { get; }

        public static async Task<Agent> StartAsync(Func<SandboxOptions, SandboxOptions>? configure = null, TimeProvider? time = null)
        {
            var workspace = Directory.CreateTempSubdirectory("pilotlight-sandbox-").FullName;
            var sandbox = new SandboxOptions(workspace);
            sandbox = configure?.Invoke(sandbox) ?? sandbox;
            var options = ShimOptions.Default(new Uri("http://127.0.0.1:1")) with
            {
                ListenAddress = IPAddress.Loopback,
                ListenPort = 0,
                Sandbox = sandbox,
            };
            var app = ShimApp.Build(options, [], time);
            await app.StartAsync();
            var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()), Timeout = TimeSpan.FromSeconds(30) };
            return new Agent(app, client, workspace);
        }

        public Task<HttpResponseMessage> PostExecAsync(object body, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/exec") { Content = JsonContent.Create(body) };
            return Client.SendAsync(request, completion);
        }

        public async Task<ExecOutput> ExecAsync(object body)
        {
            using var response = await PostExecAsync(body);
            return await ExecOutput.ReadAsync(response);
        }

        public async Task<JsonElement> ActivityAsync() => await Client.GetFromJsonAsync<JsonElement>("/activity");

        /// <summary>The listing of <paramref name="path"/> as "name type size" lines.</summary>
        public async Task<string[]> ListAsync(string path)
        {
            var list = await Client.GetFromJsonAsync<JsonElement>($"/files/list?path={Uri.EscapeDataString(path)}");
            return [.. list.GetProperty("entries").EnumerateArray().Select(e =>
                $"{e.GetProperty("name").GetString()} {e.GetProperty("type").GetString()} {e.GetProperty("size").GetInt64()}")];
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await App.StopAsync(cts.Token);
            await App.DisposeAsync();
            DeleteWorkspace(Workspace);
        }

        /// <summary>Deletes the workspace without following the links tests put there (one points at /etc).</summary>
        private static void DeleteWorkspace(string dir)
        {
            foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", new EnumerationOptions { AttributesToSkip = 0 }))
            {
                if (entry.LinkTarget is not null || entry is FileInfo)
                {
                    entry.Delete();
                }
                else
                {
                    DeleteWorkspace(entry.FullName);
                }
            }

            Directory.Delete(dir);
        }
    }
}
