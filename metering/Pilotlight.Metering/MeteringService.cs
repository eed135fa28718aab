using Pilotlight.Nvml;
using Prometheus;

namespace Pilotlight.Metering;

/// <summary>
/// The sidecar's loop: once a second it advances the totals, exports them as
/// Prometheus counters and checkpoints them; on stop it takes a last (partial)
/// sample and checkpoints once more, so no second is lost.
/// </summary>
public sealed class MeteringService : IDisposable
{
    private readonly MeterOptions _options;
    private readonly TimeProvider _time;
    private readonly IUsageSource _usage;
    private readonly NvmlSession? _nvml;
    private readonly TextWriter _log;
    private readonly Counter.Child _gpuAllocated;
    private readonly Counter.Child _cpuAllocated;
    private readonly Counter.Child _memoryAllocated;
    private readonly Counter.Child _cpuUsed;
    private readonly Counter.Child _memoryUsed;
    private readonly Gauge _gpuUtilization;
    private readonly Gauge _gpuMemory;
    private readonly Gauge _nvmlAvailable;
    private readonly string[] _labelValues;
    private readonly Counter _checkpointErrors;
    private MeterTotals _totals;

    /// <summary>A service metering per <paramref name="options"/>, resuming from its checkpoint if there is a valid one.</summary>
    public MeteringService(MeterOptions options, CollectorRegistry registry, TimeProvider time, TextWriter log, bool useNvml = true)
    {
        _options = options;
        _time = time;
        _log = log;
        _usage = options.CgroupRoot is { } cgroup ? new Cgroup(cgroup) : new ProcessTable();
        var f = Metrics.WithCustomRegistry(registry);
        string[] labels = ["namespace", "function", "gpu_type"];
        string[] values = [options.Namespace, options.Function, options.GpuType];
        _gpuAllocated = f.CreateCounter("pilotlight_gpu_allocated_seconds_total", "GPUs allocated x seconds.", labels).WithLabels(values);
        _cpuAllocated = f.CreateCounter("pilotlight_cpu_allocated_seconds_total", "CPU cores requested x seconds.", labels).WithLabels(values);
        _memoryAllocated = f.CreateCounter("pilotlight_memory_allocated_byte_seconds_total", "Memory bytes requested x seconds.", labels).WithLabels(values);
        _cpuUsed = f.CreateCounter("pilotlight_cpu_seconds_total", "CPU seconds used by the pod's processes.", labels).WithLabels(values);
        _memoryUsed = f.CreateCounter("pilotlight_memory_byte_seconds_total", "Resident memory bytes x seconds of the pod's processes.", labels).WithLabels(values);
        _checkpointErrors = f.CreateCounter("pilotlight_meter_checkpoint_errors_total", "Checkpoints that could not be read or written.");
        _nvmlAvailable = f.CreateGauge("pilotlight_meter_nvml_available", "1 when the pod's GPUs could be read through NVML (here or by the function container's probe); GPU use is absent otherwise.");
        _labelValues = values;
        // Children are added only while GPU use is known, so without it the series are absent rather than zero.
        _gpuUtilization = f.CreateGauge("pilotlight_gpu_utilization_ratio", "Mean utilisation of the pod's GPUs, 0..1.", labels);
        _gpuMemory = f.CreateGauge("pilotlight_gpu_memory_used_bytes", "GPU memory used by the pod's GPUs.", labels);

        if (useNvml && options.Allocation.Gpus > 0)
        {
            _nvml = NvmlLibrary.Open(out var nvmlError);
            if (_nvml is null)
            {
                _log.WriteLine($"metering: warning: GPU use not metered: {nvmlError}; allocation metering goes on");
            }
        }

        if (_nvml is null && options.GpuReportPath is not null && options.Allocation.Gpus > 0)
        {
            _log.WriteLine($"metering: reading GPU use from the function container's probe at {options.GpuReportPath}");
        }

        _totals = Resume();
        Export();
    }

    /// <summary>The totals so far.</summary>
    public MeterTotals Totals => _totals;

