using Pilotlight.Nvml;

namespace Pilotlight.RuntimeShim;

/// <summary>
/// Answers <c>/ready</c>: not draining, the GPUs NVML must see are there (unless simulated), and the
/// upstream's health path answers 2xx. The upstream is probed on every call (2 s limit); NVML at most
/// every few seconds, since initialising it can be slow.
/// </summary>
internal sealed class ReadinessProbe(ShimOptions options, ShimRuntime runtime, Forwarder forwarder, TimeProvider time)
{
    private static readonly TimeSpan UpstreamProbeTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan NvmlCacheFor = TimeSpan.FromSeconds(5);

    /// <summary>The function container's probe runs every second; three missed runs and its report is stale.</summary>
    internal static readonly TimeSpan ReportMaxAge = TimeSpan.FromSeconds(3);
    private readonly Lock _nvmlLock = new();
    private NvmlProbe? _nvml;
    private long _nvmlAt;

    /// <summary>Whether the shim is ready and, if not, a short reason.</summary>
    public async Task<(bool Ready, string Reason)> CheckAsync(CancellationToken cancellationToken)
    {
        if (runtime.IsDraining)
        {
            return (false, "draining");
        }

        if (GpuProblem() is { } gpu)
        {
            return (false, gpu);
        }

        if (await UpstreamProblemAsync(cancellationToken).ConfigureAwait(false) is { } upstream)
        {
            return (false, upstream);
        }

        return (true, "ready");
    }

    private string? GpuProblem()
    {
        if (options.GpuCount == 0 || options.GpuSimulate)
        {
            return null;
        }

        if (options.GpuReportPath is { } path)
        {
            if (GpuReports.ReadFresh(path, time, ReportMaxAge) is not { } report)
            {
                return $"no fresh GPU report from the function container at {path}; {options.GpuCount} GPU(s) requested";
            }

            return report.Gpus.Count >= options.GpuCount ? null
                : $"the function container sees {report.Gpus.Count} GPU(s), {options.GpuCount} requested{(report.Error is null ? "" : $" ({report.Error})")}";
        }

        var probe = ProbeNvml();
        if (!probe.Available)
        {
            return $"NVML not available ({probe.Error}); {options.GpuCount} GPU(s) requested";
        }

        if (probe.DeviceCount < options.GpuCount)
        {
            var detail = probe.Error is null ? "" : $" ({probe.Error})";
            return $"NVML sees {probe.DeviceCount} GPU(s), {options.GpuCount} requested{detail}";
        }

        return null;
    }

    private NvmlProbe ProbeNvml()
    {
        lock (_nvmlLock)
        {
            var now = time.GetTimestamp();
            if (_nvml is null || time.GetElapsedTime(_nvmlAt, now) > NvmlCacheFor)
            {
                _nvml = NvmlLibrary.Probe();
                _nvmlAt = now;
            }

            return _nvml;
        }
    }

    /// <summary>Why the upstream's health path does not answer 2xx within 2 s; null when it does.</summary>
    internal async Task<string?> UpstreamProblemAsync(CancellationToken cancellationToken)
    {
        var what = $"upstream {options.HealthPath}";
        using var timeout = new CancellationTokenSource(UpstreamProbeTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, forwarder.UpstreamUri(options.HealthPath));
            using var response = await forwarder.Client
                .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token)
                .ConfigureAwait(false);
            var code = (int)response.StatusCode;
            return code is >= 200 and < 300 ? null : $"{what}: HTTP {code}";
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return $"{what}: no answer within {UpstreamProbeTimeout.TotalSeconds:0}s";
        }
        catch (HttpRequestException e)
        {
            return $"{what}: {Forwarder.Describe(e)}";
        }
    }
}
