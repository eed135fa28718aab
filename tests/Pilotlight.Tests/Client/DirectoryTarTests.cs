using System.Formats.Tar;
using Pilotlight.Client;

namespace Pilotlight.Tests.Client;

/// <summary>The client's side of directory copies: a tree as tar and back, and what a hostile sandbox's archive cannot do.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DirectoryTarTests
{
    private string _root = null!;

    [SetUp]
    public void SetUp() => _root = Directory.CreateTempSubdirectory("pilotlight-tar-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    [Test]
    public async Task A_tree_round_trips_with_modes_links_and_empty_directories()
    {
        var source = Directory.CreateDirectory(Path.Combine(_root, "src")).FullName;
        Directory.CreateDirectory(Path.Combine(source, "empty"));
        await File.WriteAllTextAsync(Path.Combine(source, "run.sh"), "#!/bin/sh\n");
        File.SetUnixFileMode(Path.Combine(source, "run.sh"), (UnixFileMode)0x1ED);
        File.CreateSymbolicLink(Path.Combine(source, "link"), "run.sh");

        var tar = new MemoryStream();
        Assert.That(await DirectoryTar.WriteAsync(source, tar), Is.EqualTo(1));
        tar.Position = 0;
        var copy = Path.Combine(_root, "copy");
        var result = await DirectoryTar.ExtractAsync(tar, copy);

        Assert.That((result.Files, result.Entries, result.Skipped), Is.EqualTo((1, 3, (IReadOnlyList<string>)[])).Using<(int, int, IReadOnlyList<string>)>(
            (a, b) => a.Item1 == b.Item1 && a.Item2 == b.Item2 && a.Item3.SequenceEqual(b.Item3)));
        Assert.That(File.GetUnixFileMode(Path.Combine(copy, "run.sh")), Is.EqualTo((UnixFileMode)0x1ED));
        Assert.That(new FileInfo(Path.Combine(copy, "link")).LinkTarget, Is.EqualTo("run.sh"));
        Assert.That(Directory.Exists(Path.Combine(copy, "empty")), Is.True);
    }

    [TestCase("dotdot")]
    [TestCase("absolute")]
    [TestCase("link-then-file")]
    [TestCase("device")]
    public async Task A_hostile_archive_writes_nothing_outside_the_destination(string attack)
    {
        var outside = Directory.CreateDirectory(Path.Combine(_root, "outside")).FullName;
        TarEntry[] entries = attack switch
        {
            "dotdot" => [Regular("../outside/pwned")],
            "absolute" => [Regular(outside + "/pwned")],
            // A link pointing in, then a file under it: refused, nothing is written through a link.
            "link-then-file" => [Link("in", "."), Regular("in/pwned")],
            _ => [new PaxTarEntry(TarEntryType.CharacterDevice, "null") { DeviceMajor = 1, DeviceMinor = 3 }],
        };

        var ex = await Assert.ThrowsAsync<PilotlightClientException>(() => DirectoryTar.ExtractAsync(Archive(entries), Path.Combine(_root, "dest")));
        Assert.That(ex!.Message, Does.Contain("refused").Or.Contain("only files, directories and links"));
        Assert.That(Directory.EnumerateFileSystemEntries(outside), Is.Empty);
    }

    [Test]
    public async Task A_link_pointing_outside_the_destination_is_skipped_and_named()
    {
        var result = await DirectoryTar.ExtractAsync(Archive([Link("passwd", "/etc/passwd"), Link("up", "../.."), Link("ok", "sub/x")]), Path.Combine(_root, "dest"));
        Assert.That(result.Skipped, Is.EqualTo(new[] { "passwd", "up" }));
        Assert.That(File.Exists(Path.Combine(_root, "dest", "passwd")) || new FileInfo(Path.Combine(_root, "dest", "passwd")).LinkTarget is not null, Is.False);
        Assert.That(new FileInfo(Path.Combine(_root, "dest", "ok")).LinkTarget, Is.EqualTo("sub/x"));
    }

    private static MemoryStream Archive(TarEntry[] entries)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, leaveOpen: true))
        {
            foreach (var entry in entries)
            {
                writer.WriteEntry(entry);
            }
        }

        tar.Position = 0;
        return tar;
    }

    private static TarEntry Regular(string name) => new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream("pwned"u8.ToArray()) };

    private static TarEntry Link(string name, string target) => new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = target };
}
