// Pilotlight runtime shim: the sidecar in front of a function's HTTP server. See ShimApp for what it does
// and ShimOptions for the PILOTLIGHT_* variables it reads. Exit codes: 0 after a clean stop or drain,
// 2 for invalid configuration, 1 when the server cannot start (e.g. the port is taken).
using Pilotlight.RuntimeShim;

var parsed = ShimOptions.FromEnvironment();
if (parsed.Options is null)
{
    Console.Error.WriteLine($"pilotlight-shim: invalid configuration: {parsed.Error}");
    return 2;
}

var app = ShimApp.Build(parsed.Options, args);
using var signals = ShimApp.HandleTerminationSignals(app);
try
{
    await app.RunAsync();
    return 0;
}
catch (IOException e)
{
    Console.Error.WriteLine($"pilotlight-shim: cannot listen on {parsed.Options.ListenAddress}:{parsed.Options.ListenPort}: {e.Message}");
    return 1;
}
