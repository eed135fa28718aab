namespace Pilotlight.Client.Logs;

/// <summary>One line a pod's container wrote.</summary>
/// <param name="Pod">The pod's name.</param>
/// <param name="Container">The container's name.</param>
/// <param name="Text">The line, without its line break.</param>
public sealed record PodLogLine(string Pod, string Container, string Text);

/// <summary>
/// How log lines of several pods are told apart: each is prefixed with its pod's name in brackets, and on a terminal
/// each pod gets a colour of its own, stable for the pod (picked from its name), as <c>stern</c> does.
/// </summary>
public static class LogLinePrefix
{
    /// <summary>Colours a terminal shows well on dark and light backgrounds, as ANSI SGR foreground codes.</summary>
    private static readonly int[] Palette = [32, 33, 34, 35, 36, 92, 93, 94, 95, 96];

    /// <summary><c>[pod] text</c>, or with <paramref name="showContainer"/> <c>[pod/container] text</c>; coloured when <paramref name="colour"/>.</summary>
    public static string Format(PodLogLine line, bool colour, bool showContainer = false)
    {
        ArgumentNullException.ThrowIfNull(line);
        var tag = showContainer ? $"{line.Pod}/{line.Container}" : line.Pod;
        return colour ? $"\u001b[{ColourOf(line.Pod)}m[{tag}]\u001b[0m {line.Text}" : $"[{tag}] {line.Text}";
    }

    /// <summary>The pod's colour: the same for the same name in every run (no randomised string hash).</summary>
    public static int ColourOf(string pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var hash = 2166136261u;
        foreach (var c in pod)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return Palette[hash % (uint)Palette.Length];
    }
}
