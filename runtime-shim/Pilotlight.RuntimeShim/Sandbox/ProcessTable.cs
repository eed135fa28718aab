using System.Globalization;
using System.Text;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>One process as <c>/proc/&lt;pid&gt;/stat</c> shows it.</summary>
/// <param name="Pid">Its id.</param>
/// <param name="ParentPid">Its parent's id.</param>
/// <param name="State">The state letter: <c>R</c>, <c>S</c>, <c>T</c>, <c>Z</c> (exited, not yet reaped), ...</param>
/// <param name="StartTime">When it started, in clock ticks since boot: with the pid, it names one process even across pid reuse.</param>
internal readonly record struct ProcessEntry(int Pid, int ParentPid, char State, ulong StartTime)
{
    public bool IsZombie => State is 'Z' or 'X';
}

/// <summary>A snapshot of the processes this one can see in <c>/proc</c> (Linux), with their parent links.</summary>
internal sealed class ProcessTable
{
    private readonly Dictionary<int, List<int>> _children = [];

    private ProcessTable(Dictionary<int, ProcessEntry> entries)
    {
        Entries = entries;
        foreach (var entry in entries.Values)
        {
            if (!_children.TryGetValue(entry.ParentPid, out var list))
            {
                _children[entry.ParentPid] = list = [];
            }

            list.Add(entry.Pid);
        }
    }

    public IReadOnlyDictionary<int, ProcessEntry> Entries { get; }

    /// <summary>Reads every <c>/proc/&lt;pid&gt;/stat</c>; processes that end while being read are left out.</summary>
    public static ProcessTable Read()
    {
        var entries = new Dictionary<int, ProcessEntry>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && ReadEntry(pid) is { } entry)
            {
                entries[pid] = entry;
            }
        }

        return new ProcessTable(entries);
    }

    /// <summary>One process's entry; null when it is gone.</summary>
    public static ProcessEntry? ReadEntry(int pid)
    {
        // Read into the stack and parsed as bytes: the agent reads every process's entry after each exec, and a
        // string per file and per field made that its largest allocation under load (the line is a few hundred bytes;
        // its 52 numeric fields cannot pass 2 KiB).
        Span<byte> stat = stackalloc byte[2048];
        int length;
        try
        {
            using var handle = File.OpenHandle($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            length = RandomAccess.Read(handle, stat, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return Parse(pid, stat[..length]);
    }

    /// <summary>The entry in one <c>/proc/&lt;pid&gt;/stat</c> line; null when it is not one.</summary>
    internal static ProcessEntry? Parse(int pid, ReadOnlySpan<byte> stat)
    {
        // "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so fields are counted from the last ')'.
        var close = stat.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return null;
        }

        // Field 3 (state) is the first after it, field 4 (ppid) the second, field 22 (starttime) the twentieth.
        var rest = stat[(close + 2)..];
        var state = '?';
        var parent = -1;
        ulong? start = null;
        for (var field = 0; field <= 19 && !rest.IsEmpty; field++)
        {
            var end = rest.IndexOfAny((byte)' ', (byte)'\n');
            var value = end < 0 ? rest : rest[..end];
            switch (field)
            {
                case 0:
                    state = value.IsEmpty ? '?' : (char)value[0];
                    break;
                case 1 when !int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out parent):
                    return null;
                case 19 when ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var started):
                    start = started;
                    break;
            }

            rest = end < 0 ? [] : rest[(end + 1)..];
        }

        return start is { } startTime && parent >= 0 ? new ProcessEntry(pid, parent, state, startTime) : null;
    }

    /// <summary>Whether <paramref name="pid"/> is (still) the process that started at <paramref name="startTime"/>.</summary>
    public bool Is(int pid, ulong startTime) => Entries.TryGetValue(pid, out var entry) && entry.StartTime == startTime;

    /// <summary>The processes whose parent is <paramref name="pid"/>.</summary>
    public IReadOnlyList<int> ChildrenOf(int pid) => _children.TryGetValue(pid, out var list) ? list : [];

    /// <summary>Every descendant of <paramref name="pid"/> (children, their children, ...), not itself.</summary>
    public HashSet<int> DescendantsOf(int pid)
    {
        var found = new HashSet<int>();
        var pending = new Stack<int>(ChildrenOf(pid));
        while (pending.TryPop(out var next))
        {
            if (found.Add(next))
            {
                foreach (var child in ChildrenOf(next))
                {
                    pending.Push(child);
                }
            }
        }

        return found;
    }

    /// <summary>
    /// Whether <paramref name="pid"/>'s environment (as it was exec'd: <c>/proc/&lt;pid&gt;/environ</c>) holds the
    /// entry <paramref name="entry"/> (<c>NAME=value</c>). False when it cannot be read: gone, a zombie, or
    /// not dumpable by us.
    /// </summary>
    public static bool EnvironmentHolds(int pid, string entry)
    {
        byte[] environ;
        try
        {
            environ = File.ReadAllBytes($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/environ");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        var wanted = Encoding.UTF8.GetBytes(entry);
        var span = environ.AsSpan();
        while (!span.IsEmpty)
        {
            var end = span.IndexOf((byte)0);
            var variable = end < 0 ? span : span[..end];
            if (variable.SequenceEqual(wanted))
            {
                return true;
            }

            span = end < 0 ? [] : span[(end + 1)..];
        }

        return false;
    }
}
