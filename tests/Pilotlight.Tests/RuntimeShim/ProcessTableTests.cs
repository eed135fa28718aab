using System.Text;
using Pilotlight.RuntimeShim.Sandbox;

namespace Pilotlight.Tests.RuntimeShim;

/// <summary>The sandbox agent's parser of <c>/proc/&lt;pid&gt;/stat</c> lines, which reads them as bytes from the stack.</summary>
public sealed class ProcessTableTests
{
    // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    // priority nice num_threads itrealvalue starttime ...
    private static byte[] Stat(string comm, char state, int parent, ulong start) => Encoding.UTF8.GetBytes(
        $"4242 ({comm}) {state} {parent} 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 {start} 2490368 213 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");

    [Test]
    public void A_stat_line_gives_state_parent_and_start_time()
    {
        var entry = ProcessTable.Parse(4242, Stat("python3", 'S', 17, 987654321UL));

        Assert.That(entry, Is.EqualTo(new ProcessEntry(4242, 17, 'S', 987654321UL)));
        Assert.That(entry!.Value.IsZombie, Is.False);
    }

    [Test]
    public void A_command_name_with_spaces_and_parentheses_does_not_shift_the_fields()
    {
        // A process may name itself anything (prctl PR_SET_NAME): the fields are counted from the last ')'.
        var entry = ProcessTable.Parse(4242, Stat("evil) R 1 (x", 'Z', 99, 5UL));

        Assert.That(entry, Is.EqualTo(new ProcessEntry(4242, 99, 'Z', 5UL)));
        Assert.That(entry!.Value.IsZombie, Is.True);
    }

    [TestCase("")]
    [TestCase("4242 (sh")]
    [TestCase("4242 (sh) S")]
    [TestCase("4242 (sh) S notanumber 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100")]
    [TestCase("4242 (sh) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0")]
    public void A_line_that_is_not_a_whole_stat_entry_gives_none(string line)
    {
        Assert.That(ProcessTable.Parse(4242, Encoding.UTF8.GetBytes(line)), Is.Null);
    }

    [Test]
    public void This_process_reads_as_itself_with_a_parent_and_a_start_time()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("/proc is Linux's");
        }

        var self = ProcessTable.ReadEntry(Environment.ProcessId);

        Assert.That(self, Is.Not.Null);
        Assert.That((self!.Value.Pid, self.Value.State), Is.EqualTo((Environment.ProcessId, 'R')).Or.EqualTo((Environment.ProcessId, 'S')));
        Assert.That(ProcessTable.Read().Is(Environment.ProcessId, self.Value.StartTime), Is.True);
    }
}
