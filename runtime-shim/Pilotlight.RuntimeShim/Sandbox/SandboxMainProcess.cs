using System.ComponentModel;
using System.Diagnostics;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// The Sandbox's own long-running command (<c>spec.command</c>, passed as <c>PILOTLIGHT_SANDBOX_COMMAND</c>): started
/// in the workspace when the agent starts, with the container's environment less the <c>PILOTLIGHT_*</c> variables,
/// its output going to the container's. The sandbox lives as long as it runs: when it exits the agent stops with the
/// same exit code, so the pod ends Succeeded or Failed and the Sandbox Completed or PodFailed. Without a command the
/// agent alone keeps the sandbox up, waiting for exec calls.
/// </summary>
internal sealed class SandboxMainProcess(
    SandboxOptions options,
    ChildProcesses children,
    IHostApplicationLifetime lifetime,
    ILogger<SandboxMainProcess> log)
{
    private Process? _process;

    /// <summary>The exit code to leave with once the command has ended; null while none has.</summary>
    public int? ExitCode { get; private set; }

    /// <summary>Starts the command; a command that cannot start ends the agent with exit code 127.</summary>
    public void Start()
    {
        if (options.Command is not { Count: > 0 } command)
        {
            return;
        }

        var start = new ProcessStartInfo(command[0]) { WorkingDirectory = options.Workspace, UseShellExecute = false };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("PILOTLIGHT_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        try
        {
            _process = children.Start(start, out _);
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            log.LogError("The sandbox command {Program} could not start: {Error}", command[0], e.Message);
            Stop(127);
            return;
        }

        log.LogInformation("Sandbox command {Program} started (pid {Pid})", command[0], _process.Id);
        _process.EnableRaisingEvents = true;
        _process.Exited += (_, _) =>
        {
            var code = _process.ExitCode;
            log.LogInformation("Sandbox command {Program} exited with {ExitCode}; the sandbox ends", command[0], code);
            Stop(code);
        };
    }

    /// <summary>Kills the command's process tree when the agent stops first.</summary>
    public void Kill()
    {
        try
        {
            if (_process is { HasExited: false } process)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception)
        {
            // It ended meanwhile.
        }
    }

    private void Stop(int code)
    {
        ExitCode = code;
        lifetime.StopApplication();
    }
}
