using System.CommandLine;
using Pilotlight.Client;

namespace Pilotlight.Cli;

/// <summary>`pilotlight sandbox create NAME --image IMAGE`: creates a Sandbox and waits until it is ready.</summary>
public static class SandboxCreateCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = "NAME or NAMESPACE/NAME." };
        var image = new Option<string>("--image") { Description = "Container image.", Required = true };
        var timeout = new Option<string?>("--timeout") { Description = "Lifetime, e.g. 600s or 1h (default: the CRD's, 300s)." };
        var idle = new Option<string?>("--idle-timeout") { Description = "End after this long without activity, e.g. 120s." };
        var gpus = new Option<int?>("--gpus") { Description = "GPUs to attach." };
        var gpuType = new Option<string?>("--gpu-type") { Description = "GPU type, with --gpus." };
        var wait = Durations.Option("--wait", "How long to wait for Ready, e.g. 90s (0s: do not wait).", TimeSpan.FromMinutes(2));
        var command = new Command("create", """
            Create a sandbox and wait until it is ready.

            Example:
              pilotlight sandbox create scratch --image python:3.12-slim --timeout 1h --idle-timeout 300s
            """)
        {
            name, image, timeout, idle, gpus, gpuType, wait,
        };
        CommandActions.Set(command, async (result, ct) =>
        {
            using var connection = GlobalOptions.Connect(result);
            var (ns, n) = ClientOptions.Target(result.GetValue(name)!, connection.Namespace);
            var request = new SandboxRequest(n, result.GetValue(image)!, result.GetValue(timeout), result.GetValue(idle), result.GetValue(gpus), result.GetValue(gpuType));
            var resources = new PilotlightResources(connection);
            var waitFor = result.GetValue(wait) ?? TimeSpan.FromMinutes(2);
            if (waitFor <= TimeSpan.Zero)
            {
                await resources.CreateAsync(PilotlightKind.Sandbox, ns, SandboxClient.Manifest(request), ct).ConfigureAwait(false);
                await result.InvocationConfiguration.Output.WriteLineAsync($"sandbox {ns}/{n} created").ConfigureAwait(false);
                return 0;
            }

            using var http = GatewayHttp.Create();
            var client = new SandboxClient(resources, http, new Uri("http://unused/"), null);
            var sandbox = await client.CreateAsync(ns, request, waitFor, ct).ConfigureAwait(false);
            await result.InvocationConfiguration.Output.WriteLineAsync(
                $"sandbox {ns}/{n} ready (pod {CliOutput.Text(sandbox, "status", "podName")}, expires {CliOutput.Text(sandbox, "status", "expiresAt") ?? "-"})").ConfigureAwait(false);
            return 0;
        });
        return command;
    }
}
