using System.CommandLine;
using System.Reflection;

namespace Pilotlight.Cli;

/// <summary>`pilotlight version`: the CLI's version.</summary>
public static class VersionCommand
{
    public static Command Create()
    {
        var command = new Command("version", "Print the CLI's version.\n\nExample:\n  pilotlight version");
        command.SetAction(result =>
        {
            var version = typeof(VersionCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            result.InvocationConfiguration.Output.WriteLine(version);
            return 0;
        });
        return command;
    }
}
