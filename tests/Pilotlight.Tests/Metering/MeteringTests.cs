using System.Collections;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Metering;
using Pilotlight.Nvml;
using Prometheus;

namespace Pilotlight.Tests.Metering;

public class MeteringTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("pilotlight-meter-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private MeterOptions Options(int gpus = 1, string? cgroup = null, string? report = null) => new("team-a", "llm", "H100",
        new Allocation(gpus, 2, 1024d * 1024 * 1024), Path.Combine(_dir, "meter.json"), 0, cgroup ?? Path.Combine(_dir, "no-cgroup"), null, report);

    private static MeteringService Service(MeterOptions options, TimeProvider time, CollectorRegistry? registry = null, StringWriter? log = null) =>
        new(options, registry ?? Metrics.NewCustomRegistry(), time, log ?? new StringWriter(), useNvml: true);

    /// <summary>Meters a pod that lives <paramref name="lifetime"/>, sampling once a second and once at the end, as the sidecar does.</summary>
    private static MeterTotals Live(MeteringService service, FakeTimeProvider time, TimeSpan lifetime)
    {
        var end = time.GetUtcNow() + lifetime;
        service.Sample();
        while (time.GetUtcNow() + TimeSpan.FromSeconds(1) <= end)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            service.Sample();
        }

        time.Advance(end - time.GetUtcNow());
        service.Sample();
        return service.Totals;
    }

    [TestCase(7.0, 1)]
    [TestCase(61.0, 2)]
    [TestCase(300.0, 8)]
    [TestCase(12.7, 4)]
    public void Gpu_seconds_of_known_lifetimes_are_exact_to_the_second(double seconds, int gpus)
    {
        var time = new FakeTimeProvider(Start);
        using var service = Service(Options(gpus), time);

        var totals = Live(service, time, TimeSpan.FromSeconds(seconds));

        Assert.That(totals.GpuAllocatedSeconds, Is.EqualTo(gpus * seconds).Within(gpus * 1.0));
        Assert.That(totals.Seconds, Is.EqualTo(seconds).Within(1.0));
        Assert.That(totals.CpuAllocatedSeconds, Is.EqualTo(2 * seconds).Within(2.0));
    }

    [Test]
    public void Counters_are_exported_with_bounded_labels_and_gpu_use_is_absent_without_nvml()
    {
        var time = new FakeTimeProvider(Start);
        var registry = Metrics.NewCustomRegistry();
        var log = new StringWriter();
        using var service = Service(Options(2), time, registry, log);
        Live(service, time, TimeSpan.FromSeconds(10));

        var text = Export(registry);
        Assert.That(text, Does.Contain("pilotlight_gpu_allocated_seconds_total{namespace=\"team-a\",function=\"llm\",gpu_type=\"H100\"} 20"));
        Assert.That(text, Does.Contain("pilotlight_meter_nvml_available 0"));
        Assert.That(text, Does.Not.Contain("pilotlight_gpu_utilization_ratio{"), "absent, not zero");
        Assert.That(log.ToString(), Does.Contain("GPU use not metered"));
    }

    [Test]
    public void A_restarted_sidecar_resumes_from_its_checkpoint_and_bills_the_gap()
    {
        var time = new FakeTimeProvider(Start);
        using (var first = Service(Options(), time))
        {
            Live(first, time, TimeSpan.FromSeconds(10));
        }

        // kill -9: nothing flushed; 3 s pass before the container restarts. The
        // GPU stayed allocated, so the gap is billed from the last checkpoint.
        time.Advance(TimeSpan.FromSeconds(3));
        var log = new StringWriter();
        using var second = Service(Options(), time, log: log);
        second.Sample();

        Assert.That(log.ToString(), Does.Contain("resumed from checkpoint"));
        Assert.That(second.Totals.GpuAllocatedSeconds, Is.EqualTo(13).Within(1e-6));
    }

    [TestCase("{not json", "unreadable")]
    [TestCase("{\"version\":1,\"totals\":\"{\\\"gpuAllocatedSeconds\\\":99}\",\"sha256\":\"00\"}", "checksum mismatch")]
    [TestCase("{\"version\":7}", "not a version 1 checkpoint")]
    public void A_corrupted_checkpoint_is_detected_reported_and_set_aside(string content, string reason)
    {
        var options = Options();
        File.WriteAllText(options.CheckpointPath, content);
        var registry = Metrics.NewCustomRegistry();
        var log = new StringWriter();

        using var service = Service(options, new FakeTimeProvider(Start), registry, log);

        Assert.That(service.Totals.GpuAllocatedSeconds, Is.Zero);
        Assert.That(log.ToString(), Does.Contain(reason));
        Assert.That(File.Exists(options.CheckpointPath + ".corrupt"), Is.True);
        Assert.That(Export(registry), Does.Contain("pilotlight_meter_checkpoint_errors_total 1"));
    }

    [Test]
    public void A_checkpoint_round_trips_and_a_flipped_digit_is_caught()
    {
        var totals = new MeterTotals { GpuAllocatedSeconds = 123.5, Seconds = 61.75, LastSampleAt = Start };
        var text = Checkpoint.Serialize(totals);
        Assert.That(Checkpoint.Parse(text, out _), Is.EqualTo(totals));
        Assert.That(Checkpoint.Parse(text.Replace("123.5", "923.5", StringComparison.Ordinal), out var error), Is.Null);
        Assert.That(error, Is.EqualTo("checksum mismatch"));
    }

    [Test]
    public void A_clock_that_goes_backwards_adds_nothing()
    {
        var totals = Meter.Advance(new MeterTotals { LastSampleAt = Start }, Start.AddSeconds(-5), new Allocation(8, 1, 1), null);
        Assert.That(totals.GpuAllocatedSeconds, Is.Zero);
        Assert.That(totals.LastSampleAt, Is.EqualTo(Start));
    }

    [Test]
    public void Cgroup_use_is_read_as_deltas()
    {
        var cgroup = Directory.CreateDirectory(Path.Combine(_dir, "cgroup")).FullName;
        File.WriteAllText(Path.Combine(cgroup, "cpu.stat"), "usage_usec 1000000\nuser_usec 900000\n");
        File.WriteAllText(Path.Combine(cgroup, "memory.current"), "104857600\n");
        var time = new FakeTimeProvider(Start);
        using var service = Service(Options(cgroup: cgroup), time);
        service.Sample();

        File.WriteAllText(Path.Combine(cgroup, "cpu.stat"), "usage_usec 3500000\n");
        time.Advance(TimeSpan.FromSeconds(2));
        service.Sample();

        Assert.That(service.Totals.CpuUsedSeconds, Is.EqualTo(2.5).Within(1e-9));
        Assert.That(service.Totals.MemoryUsedByteSeconds, Is.EqualTo(2 * 104857600d).Within(1));
    }

    [Test]
    public void The_process_table_sums_the_pods_processes()
    {
        var proc = Directory.CreateDirectory(Path.Combine(_dir, "proc")).FullName;
        void Stat(int pid, string comm, long utime, long stime, long rssPages) =>
            File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(proc, pid.ToString(System.Globalization.CultureInfo.InvariantCulture))).FullName, "stat"),
                $"{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0 100 1000000 {rssPages} 0");
        Stat(1, "python server.py", 100, 50, 1000);
        Stat(7, "runtime shim", 10, 10, 200);
        Directory.CreateDirectory(Path.Combine(proc, "self"));
        var table = new ProcessTable(proc);

        var first = table.Read()!;
        Stat(1, "python server.py", 250, 100, 1000);
        Stat(9, "worker", 30, 0, 100);
        var second = table.Read()!;

        Assert.That(first.CpuSeconds, Is.Zero, "the first read is the baseline");
        Assert.That(first.MemoryBytes, Is.EqualTo(1200 * Environment.SystemPageSize));
        Assert.That(second.CpuSeconds, Is.EqualTo(2.0 + 0.3).Within(1e-9), "pid 1 used 2 s, new pid 9 0.3 s");
        Assert.That(second.MemoryBytes, Is.EqualTo(1300 * Environment.SystemPageSize));
    }

    [TestCase("PILOTLIGHT_FUNCTION", "", "PILOTLIGHT_FUNCTION is required")]
    [TestCase("PILOTLIGHT_GPU_COUNT", "two", "PILOTLIGHT_GPU_COUNT=two")]
    [TestCase("PILOTLIGHT_CPU_REQUEST", "lots", "PILOTLIGHT_CPU_REQUEST=lots")]
    [TestCase("PILOTLIGHT_MEMORY_REQUEST", "2 gigs", "PILOTLIGHT_MEMORY_REQUEST=2 gigs")]
    [TestCase("PILOTLIGHT_METRICS_PORT", "99999", "PILOTLIGHT_METRICS_PORT=99999")]
    public void Invalid_settings_name_the_variable(string name, string value, string expected)
    {
        var env = new Hashtable { ["PILOTLIGHT_NAMESPACE"] = "ns", ["PILOTLIGHT_FUNCTION"] = "fn", [name] = value };
        Assert.That(MeterOptions.FromEnvironment(env, out var error), Is.Null);
        Assert.That(error, Does.Contain(expected));
    }

    [Test]
    public void Settings_read_kubernetes_quantities()
    {
        var env = new Hashtable
        {
            ["PILOTLIGHT_NAMESPACE"] = "ns", ["PILOTLIGHT_FUNCTION"] = "fn", ["PILOTLIGHT_GPU_COUNT"] = "2",
            ["PILOTLIGHT_CPU_REQUEST"] = "500m", ["PILOTLIGHT_MEMORY_REQUEST"] = "2Gi",
            ["NVIDIA_VISIBLE_DEVICES"] = "GPU-aaa,GPU-bbb",
        };
        var options = MeterOptions.FromEnvironment(env, out _)!;
        Assert.That(options.Allocation, Is.EqualTo(new Allocation(2, 0.5, 2d * 1024 * 1024 * 1024)));
        Assert.That(options.VisibleGpus, Is.EquivalentTo(new[] { "GPU-aaa", "GPU-bbb" }));
    }

    [Test]
    public void Gpu_use_comes_from_the_function_containers_probe_while_its_report_is_fresh()
    {
        var time = new FakeTimeProvider(Start);
        var registry = Metrics.NewCustomRegistry();
        var report = Path.Combine(_dir, "gpus.json");
        using var service = new MeteringService(Options(2, report: report), registry, time, new StringWriter(), useNvml: false);
        GpuReports.Write(report, new GpuReport
        {
            At = time.GetUtcNow(),
            Available = true,
            Gpus =
            [
                new GpuReading { Uuid = "GPU-a", Utilization = 0.5, MemoryUsedBytes = 1000, MemoryTotalBytes = 8000 },
                new GpuReading { Uuid = "GPU-b", Utilization = 1.0, MemoryUsedBytes = 3000, MemoryTotalBytes = 8000 },
            ],
        });

        time.Advance(TimeSpan.FromSeconds(1));
        service.Sample();
        var fresh = Export(registry);
        Assert.That(fresh, Does.Contain("pilotlight_gpu_utilization_ratio{namespace=\"team-a\",function=\"llm\",gpu_type=\"H100\"} 0.75"));
        Assert.That(fresh, Does.Contain("pilotlight_gpu_memory_used_bytes{namespace=\"team-a\",function=\"llm\",gpu_type=\"H100\"} 4000"));
        Assert.That(fresh, Does.Contain("pilotlight_meter_nvml_available 1"));

        // The probe stops (the function container hung or was restarted): use goes absent, allocation goes on.
        time.Advance(TimeSpan.FromSeconds(10));
        service.Sample();
        var stale = Export(registry);
        Assert.That(stale, Does.Not.Contain("pilotlight_gpu_utilization_ratio{"));
        Assert.That(stale, Does.Not.Contain("pilotlight_gpu_memory_used_bytes{"));
        Assert.That(stale, Does.Contain("pilotlight_meter_nvml_available 0"));
        Assert.That(service.Totals.GpuAllocatedSeconds, Is.EqualTo(20).Within(1e-9), "10 s of 2 GPUs since the first sample");
    }

    [Test]
    public void A_corrupt_or_missing_report_is_no_report()
    {
        var time = new FakeTimeProvider(Start);
        var path = Path.Combine(_dir, "gpus.json");
        Assert.That(GpuReports.ReadFresh(path, time, TimeSpan.FromSeconds(3)), Is.Null, "missing");
        File.WriteAllText(path, "{\"at\": \"not a time\"");
        Assert.That(GpuReports.ReadFresh(path, time, TimeSpan.FromSeconds(3)), Is.Null, "corrupt");
        GpuReports.Write(path, new GpuReport { At = time.GetUtcNow(), Available = true });
        Assert.That(GpuReports.ReadFresh(path, time, TimeSpan.FromSeconds(3)), Is.Not.Null, "fresh");
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.That(GpuReports.ReadFresh(path, time, TimeSpan.FromSeconds(3)), Is.Null, "stale");
    }

    [Test]
    public void The_gpu_probe_fails_readiness_while_fewer_gpus_are_visible_and_says_why()
    {
        if (Pilotlight.Nvml.NvmlLibrary.Probe() is { Available: true })
        {
            Assert.Ignore("this machine has an NVIDIA driver; the test wants one without");
        }

        var time = new FakeTimeProvider(Start);
        var report = Path.Combine(_dir, "gpus.json");
        var (stdout, stderr) = (new StringWriter(), new StringWriter());

        Assert.That(GpuProbe.Run(["--expect", "0", "--write", report], null, stdout, stderr, time), Is.EqualTo(0));
        Assert.That(GpuReports.ReadFresh(report, time, TimeSpan.FromSeconds(1)), Has.Property("Available").False, "an unavailable NVML is reported, not left unsaid");
        Assert.That(stdout.ToString(), Does.Contain("\"available\":false").And.Contain("libnvidia-ml.so.1"));

        Assert.That(GpuProbe.Run(["--expect", "1"], null, stdout, stderr, time), Is.EqualTo(1));
        Assert.That(stderr.ToString(), Does.Contain("0 of 1 GPUs visible"));

        Assert.That(GpuProbe.Run(["--expect", "-1"], null, stdout, stderr, time), Is.EqualTo(2));
        Assert.That(GpuProbe.Run(["--bogus"], null, stdout, stderr, time), Is.EqualTo(2));
        Assert.That(GpuProbe.Run(["--write", Path.Combine(_dir, "missing-dir", "gpus.json")], null, stdout, stderr, time), Is.EqualTo(1));
        Assert.That(stderr.ToString(), Does.Contain("could not write"));
    }

    [Test]
    public void Simulated_gpus_count_as_present_only_where_nvml_is_absent_and_only_those_the_device_plugin_gave()
    {
        if (Pilotlight.Nvml.NvmlLibrary.Probe() is { Available: true })
        {
            Assert.Ignore("this machine has an NVIDIA driver; the test wants one without");
        }

        var time = new FakeTimeProvider(Start);
        var report = Path.Combine(_dir, "simulated.json");
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        const string devices = "GPU-sim-vm-1,GPU-sim-vm-0";

        Assert.That(GpuProbe.Run(["--expect", "2", "--write", report], devices, stdout, stderr, time, simulated: true), Is.EqualTo(0), stderr.ToString());
        var seen = GpuReports.ReadFresh(report, time, TimeSpan.FromSeconds(1));
        Assert.Multiple(() =>
        {
            Assert.That(seen?.Available, Is.True);
            Assert.That(seen?.Gpus.Select(g => g.Uuid), Is.EqualTo(new[] { "GPU-sim-vm-0", "GPU-sim-vm-1" }));
            Assert.That(seen?.Gpus.Select(g => g.Utilization), Is.All.EqualTo(0.0));
        });

        // More than the plugin gave, or no devices named, or not marked simulated: not ready.
        Assert.That(GpuProbe.Run(["--expect", "3"], devices, stdout, stderr, time, simulated: true), Is.EqualTo(1));
        Assert.That(GpuProbe.Run(["--expect", "1"], null, stdout, stderr, time, simulated: true), Is.EqualTo(1));
        Assert.That(GpuProbe.Run(["--expect", "1"], devices, stdout, stderr, time, simulated: false), Is.EqualTo(1));
    }

    [Test]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Install_copies_the_probe_as_an_executable_and_may_run_again()
    {
        var source = Path.Combine(_dir, "meter");
        File.WriteAllText(source, "binary");
        var destination = Path.Combine(_dir, "shared", "bin", "pilotlight-meter");

        Assert.That(GpuProbe.Install([destination], source, TextWriter.Null), Is.EqualTo(0));
        Assert.That(GpuProbe.Install([destination], source, TextWriter.Null), Is.EqualTo(0), "a restarted pod runs its init container again");
        Assert.That(File.ReadAllText(destination), Is.EqualTo("binary"));
        Assert.That(File.GetUnixFileMode(destination) & UnixFileMode.OtherExecute, Is.EqualTo(UnixFileMode.OtherExecute));
        Assert.That(GpuProbe.Install([], source, TextWriter.Null), Is.EqualTo(2));
    }

    private static string Export(CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
