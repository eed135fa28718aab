using System.Diagnostics;

namespace Pilotlight.Tests.RuntimeShim;

/// <summary>The shim as a real process (the build next to the tests), for what only a process shows: exit codes, signals.</summary>
internal static class ShimProcess
{
    /// <summary>
    /// Starts the shim with only <paramref name="env"/> among the <c>PILOTLIGHT_*</c> variables; stderr is redirected
    /// for the caller to read, stdout is drained. <paramref name="launcher"/>, if given, is a command line the shim
    /// runs under (e.g. <c>setpriv</c> with its options, to run it as another user).
    /// </summary>
    public static Process Start(Dictionary<string, string> env, IReadOnlyList<string>? launcher = null)
    {
        var info = new ProcessStartInfo(launcher is { Count: > 0 } ? launcher[0] : "dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var argument in launcher?.Skip(1) ?? [])
        {
            info.ArgumentList.Add(argument);
        }

        if (launcher is { Count: > 0 })
        {
            info.ArgumentList.Add("dotnet");
        }

        info.ArgumentList.Add("exec");
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Pilotlight.RuntimeShim.dll"));
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("PILOTLIGHT_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in env)
        {
            info.Environment[name] = value;
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        return process;
    }

    /// <summary>Runs the shim to its end (at most 30 s): its exit code and what it wrote to stderr.</summary>
    public static async Task<(int ExitCode, string Stderr)> RunAsync(Dictionary<string, string> env)
    {
        using var process = Start(env);
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return (process.ExitCode, await stderr);
    }

    /// <summary>A client of the shim on <paramref name="port"/>, once its <c>/ready</c> answers 2xx (at most 30 s).</summary>
    public static async Task<HttpClient> ReadyClientAsync(int port)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                using var ready = await client.GetAsync("/ready");
                if (ready.IsSuccessStatusCode)
                {
                    return client;
                }
            }
            catch (HttpRequestException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                client.Dispose();
                throw new TimeoutException($"the shim on port {port} was not ready within 30 s");
            }

            await Task.Delay(20);
        }
    }
}