    /// <summary>Samples every second until <paramref name="cancellationToken"/> fires, then flushes.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        Sample();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken).ConfigureAwait(false);
                Sample();
            }
        }
        catch (OperationCanceledException)
        {
        }

        // The final partial second.
        Sample();
    }

    /// <summary>Takes one sample: totals, counters, gauges, checkpoint.</summary>
    public void Sample()
    {
        _totals = Meter.Advance(_totals, _time.GetUtcNow(), _options.Allocation, _usage.Read());
        Export();
        ExportGpuUse();
        try
        {
            Checkpoint.Write(_options.CheckpointPath, _totals);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _checkpointErrors.Inc();
            _log.WriteLine($"metering: warning: checkpoint not written: {e.Message}");
        }
    }

    /// <inheritdoc />
    public void Dispose() => _nvml?.Dispose();

    /// <summary>The longest a probe's report is trusted: the probe runs every second, so this is three missed runs.</summary>
    internal static readonly TimeSpan ReportMaxAge = TimeSpan.FromSeconds(3);

    /// <summary>
    /// GPU use of the pod's own GPUs: through NVML where this container sees them,
    /// else from the function container's probe report; absent (not zero) when neither says.
    /// </summary>
    private void ExportGpuUse()
    {
        IReadOnlyList<(double? Utilization, ulong MemoryUsed)>? gpus = null;
        if (_nvml is not null)
        {
            gpus = [.. _nvml.Sample(_options.VisibleGpus).Select(g => (double.IsNaN(g.Utilization) ? (double?)null : g.Utilization, g.MemoryUsedBytes))];
        }
        else if (_options.GpuReportPath is { } path && _options.Allocation.Gpus > 0
            && GpuReports.ReadFresh(path, _time, ReportMaxAge) is { Available: true } report)
        {
            gpus = [.. report.Gpus.Select(g => (g.Utilization, g.MemoryUsedBytes))];
        }

        if (gpus is { Count: > 0 })
        {
            _nvmlAvailable.Set(1);
            var utilizations = gpus.Where(g => g.Utilization is not null).Select(g => g.Utilization!.Value).ToList();
            if (utilizations.Count > 0)
            {
                _gpuUtilization.WithLabels(_labelValues).Set(utilizations.Average());
            }
            else
            {
                _gpuUtilization.RemoveLabelled(_labelValues);
            }

            _gpuMemory.WithLabels(_labelValues).Set(gpus.Sum(g => (double)g.MemoryUsed));
        }
        else
        {
            _nvmlAvailable.Set(0);
            _gpuUtilization.RemoveLabelled(_labelValues);
            _gpuMemory.RemoveLabelled(_labelValues);
        }
    }

    private MeterTotals Resume()
    {
        if (!File.Exists(_options.CheckpointPath))
        {
            return new MeterTotals();
        }

        string text;
        try
        {
            text = File.ReadAllText(_options.CheckpointPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _checkpointErrors.Inc();
            _log.WriteLine($"metering: warning: checkpoint unreadable ({e.Message}); starting from zero");
            return new MeterTotals();
        }

        if (Checkpoint.Parse(text, out var error) is { } totals)
        {
            _log.WriteLine($"metering: resumed from checkpoint: {totals.GpuAllocatedSeconds:F1} GPU-seconds over {totals.Seconds:F1} s");
            return totals;
        }

        _checkpointErrors.Inc();
        var aside = _options.CheckpointPath + ".corrupt";
        try
        {
            File.Move(_options.CheckpointPath, aside, overwrite: true);
        }
        catch (IOException)
        {
        }

        _log.WriteLine($"metering: warning: checkpoint corrupt ({error}); kept as {aside}, starting from zero (the operator's ledger still bills the pod's lifetime)");
        return new MeterTotals();
    }

    private void Export()
    {
        _gpuAllocated.IncTo(_totals.GpuAllocatedSeconds);
        _cpuAllocated.IncTo(_totals.CpuAllocatedSeconds);
        _memoryAllocated.IncTo(_totals.MemoryAllocatedByteSeconds);
        _cpuUsed.IncTo(_totals.CpuUsedSeconds);
        _memoryUsed.IncTo(_totals.MemoryUsedByteSeconds);
    }
}
