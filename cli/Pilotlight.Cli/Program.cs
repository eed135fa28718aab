using System.CommandLine;

namespace Pilotlight.Cli;

/// <summary>The `pilotlight` command (also `kubectl pilotlight`): one file per command, registered here.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => Build().Parse(args).InvokeAsync();

    /// <summary>The whole command tree; tests parse and invoke it in process.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand("Pilotlight: GPU functions and sandboxes on your Kubernetes cluster.");
        GlobalOptions.AddTo(root);
        // Commands, one line each (keep sorted; each file owns its command).
        root.Subcommands.Add(VersionCommand.Create());
        // TODO merge: move under sandbox
        root.Subcommands.Add(SandboxShellCommand.Create());
        return root;
    }
}
