using System.CommandLine;

namespace Pilotlight.Cli;

/// <summary>`pilotlight completion bash|zsh`: a shell completion script (it asks the CLI itself through the [suggest] directive).</summary>
public static class CompletionCommand
{
    public static Command Create()
    {
        var shell = new Argument<string>("shell") { Description = "bash or zsh." };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion", """
            Print a shell completion script.

            Examples:
              source <(pilotlight completion bash)
              pilotlight completion zsh > "${fpath[1]}/_pilotlight"
            """)
        {
            shell,
        };
        command.SetAction(result =>
        {
            result.InvocationConfiguration.Output.Write(result.GetValue(shell) == "zsh" ? Zsh : Bash);
            return 0;
        });
        return command;
    }

    // The line is passed without the program's name, and the cursor position moved to match.
    internal const string Bash = """
        _pilotlight_complete() {
          local line="${COMP_LINE#* }"
          local position=$(( COMP_POINT - ${#COMP_LINE} + ${#line} ))
          local IFS=$'\n'
          COMPREPLY=( $(compgen -W "$("${COMP_WORDS[0]}" "[suggest:${position}]" "${line}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}") )
        }
        complete -o default -F _pilotlight_complete pilotlight kubectl-pilotlight

        """;

    internal const string Zsh = """
        #compdef pilotlight kubectl-pilotlight
        _pilotlight() {
          local line="${BUFFER#* }"
          local position=$(( CURSOR - ${#BUFFER} + ${#line} ))
          local -a items
          items=("${(@f)$("${words[1]}" "[suggest:${position}]" "${line}" 2>/dev/null)}")
          compadd -a items
        }
        compdef _pilotlight pilotlight kubectl-pilotlight

        """;
}
