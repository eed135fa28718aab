using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Pilotlight.DevicePluginSim;
using Pilotlight.DevicePluginSim.V1Beta1;

namespace Pilotlight.Tests.DevicePluginSim;

/// <summary>The simulated device plugin's answers to the kubelet (the real kubelet drives it in the end-to-end suite).</summary>
public class SimulatedGpusTests
{
    private static SimulatedGpus Plugin(int count = 2) => new(count, "vm", CancellationToken.None, NullLogger.Instance);

    [Test]
    public async Task Allocate_names_the_devices_in_NVIDIA_VISIBLE_DEVICES_and_marks_them_simulated()
    {
        var request = new AllocateRequest();
        request.ContainerRequests.Add(new ContainerAllocateRequest { DevicesIds = { "GPU-sim-vm-1", "GPU-sim-vm-0" } });

        var response = await Plugin().Allocate(request, null!);

        var envs = response.ContainerResponses.Single().Envs;
        Assert.Multiple(() =>
        {
            Assert.That(envs["NVIDIA_VISIBLE_DEVICES"], Is.EqualTo("GPU-sim-vm-1,GPU-sim-vm-0"));
            Assert.That(envs["PILOTLIGHT_SIMULATED_GPUS"], Is.EqualTo("true"));
        });
    }

    [Test]
    public async Task Allocate_refuses_a_device_it_never_advertised()
    {
        var request = new AllocateRequest();
        request.ContainerRequests.Add(new ContainerAllocateRequest { DevicesIds = { "GPU-sim-vm-7" } });

        var refused = await Assert.ThrowsAsync<RpcException>(() => Plugin().Allocate(request, null!));

        Assert.That(refused!.StatusCode, Is.EqualTo(StatusCode.InvalidArgument));
        Assert.That(refused.Status.Detail, Does.Contain("GPU-sim-vm-7"));
    }

    [Test]
    public async Task The_preferred_allocation_keeps_what_must_be_included_then_takes_the_lowest_ids()
    {
        var request = new PreferredAllocationRequest();
        request.ContainerRequests.Add(new ContainerPreferredAllocationRequest
        {
            AvailableDeviceIDs = { "GPU-sim-vm-3", "GPU-sim-vm-1", "GPU-sim-vm-2" },
            MustIncludeDeviceIDs = { "GPU-sim-vm-3" },
            AllocationSize = 2,
        });

        var response = await Plugin(4).GetPreferredAllocation(request, null!);

        Assert.That(response.ContainerResponses.Single().DeviceIDs, Is.EqualTo(new[] { "GPU-sim-vm-3", "GPU-sim-vm-1" }));
    }

    [TestCase(new string[0], "--plugin-dir, --node and --kubeconfig are required")]
    [TestCase(new[] { "--plugin-dir", "/nonexistent", "--node", "vm", "--kubeconfig", "k" }, "no kubelet.sock in /nonexistent")]
    [TestCase(new[] { "--node" }, "expected --name value pairs")]
    [TestCase(new[] { "--gpus", "2" }, "unknown option --gpus")]
    public void Bad_command_lines_say_what_is_wrong(string[] args, string error)
    {
        Assert.That(SimOptions.Parse(args).Error, Does.Contain(error));
    }

    [Test]
    public void A_device_count_out_of_range_is_refused()
    {
        var dir = Directory.CreateTempSubdirectory("device-plugins-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "kubelet.sock"), "");
            string[] Args(string count) => ["--plugin-dir", dir, "--node", "vm", "--kubeconfig", "k", "--count", count];
            Assert.Multiple(() =>
            {
                Assert.That(SimOptions.Parse(Args("0")).Error, Does.Contain("--count must be a whole number from 1 to 64"));
                Assert.That(SimOptions.Parse(Args("65")).Error, Does.Contain("--count"));
                Assert.That(SimOptions.Parse(Args("8")), Has.Property("Error").Null.And.Property("Count").EqualTo(8));
            });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
