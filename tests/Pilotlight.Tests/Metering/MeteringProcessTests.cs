using Pilotlight.Metering;

namespace Pilotlight.Tests.Metering;

/// <summary>The sidecar as a real process: kill -9 and resume, SIGTERM and flush.</summary>
public class MeteringProcessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(50, timeout.Token).ContinueWith(t =>
            {
                if (t.IsCanceled)
                {
                    throw new TimeoutException($"waited {Patience} for {what}");
                }
            }, TaskScheduler.Default);
        }
    }

    private static MeterTotals? Read(string path)
    {
        try
        {
            return File.Exists(path) ? Checkpoint.Parse(File.ReadAllText(path), out _) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    [Test]
    public async Task A_killed_sidecar_resumes_from_its_checkpoint_and_SIGTERM_flushes()
    {
        var dir = Directory.CreateTempSubdirectory("pilotlight-meter-proc-").FullName;
        var checkpoint = Path.Combine(dir, "meter.json");
        var env = new Dictionary<string, string>
        {
            ["PILOTLIGHT_NAMESPACE"] = "ns", ["PILOTLIGHT_FUNCTION"] = "fn", ["PILOTLIGHT_GPU_COUNT"] = "2",
            ["PILOTLIGHT_CHECKPOINT"] = checkpoint, ["PILOTLIGHT_METRICS_PORT"] = "0", ["PILOTLIGHT_CGROUP"] = Path.Combine(dir, "none"),
        };
        // The sidecar's own build output, with its own dependencies (not the test's).
        var dll = Path.Combine(RepositoryRoot.Path, "metering", "Pilotlight.Metering", "bin",
            new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name, "net10.0", "Pilotlight.Metering.dll");

        var first = ManagedProcess.Start("dotnet", ["exec", dll], Path.Combine(dir, "first.log"), env);
        await UntilAsync(() => Read(checkpoint)?.Seconds >= 2, "two seconds checkpointed");
        first.Kill();
        await first.StopAsync();
        var atKill = Read(checkpoint)!;

        var second = ManagedProcess.Start("dotnet", ["exec", dll], Path.Combine(dir, "second.log"), env);
        await UntilAsync(() => Read(checkpoint)?.Seconds >= atKill.Seconds + 2, "metering resumed past the kill");
        Assert.That(second.LogTail(), Does.Contain("resumed from checkpoint"));
        Assert.That(Read(checkpoint)!.GpuAllocatedSeconds, Is.GreaterThan(atKill.GpuAllocatedSeconds), "never backwards");

        second.Terminate();
        await UntilAsync(() => second.HasExited, "exit after SIGTERM");
        Assert.That(second.ExitCode, Is.Zero);
        Assert.That(second.LogTail(), Does.Contain("stopped after"));
        var final = Read(checkpoint)!;
        Assert.That(final.GpuAllocatedSeconds, Is.EqualTo(2 * final.Seconds).Within(1e-6));
        await second.StopAsync();
        Directory.Delete(dir, recursive: true);
    }
}
