// Pilotlight runtime shim: the sidecar in front of a function's HTTP server, or with PILOTLIGHT_MODE=sandbox
// the entrypoint of a Sandbox pod serving its exec and file API (Sandbox/SandboxAgent). See ShimApp for what
// it does and ShimOptions for the PILOTLIGHT_* variables it reads. Exit codes: 0 after a clean stop or drain (in sandbox mode, the sandbox command's own once it has ended),
// 2 for invalid configuration, 1 when the server cannot start (e.g. the port is taken).
using Pilotlight.RuntimeShim;

// `install DEST`: a Sandbox pod's init container copies this (self-contained, NativeAOT) binary into the shared
// volume so the agent runs inside the user's image without the image knowing about Pilotlight.
if (args is ["install", var destination])
{
    return AgentInstaller.CopySelf(Environment.ProcessPath, destination, Console.Error);
}

var parsed = ShimOptions.FromEnvironment();
if (parsed.Options is null)
{
    Console.Error.WriteLine($"pilotlight-shim: invalid configuration: {parsed.Error}");
    return 2;
}

var app = ShimApp.Build(parsed.Options, args);
var exitCode = ShimApp.ExitCode(app);
ShimApp.StartProcessHygiene(app);
using var signals = ShimApp.HandleTerminationSignals(app);
try
{
    await app.RunAsync();
    return exitCode();
}
catch (IOException e)
{
    Console.Error.WriteLine($"pilotlight-shim: cannot listen on {parsed.Options.ListenAddress}:{parsed.Options.ListenPort}: {e.Message}");
    return 1;
}
