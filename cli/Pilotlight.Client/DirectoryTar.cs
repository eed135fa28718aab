using System.Formats.Tar;

namespace Pilotlight.Client;

/// <summary>What extracting an archive did.</summary>
/// <param name="Files">Regular files written.</param>
/// <param name="Entries">Entries extracted: files, directories and links.</param>
/// <param name="Skipped">Links left out because they point outside the destination, by name.</param>
public sealed record TarExtraction(int Files, int Entries, IReadOnlyList<string> Skipped);

/// <summary>
/// A local directory as a tar stream and back, the client's side of a sandbox's <c>archive</c> endpoint: permission
/// bits, symbolic links (as links) and empty directories travel; owners do not.
/// </summary>
public static class DirectoryTar
{
    private const UnixFileMode PermissionBits = (UnixFileMode)0x1FF;

    /// <summary>Writes the contents of <paramref name="directory"/> (names relative to it) to <paramref name="output"/>; returns the files written.</summary>
    public static async Task<int> WriteAsync(string directory, Stream output, CancellationToken cancellationToken = default)
    {
        await using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        return await WriteDirectoryAsync(tar, new DirectoryInfo(directory), "", cancellationToken).ConfigureAwait(false);
    }

    private static async Task<int> WriteDirectoryAsync(TarWriter tar, DirectoryInfo directory, string prefix, CancellationToken ct)
    {
        var files = 0;
        var enumeration = new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = true, RecurseSubdirectories = false };
        foreach (var info in directory.EnumerateFileSystemInfos("*", enumeration).OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            var name = prefix + info.Name;
            if (info.LinkTarget is { } target)
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = target, ModificationTime = info.LastWriteTimeUtc }, ct).ConfigureAwait(false);
            }
            else if (info is DirectoryInfo sub)
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, name + "/") { Mode = Mode(sub), ModificationTime = sub.LastWriteTimeUtc }, ct).ConfigureAwait(false);
                files += await WriteDirectoryAsync(tar, sub, name + "/", ct).ConfigureAwait(false);
            }
            else
            {
                // The writer reads the entry's type itself (lstat): a regular file with its data, a FIFO or device as
                // such, never opened (the sandbox's agent refuses those).
                await tar.WriteEntryAsync(info.FullName, name, ct).ConfigureAwait(false);
                files++;
            }
        }

        return files;
    }

    /// <summary>
    /// Extracts <paramref name="input"/> into <paramref name="destination"/> (created when missing). The archive comes
    /// from a sandbox, whose code may be hostile: a name that is absolute or has a '..' component, or that lies under a
    /// symbolic link, is refused (nothing is ever written through a link), a link that points outside the destination
    /// is skipped and named in the result, and devices and FIFOs are refused. A hard link is extracted as a copy.
    /// </summary>
    public static async Task<TarExtraction> ExtractAsync(Stream input, string destination, CancellationToken cancellationToken = default)
    {
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(destination));
        Directory.CreateDirectory(root);
        var (files, entries) = (0, 0);
        var skipped = new List<string>();
        var directories = new List<(string Path, UnixFileMode Mode, DateTimeOffset Modified)>();
        await using var tar = new TarReader(input, leaveOpen: true);
        while (await tar.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            if (entry.EntryType == TarEntryType.GlobalExtendedAttributes)
            {
                continue;
            }

            var name = Relative(entry.Name);
            if (name.Length == 0)
            {
                continue; // The directory itself.
            }

            var path = Path.Join(root, name);
            var parent = Path.GetDirectoryName(path)!;
            CreateParents(root, parent, entry.Name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    RemoveLinkOrFile(path);
                    Directory.CreateDirectory(path);
                    directories.Add((path, entry.Mode & PermissionBits, entry.ModificationTime));
                    break;

                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    RemoveLinkOrFile(path);
                    await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
                    {
                        if (entry.DataStream is { } data)
                        {
                            await data.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
                        }
                    }

                    SetMode(path, entry.Mode & PermissionBits);
                    File.SetLastWriteTimeUtc(path, entry.ModificationTime.UtcDateTime);
                    files++;
                    break;

                case TarEntryType.SymbolicLink:
                    var target = Path.GetFullPath(Path.Join(parent, entry.LinkName));
                    if (Path.IsPathRooted(entry.LinkName) || !Inside(root, target))
                    {
                        skipped.Add(name);
                        continue;
                    }

                    RemoveLinkOrFile(path);
                    File.CreateSymbolicLink(path, entry.LinkName);
                    break;

                case TarEntryType.HardLink:
                    var source = Path.Join(root, Relative(entry.LinkName));
                    CreateParents(root, Path.GetDirectoryName(source)!, entry.LinkName);
                    if (new FileInfo(source) is not { Exists: true, LinkTarget: null })
                    {
                        throw new PilotlightClientException($"Archive entry {entry.Name} links to {entry.LinkName}, which is not a file extracted before it.", null);
                    }

                    RemoveLinkOrFile(path);
                    File.Copy(source, path);
                    files++;
                    break;

                default:
                    throw new PilotlightClientException($"Archive entry {entry.Name} is a {entry.EntryType}; only files, directories and links are extracted.", null);
            }

            entries++;
        }

        // Deepest first, last: a read-only directory would stop what is extracted into it.
        foreach (var (path, mode, modified) in directories.OrderByDescending(d => d.Path.Length))
        {
            SetMode(path, mode);
            Directory.SetLastWriteTimeUtc(path, modified.UtcDateTime);
        }

        return new TarExtraction(files, entries, skipped);
    }

    /// <summary>The entry name as a relative path, refused when absolute or with '..'.</summary>
    private static string Relative(string name)
    {
        if (name.Contains('\0', StringComparison.Ordinal) || name.StartsWith('/') || name.StartsWith('\\') || Path.IsPathRooted(name))
        {
            throw new PilotlightClientException($"Archive entry {name} has an absolute name; refused.", null);
        }

        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
        if (parts.Contains(".."))
        {
            throw new PilotlightClientException($"Archive entry {name} has a '..' component; refused.", null);
        }

        return string.Join(Path.DirectorySeparatorChar, parts);
    }

    /// <summary>Creates the directories from <paramref name="root"/> down to <paramref name="directory"/>, refusing any that is a link.</summary>
    private static void CreateParents(string root, string directory, string entry)
    {
        var relative = Path.GetRelativePath(root, directory);
        var current = root;
        foreach (var part in relative == "." ? [] : relative.Split(Path.DirectorySeparatorChar))
        {
            current = Path.Join(current, part);
            var info = new DirectoryInfo(current);
            if (info.LinkTarget is not null)
            {
                throw new PilotlightClientException($"Archive entry {entry} lies under the symbolic link {current}; refused (nothing is written through a link).", null);
            }

            if (File.Exists(current))
            {
                throw new PilotlightClientException($"Archive entry {entry} lies under {current}, which is a file.", null);
            }

            Directory.CreateDirectory(current);
        }
    }

    private static bool Inside(string root, string path) =>
        path.Equals(root, StringComparison.Ordinal) || path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static void RemoveLinkOrFile(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null || info.Exists)
        {
            info.Delete();
        }
    }

    private static UnixFileMode Mode(FileSystemInfo info) => OperatingSystem.IsWindows() ? PermissionBits : info.UnixFileMode & PermissionBits;

    private static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }
}
