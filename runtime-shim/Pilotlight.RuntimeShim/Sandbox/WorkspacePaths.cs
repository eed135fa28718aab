namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>A request path resolved inside the workspace.</summary>
/// <param name="Relative">The resolved path relative to the workspace, with '/' separators; "." for the workspace itself.</param>
/// <param name="Full">The absolute real path: every symbolic link on the way, the last component's included, followed.</param>
/// <param name="Entry">
/// The directory entry the path names: its parent resolved, its last component not followed; what a delete removes,
/// so that deleting a link removes the link. Equals <paramref name="Full"/> when the path ends in '.', '..' or '/'.
/// </param>
internal readonly record struct WorkspacePath(string Relative, string Full, string Entry)
{
    /// <summary>True for the workspace directory itself.</summary>
    public bool IsRoot => Relative == ".";
}

/// <summary>
/// Turns the relative paths of the sandbox API into real paths that are guaranteed (at the time of the check)
/// to lie inside the workspace. Rejected: absolute paths, NUL bytes, and any path whose real path, found by
/// walking it one component at a time and following symbolic links as the kernel would (<c>..</c> after a link
/// applies to the link's target), ends outside the workspace. The check and the file operation are not atomic;
/// code inside the sandbox could swap a directory for a link in between, but that code can read its whole
/// container anyway: the check is there so that the API, driven from outside, stays in the workspace.
/// </summary>
internal sealed class WorkspacePaths
{
    /// <summary>Symbolic links followed in one resolution before giving up, as Linux's MAXSYMLINKS.</summary>
    private const int MaxLinks = 40;

    public WorkspacePaths(string workspace)
    {
        ArgumentException.ThrowIfNullOrEmpty(workspace);
        var full = Path.GetFullPath(workspace);
        Root = TryRealPath(full, out var real, out _) ? real : Path.TrimEndingDirectorySeparator(full);
    }

    /// <summary>The workspace's own real path.</summary>
    public string Root { get; }

    /// <summary>
    /// Resolves <paramref name="path"/> relative to the workspace. Null or empty means the workspace itself when
    /// <paramref name="allowRoot"/>, else it is an error. On failure <paramref name="error"/> says why, in a form
    /// fit for a 400 answer.
    /// </summary>
    public bool TryResolve(string? path, bool allowRoot, out WorkspacePath resolved, out string error)
    {
        resolved = default;
        if (string.IsNullOrEmpty(path))
        {
            if (allowRoot)
            {
                resolved = new WorkspacePath(".", Root, Root);
                error = "";
                return true;
            }

            error = "a path is required (relative to the workspace)";
            return false;
        }

        if (path.Contains('\0', StringComparison.Ordinal))
        {
            error = "path must not contain NUL bytes";
            return false;
        }

        if (Path.IsPathRooted(path) || path.StartsWith('/') || path.StartsWith('\\'))
        {
            error = $"path '{path}' must be relative to the workspace, not absolute";
            return false;
        }

        if (!TryRealPath(Root + "/" + path, out var real, out var why))
        {
            error = $"path '{path}': {why}";
            return false;
        }

        if (!IsInside(real))
        {
            error = $"path '{path}' leads outside the workspace";
            return false;
        }

        var relative = Path.GetRelativePath(Root, real).Replace(Path.DirectorySeparatorChar, '/');
        if (!allowRoot && relative == ".")
        {
            error = $"path '{path}' is the workspace itself";
            return false;
        }

        var entry = real;
        var slash = path.LastIndexOf('/');
        var last = path[(slash + 1)..];
        if (last is not ("" or "." or ".."))
        {
            if (!TryRealPath(Root + "/" + (slash < 0 ? "" : path[..slash]), out var parent, out why) || !IsInside(parent))
            {
                error = $"path '{path}' leads outside the workspace";
                return false;
            }

            entry = parent == "/" ? "/" + last : parent + "/" + last;
        }

        resolved = new WorkspacePath(relative, real, entry);
        error = "";
        return true;
    }

    /// <summary>True when <paramref name="real"/> (a real path) is the workspace or lies under it.</summary>
    public bool IsInside(string real) =>
        real.Equals(Root, StringComparison.Ordinal)
        || (real.StartsWith(Root, StringComparison.Ordinal) && (Root.EndsWith('/') || real[Root.Length] == '/'));

    /// <summary>
    /// The real path of the absolute <paramref name="path"/>, like POSIX <c>realpath</c> but tolerating components
    /// that do not exist yet (they are taken as written, so a file about to be created resolves too).
    /// </summary>
    internal static bool TryRealPath(string path, out string real, out string error)
    {
        real = "";
        error = "";
        var pending = new Stack<string>();
        Push(pending, path);
        var current = "/";
        var links = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part.Length == 0 || part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }

            var next = current == "/" ? "/" + part : current + "/" + part;
            string? target;
            try
            {
                target = new FileInfo(next).LinkTarget;
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                target = null; // Does not exist (yet): taken as written.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error = $"cannot resolve '{part}': {e.Message}";
                return false;
            }

            if (target is null)
            {
                current = next;
                continue;
            }

            if (++links > MaxLinks)
            {
                error = "too many levels of symbolic links";
                return false;
            }

            Push(pending, target);
            if (target.StartsWith('/'))
            {
                current = "/";
            }
        }

        real = current;
        return true;
    }

    /// <summary>Pushes the components of <paramref name="path"/> so that the first one pops first.</summary>
    private static void Push(Stack<string> pending, string path)
    {
        var parts = path.Split('/');
        for (var i = parts.Length - 1; i >= 0; i--)
        {
            pending.Push(parts[i]);
        }
    }
}
