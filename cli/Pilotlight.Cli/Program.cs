using System.CommandLine;

namespace Pilotlight.Cli;

/// <summary>The `pilotlight` command (also `kubectl pilotlight`): one file per command, registered here.</summary>
public static class Program
{
    /// <summary>
    /// How arguments are parsed: response files off, so <c>-d @file</c> reaches invoke as written instead of being
    /// replaced by the file's words.
    /// </summary>
    public static ParserConfiguration ParserConfiguration { get; } = new() { ResponseFileTokenReplacer = null };

    public static Task<int> Main(string[] args) => Parse(args).InvokeAsync();

    /// <summary>Parses a command line the way the program does (tests use this).</summary>
    public static ParseResult Parse(IReadOnlyList<string> args) => Build().Parse(args, ParserConfiguration);

    /// <summary>The whole command tree; tests parse and invoke it in process.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand("Pilotlight: GPU functions and sandboxes on your Kubernetes cluster.");
        GlobalOptions.AddTo(root);
        ClientOptions.AddTo(root);
        // Commands, one line each (keep sorted; each file owns its command).
        root.Subcommands.Add(CompletionCommand.Create());
        root.Subcommands.Add(DeployCommand.Create());
        root.Subcommands.Add(DescribeCommand.Create());
        root.Subcommands.Add(GetCommand.Create());
        root.Subcommands.Add(InvokeCommand.Create());
        root.Subcommands.Add(LogsCommand.Create());
        root.Subcommands.Add(SandboxCommand.Create());
        root.Subcommands.Add(UsageCommand.Create());
        root.Subcommands.Add(VersionCommand.Create());
        return root;
    }
}
