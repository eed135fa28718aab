using System.Runtime.InteropServices;
using Pilotlight.Metering;
using Prometheus;

// pilotlight-meter: the metering sidecar. Every second it meters the pod's
// allocation (GPUs, CPU and memory requests) and use (cgroup CPU and memory;
// GPU utilisation and memory through NVML where present), exports Prometheus
// counters labelled {namespace, function, gpu_type} and checkpoints its
// totals; SIGTERM flushes the last partial second.
if (args is ["gpu-probe", .. var probeArgs])
{
    return GpuProbe.Run(probeArgs, Environment.GetEnvironmentVariable("NVIDIA_VISIBLE_DEVICES"), Console.Out, Console.Error, TimeProvider.System,
        simulated: Environment.GetEnvironmentVariable("PILOTLIGHT_SIMULATED_GPUS") == "true");
}

if (args is ["idle"])
{
    // What placeholder and pre-pull pods run: nothing, until told to stop.
    using var idle = new CancellationTokenSource();
    using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; idle.Cancel(); });
    await Task.Delay(Timeout.Infinite, idle.Token).ContinueWith(_ => { }, TaskScheduler.Default);
    return 0;
}

if (args is ["install", .. var installArgs])
{
    return GpuProbe.Install(installArgs, Environment.ProcessPath, Console.Error);
}

var (log, logError) = MeterLog.FromEnvironment(Environment.GetEnvironmentVariables(), Console.Error, TimeProvider.System);
var options = MeterOptions.FromEnvironment(Environment.GetEnvironmentVariables(), out var error);
if (options is null || logError is not null)
{
    log.Write(MeterLog.Level.Critical, $"pilotlight-meter: {logError ?? error}");
    return 2;
}

var directory = Path.GetDirectoryName(options.CheckpointPath);
if (!string.IsNullOrEmpty(directory))
{
    Directory.CreateDirectory(directory);
}

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

var registry = Metrics.NewCustomRegistry();
using var service = new MeteringService(options, registry, TimeProvider.System, log);
using var server = options.MetricsPort > 0 ? new MetricServer(port: options.MetricsPort, registry: registry) : null;
server?.Start();
await service.RunAsync(stop.Token);
log.Write(MeterLog.Level.Information, $"pilotlight-meter: stopped after {service.Totals.Seconds:F1} s, {service.Totals.GpuAllocatedSeconds:F1} GPU-seconds");
return 0;
