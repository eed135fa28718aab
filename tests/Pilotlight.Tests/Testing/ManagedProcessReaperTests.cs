using System.Diagnostics;
using Pilotlight.Testing;

namespace Pilotlight.Tests.Testing;

/// <summary>Children left running by a test process that was killed outright are reaped by the next one.</summary>
public class ManagedProcessReaperTests
{
    private static Process Sleeper(string parent)
    {
        var info = new ProcessStartInfo("sleep", "120") { UseShellExecute = false };
        info.Environment[ManagedProcess.ParentVariable] = parent;
        return Process.Start(info)!;
    }

    [Test]
    public void A_child_of_a_dead_test_process_is_killed_and_one_of_a_live_process_is_left()
    {
        _ = ManagedProcess.Reaped; // the first use reaps once by itself: let that happen before the sleepers start
        // pid_max is at most 4194304: this parent cannot exist.
        using var orphan = Sleeper("99999999:12345");
        var ownStart = File.ReadAllText($"/proc/{Environment.ProcessId}/stat");
        var live = $"{Environment.ProcessId}:{ownStart[(ownStart.LastIndexOf(')') + 2)..].Split(' ')[19]}";
        using var child = Sleeper(live);
        // The same pid started at another time: the pid was reused by an unrelated process after the test host died.
        using var reused = Sleeper($"{Environment.ProcessId}:1");
        try
        {
            var reaped = ManagedProcess.ReapOrphans();

            Assert.That(reaped, Does.Contain(orphan.Id).And.Contain(reused.Id));
            Assert.That(reaped, Does.Not.Contain(child.Id));
            Assert.That(orphan.WaitForExit(TimeSpan.FromSeconds(10)), Is.True, "the orphan was killed");
            Assert.That(child.HasExited, Is.False, "a live test process's child runs on");
        }
        finally
        {
            foreach (var p in new[] { orphan, child, reused })
            {
                if (!p.HasExited)
                {
                    p.Kill();
                }
            }
        }
    }
}
