namespace Pilotlight.RuntimeShim;

/// <summary>Copies the running executable to a path in a volume shared with the sandbox container.</summary>
public static class AgentInstaller
{
    private const UnixFileMode Executable =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <returns>0 when copied, 1 on an I/O failure, 2 when there is nothing to copy.</returns>
    public static int CopySelf(string? self, string destination, TextWriter log)
    {
        if (string.IsNullOrEmpty(self) || !File.Exists(self))
        {
            log.WriteLine("pilotlight-shim install: cannot locate the running executable");
            return 2;
        }

        try
        {
            var full = Path.GetFullPath(destination);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            var staging = full + ".partial";
            File.Copy(self, staging, overwrite: true);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(staging, Executable);
            }

            // Rename so the sandbox container never sees a half-written agent.
            File.Move(staging, full, overwrite: true);
            log.WriteLine($"pilotlight-shim install: agent written to {full}");
            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.WriteLine($"pilotlight-shim install: {e.Message}");
            return 1;
        }
    }
}
