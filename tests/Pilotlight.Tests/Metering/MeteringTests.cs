using System.Collections;
using Microsoft.Extensions.Time.Testing;
using Pilotlight.Metering;
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

    private MeterOptions Options(int gpus = 1, string? cgroup = null) => new("team-a", "llm", "H100",
        new Allocation(gpus, 2, 1024d * 1024 * 1024), Path.Combine(_dir, "meter.json"), 0, cgroup ?? Path.Combine(_dir, "no-cgroup"), null);

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

    private static string Export(CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
