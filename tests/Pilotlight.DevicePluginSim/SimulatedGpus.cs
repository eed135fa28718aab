using Grpc.Core;
using Microsoft.Extensions.Logging;
using Pilotlight.DevicePluginSim.V1Beta1;

namespace Pilotlight.DevicePluginSim;

/// <summary>
/// The plugin's side of the v1beta1 device-plugin API for <see cref="Count"/> simulated GPUs.
/// The kubelet lists them through <see cref="ListAndWatch"/>, counts them as the node's
/// allocatable resource, and calls <see cref="Allocate"/> before it starts a container that asks
/// for some; the answer puts the chosen IDs in NVIDIA_VISIBLE_DEVICES, as NVIDIA's plugin does.
/// </summary>
public sealed class SimulatedGpus(int count, string node, CancellationToken stopping, ILogger log) : DevicePlugin.DevicePluginBase
{
    /// <summary>Healthy, in the API's words.</summary>
    public const string Healthy = "Healthy";

    /// <summary>How many devices are advertised.</summary>
    public int Count { get; } = count;

    /// <summary>The device IDs, shaped like NVIDIA's GPU UUIDs and unique per node.</summary>
    public IReadOnlyList<string> Ids { get; } = Enumerable.Range(0, count).Select(i => $"GPU-sim-{node}-{i}").ToList();

    /// <inheritdoc />
    public override Task<DevicePluginOptions> GetDevicePluginOptions(Empty request, ServerCallContext context) =>
        Task.FromResult(new DevicePluginOptions { PreStartRequired = false, GetPreferredAllocationAvailable = true });

    /// <summary>Sends the device list once and then holds the stream open: the devices never change health.</summary>
    public override async Task ListAndWatch(Empty request, IServerStreamWriter<ListAndWatchResponse> responseStream, ServerCallContext context)
    {
        var response = new ListAndWatchResponse();
        response.Devices.AddRange(Ids.Select(id => new Device { ID = id, Health = Healthy }));
        await responseStream.WriteAsync(response);
        log.LogInformation("advertised {Count} devices to the kubelet", Ids.Count);
        try
        {
            using var closed = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, stopping);
            await Task.Delay(Timeout.Infinite, closed.Token);
        }
        catch (OperationCanceledException)
        {
            // The kubelet closed the stream (it restarts), or this server stops to register anew.
        }
    }

    /// <summary>The devices the kubelet must include, then the lowest-numbered others, up to the size asked for.</summary>
    public override Task<PreferredAllocationResponse> GetPreferredAllocation(PreferredAllocationRequest request, ServerCallContext context)
    {
        var response = new PreferredAllocationResponse();
        foreach (var container in request.ContainerRequests)
        {
            var chosen = container.MustIncludeDeviceIDs
                .Concat(container.AvailableDeviceIDs.Where(id => !container.MustIncludeDeviceIDs.Contains(id)).OrderBy(id => id, StringComparer.Ordinal))
                .Take(container.AllocationSize);
            var answer = new ContainerPreferredAllocationResponse();
            answer.DeviceIDs.AddRange(chosen);
            response.ContainerResponses.Add(answer);
        }

        return Task.FromResult(response);
    }

    /// <summary>One answer per container: its device IDs in NVIDIA_VISIBLE_DEVICES. Unknown IDs are refused.</summary>
    public override Task<AllocateResponse> Allocate(AllocateRequest request, ServerCallContext context)
    {
        var response = new AllocateResponse();
        foreach (var container in request.ContainerRequests)
        {
            var unknown = container.DevicesIds.Where(id => !Ids.Contains(id)).ToList();
            if (unknown.Count > 0)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"unknown devices: {string.Join(", ", unknown)}"));
            }

            var answer = new ContainerAllocateResponse();
            answer.Envs["NVIDIA_VISIBLE_DEVICES"] = string.Join(',', container.DevicesIds);
            // NVML cannot see these devices; Pilotlight's GPU probe then counts them as present (and idle).
            answer.Envs["PILOTLIGHT_SIMULATED_GPUS"] = "true";
            response.ContainerResponses.Add(answer);
            log.LogInformation("allocated {Devices}", string.Join(',', container.DevicesIds));
        }

        return Task.FromResult(response);
    }

    /// <inheritdoc />
    public override Task<PreStartContainerResponse> PreStartContainer(PreStartContainerRequest request, ServerCallContext context) =>
        Task.FromResult(new PreStartContainerResponse());
}
