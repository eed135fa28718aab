using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Group = Pilotlight.Api.V1Alpha1.Group;
using Regex = System.Text.RegularExpressions.Regex;
using GeneratedRegexAttribute = System.Text.RegularExpressions.GeneratedRegexAttribute;
using k8s;
using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Testing;

// NUnit 5 marks [Order] obsolete; it is still how a fixture says that the upgrade and the uninstall,
// which change the installation every other test uses, come last.
#pragma warning disable CS0618

namespace Pilotlight.E2E;

/// <summary>What only a cluster with a container runtime shows: devices, cgroups, container hardening, upgrades, uninstall.</summary>
public partial class EndToEndTests
{
    private RealNodeCluster RealNode => Cluster as RealNodeCluster ?? throw new IgnoreException("needs the real node or a kubeconfig cluster (helm and kubectl on this machine)");

    [Test, Order(1)]
    public async Task A_GPU_function_gets_devices_the_kubelet_allocated_from_the_device_plugin_and_is_billed_for_them()
    {
        if (Cluster.Gpus == 0)
        {
            Assert.Ignore("no device plugin advertises nvidia.com/gpu on this cluster");
        }

        var ns = await Cluster.CreateNamespaceAsync("gpu");
        await Cluster.ApplyAsync(ns, $$"""
            apiVersion: pilotlight.dev/v1alpha1
            kind: GpuFunction
            metadata:
              name: infer
            spec:
              image: {{Cluster.ModelServerImage}}
              access: Public
              port: 8080
              healthPath: /healthz
              env:
                - name: LOAD_SECONDS
                  value: "1"
              gpu:
                type: {{Cluster.GpuType}}
                count: 1
              scaling:
                minReplicas: 0
                maxReplicas: 1
                scaledownWindow: 20s
              timeout: 30s
              startupTimeout: 5m
            """);
        await UntilScaledToZeroAsync(ns, "infer", "the GPU function to report ScaledToZero");

        using (var cold = await InvokeAsync(ns, "infer", "on a GPU"))
        {
            Assert.That(cold.StatusCode, Is.EqualTo(HttpStatusCode.OK), await cold.Content.ReadAsStringAsync());
        }

        var pod = (await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: "pilotlight.dev/function=infer")).Items.Single();
        var function = pod.Spec.Containers.Single(c => c.Resources?.Limits?.ContainsKey("nvidia.com/gpu") == true);
        Assert.That(function.Resources.Limits["nvidia.com/gpu"].ToString(), Is.EqualTo("1"), "the function container asks the kubelet for one GPU");

        if (RealNode.DockerHost is not null)
        {
            // The kubelet called the plugin's Allocate and gave the container what it answered.
            var id = (await RealNode.DockerAsync("ps", "-q", "--filter", $"label=io.kubernetes.pod.uid={pod.Metadata.Uid}",
                "--filter", $"label=io.kubernetes.container.name={function.Name}")).Trim();
            var env = await RealNode.DockerAsync("inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", id);
            Assert.That(env, Does.Match(@"(?m)^NVIDIA_VISIBLE_DEVICES=GPU-sim-[^,\s]+$"), "one simulated device, named by the plugin");
        }

        // The second GPU is free, so a request the function cannot hold alone does not change that; the pod's GPU is counted.
        var node = await Cluster.Client.CoreV1.ReadNodeAsync(RealNode.Node);
        Assert.That(node.Status.Allocatable["nvidia.com/gpu"].ToString(), Is.EqualTo(Cluster.Gpus.ToString(CultureInfo.InvariantCulture)));

        // Billing: GPU-seconds for the pod's lifetime, readable by someone who may get the function.
        await Cluster.ApplyAsync(ns, """
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: billing
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata:
              name: read-functions
            rules:
              - apiGroups: [pilotlight.dev]
                resources: [gpufunctions]
                verbs: [get]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata:
              name: billing-reads
            roleRef:
              apiGroup: rbac.authorization.k8s.io
              kind: Role
              name: read-functions
            subjects:
              - kind: ServiceAccount
                name: billing
            """);
        var token = await TokenAsync(ns, "billing");
        var operatorService = await Cluster.Client.CoreV1.ReadNamespacedServiceAsync($"{E2ECluster.Release}-operator", E2ECluster.ReleaseNamespace);
        var usageUrl = $"http://{operatorService.Spec.ClusterIP}:{operatorService.Spec.Ports[0].Port}/usage?namespace={ns}&function=infer";
        double gpuSeconds = 0;
        await E2ECluster.UntilAsync("GPU-seconds to be billed for the woken pod", TimeSpan.FromMinutes(2), async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, usageUrl);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await _http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return (false, $"{(int)response.StatusCode} {text}");
            }

            gpuSeconds = JsonDocument.Parse(text).RootElement.GetProperty("gpuSeconds").GetDouble();
            return (gpuSeconds >= 5, $"gpuSeconds {gpuSeconds}");
        });
        TestContext.Progress.WriteLine($"billed {gpuSeconds:F0} GPU-seconds so far for {ns}/infer");
        await Cluster.DeleteNamespaceAsync(ns);
    }

    [Test, Order(2)]
    public async Task A_sandbox_keeps_files_between_execs_refuses_what_its_hardening_forbids_and_ends_at_its_timeout()
    {
        var ns = await Cluster.CreateNamespaceAsync("hard");
        await Cluster.ApplyAsync(ns, $$"""
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: agent
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata:
              name: agent-sandbox-user
            roleRef:
              apiGroup: rbac.authorization.k8s.io
              kind: ClusterRole
              name: {{E2ECluster.Release}}-sandbox-user
            subjects:
              - kind: ServiceAccount
                name: agent
                namespace: {{ns}}
            ---
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: untrusted
            spec:
              image: {{Cluster.ShellImage}}
              # Every node may be a GPU node, tainted so; the platform allows this toleration (sandbox.scheduling).
              tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
              resources:
                cpu: 250m
                memory: 256Mi
              timeout: 90s
            """);
        await E2ECluster.UntilAsync("the sandbox to be Ready", Startup, async () =>
        {
            var sandbox = await Cluster.Client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", "untrusted");
            var ready = sandbox.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready");
            return (ready?.Status == "True", $"Ready={ready?.Status} {ready?.Reason}: {ready?.Message}");
        });
        var token = await TokenAsync(ns, "agent");

        async Task<ExecTranscript> Run(string script)
        {
            using var response = await ExecAsync(ns, "untrusted", token, new { argv = new[] { "sh", "-c", script } });
            var text = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
            return ExecTranscript.Parse(text);
        }

        var write = await Run("cd /workspace 2>/dev/null || cd /tmp; echo 'print(6*7)' > main.py && pwd");
        var workdir = write.Stdout.Trim();
        var read = await Run($"cat {workdir}/main.py");
        var rootfs = await Run("echo x > /usr/bin/evil; echo exit=$?");
        var capability = await Run("grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; id -u; chown 0 /tmp 2>&1; echo chown=$?");
        var account = await Run("ls /var/run/secrets/kubernetes.io/serviceaccount 2>&1; echo ls=$?");
        var privilege = await Run("grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status");
        TestContext.Progress.WriteLine($"sandbox: {rootfs.Stdout.Trim()} | {capability.Stdout.Replace('\n', ' ')} | {account.Stdout.Replace('\n', ' ')} | {privilege.Stdout.Replace('\n', ' ')}");
        Assert.Multiple(() =>
        {
            Assert.That(write.Exit, Is.Zero, write.Stderr);
            Assert.That(read.Stdout, Is.EqualTo("print(6*7)\n"), "a file written by one exec is there for the next");
            Assert.That(rootfs.Stdout, Does.Not.Contain("exit=0"), "the root filesystem is read-only");
            Assert.That(rootfs.Stderr, Does.Contain("Read-only file system"), "refused by the mount, before any permission check");
            Assert.That(capability.Stdout, Does.Match(@"CapEff:\s+0000000000000000"), "no effective capability");
            Assert.That(capability.Stdout, Does.Match(@"CapBnd:\s+0000000000000000"), "none can be gained: the bounding set is empty");
            Assert.That(capability.Stdout, Does.Match(@"(?m)^[1-9]\d*$"), "not root");
            Assert.That(capability.Stdout, Does.Contain("chown=1"), "changing a file's owner needs CAP_CHOWN");
            Assert.That(account.Stdout, Does.Contain("ls=2").Or.Contain("ls=1"), "no service-account token is mounted");
            Assert.That(privilege.Stdout, Does.Match(@"NoNewPrivs:\s+1"), "setuid programs cannot raise privileges");
            Assert.That(privilege.Stdout, Does.Match(@"Seccomp:\s+2"), "a seccomp filter is in force");
        });

        // timeout 90s after it started: the sandbox finishes as Expired and its pod goes.
        await E2ECluster.UntilAsync("the sandbox to end at its timeout", TimeSpan.FromMinutes(3), async () =>
        {
            var sandbox = await Cluster.Client.CustomObjects.GetNamespacedCustomObjectAsync<Sandbox>(Group.Name, Group.Version, ns, "sandboxes", "untrusted");
            var finished = sandbox.Status?.Conditions?.FirstOrDefault(c => c.Type == "Finished");
            return (finished is { Status: "True", Reason: "Expired" }, $"Finished={finished?.Status} {finished?.Reason}");
        });
        await E2ECluster.UntilAsync("the expired sandbox's pod to be gone", TimeSpan.FromMinutes(2), async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns);
            return (pods.Items.Count == 0, string.Join(", ", pods.Items.Select(p => $"{p.Metadata.Name} {p.Status?.Phase}")));
        });
        using var late = await ExecAsync(ns, "untrusted", token, new { argv = new[] { "true" } });
        Assert.That((int)late.StatusCode, Is.AnyOf(404, 409, 410, 503), "an ended sandbox runs nothing");
        await Cluster.DeleteNamespaceAsync(ns);
    }

    [Test, Order(3)]
    public async Task The_meters_cpu_seconds_agree_with_the_pods_cgroup_within_five_percent()
    {
        if (RealNode.DockerHost is null)
        {
            Assert.Ignore("reads the pod's cgroup on the node: the local real node only");
        }

        var ns = await Cluster.CreateNamespaceAsync("meter");
        await Cluster.ApplyAsync(ns, OneReplicaFunction("busy", """
            resources:
              cpu: 500m
              memory: 256Mi
            timeout: 60s
            """));
        V1Pod pod = null!;
        await E2ECluster.UntilAsync("the busy function's pod to be Ready", Startup, async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: "pilotlight.dev/function=busy");
            pod = pods.Items.FirstOrDefault()!;
            var ready = pod?.Status?.Conditions?.FirstOrDefault(c => c.Type == "Ready")?.Status;
            return (ready == "True", $"{pod?.Metadata.Name} Ready={ready}");
        });

        var cgroup = Directory.EnumerateDirectories("/sys/fs/cgroup/cpuacct/kubepods", $"pod{pod.Metadata.Uid}", SearchOption.AllDirectories).Single();
        var meterUrl = $"http://{pod.Status.PodIP}:9102/metrics";
        async Task<(double Meter, double Kernel)> Sample()
        {
            using var response = await _http.GetAsync(meterUrl);
            var metrics = await response.Content.ReadAsStringAsync();
            var meter = MeterCpu().Matches(metrics).Sum(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            var kernel = long.Parse(await File.ReadAllTextAsync(Path.Combine(cgroup, "cpuacct.usage")), CultureInfo.InvariantCulture) / 1e9;
            return (meter, kernel);
        }

        // The meter samples once a second: start and end on a quiet pod, with a sample in between.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var before = await Sample();
        foreach (var _ in Enumerable.Range(0, 4))
        {
            using var busy = await _http.PostAsync($"/{ns}/busy/predict?ms=3000&spin=1", new StringContent("spin"));
            Assert.That(busy.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        await Task.Delay(TimeSpan.FromSeconds(3));
        var after = await Sample();
        var (meterDelta, kernelDelta) = (after.Meter - before.Meter, after.Kernel - before.Kernel);
        TestContext.Progress.WriteLine($"CPU over 4 x 3 s of spinning: meter {meterDelta:F2} s, cgroup cpuacct.usage {kernelDelta:F2} s ({(meterDelta / kernelDelta - 1) * 100:+0.0;-0.0} %)");
        Assert.That(kernelDelta, Is.GreaterThan(3), "the pod really was busy (4 x 3 s of spinning)");
        Assert.That(meterDelta, Is.EqualTo(kernelDelta).Within(5).Percent, "the meter's CPU-seconds match the kernel's accounting for the pod");
        await Cluster.DeleteNamespaceAsync(ns);
    }

    [Test, Order(90)]
    public async Task Helm_upgrade_to_new_image_tags_keeps_a_function_serving()
    {
        if (RealNode.DockerHost is null)
        {
            Assert.Ignore("retags images in the real node's registry");
        }

        // New tags of the same builds, pushed as a release would be.
        const string next = "e2e-next";
        foreach (var image in new[] { "operator", "gateway", "runtime-shim", "meter" })
        {
            var from = $"{RealNodeCluster.LocalRegistry}/pilotlight/{image}:{RealNodeCluster.Tag}";
            var to = $"{RealNodeCluster.LocalRegistry}/pilotlight/{image}:{next}";
            await RealNode.DockerAsync("pull", "-q", from);
            await RealNode.DockerAsync("tag", from, to);
            await RealNode.DockerAsync("push", "-q", to);
        }

        var ns = await Cluster.CreateNamespaceAsync("upg");
        await Cluster.ApplyAsync(ns, OneReplicaFunction("steady", "timeout: 30s"));
        await E2ECluster.UntilAsync("the function to serve", Startup, async () =>
        {
            using var r = await InvokeAsync(ns, "steady", "x");
            return (r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}");
        });

        // Requests all through the upgrade; none may fail.
        using var stop = new CancellationTokenSource();
        var failures = new List<string>();
        var served = 0;
        var traffic = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var r = await InvokeAsync(ns, "steady", "during");
                    if (r.StatusCode == HttpStatusCode.OK)
                    {
                        served++;
                    }
                    else
                    {
                        failures.Add($"{(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
                    }
                }
                catch (HttpRequestException e)
                {
                    failures.Add(e.Message);
                }

                await Task.Delay(200);
            }
        });

        await RealNode.HelmAsync("upgrade", E2ECluster.Release, Path.Combine(E2ECluster.RepositoryRoot, "charts", "pilotlight"),
            "--namespace", E2ECluster.ReleaseNamespace, "--values", RealNode.ValuesFile(next), "--wait", "--timeout", "8m", "--server-side=false");
        await E2ECluster.UntilAsync("every operator and gateway pod to run the new tag", TimeSpan.FromMinutes(5), async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(E2ECluster.ReleaseNamespace);
            var old = pods.Items.Where(p => p.Spec.Containers.Any(c => !c.Image.EndsWith(":" + next, StringComparison.Ordinal))).Select(p => p.Metadata.Name).ToList();
            return (old.Count == 0, $"still old: {string.Join(", ", old)}");
        });
        // The serving pod is not rolled for new sidecar images (it may hold requests of minutes); it stays, serving.
        var serving = (await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: "pilotlight.dev/function=steady")).Items
            .Where(p => p.Metadata.DeletionTimestamp is null).ToList();
        Assert.That(serving.Select(p => p.Spec.Containers.Single(c => c.Name == "runtime-shim").Image),
            Is.EqualTo(new[] { $"{RealNodeCluster.LocalRegistry}/pilotlight/runtime-shim:{RealNodeCluster.Tag}" }), "the serving pod keeps its sidecars through the upgrade");

        // Asked to (as `kubectl rollout restart` asks a Deployment), the new operator rolls it onto the new shim and meter.
        await Cluster.KubectlAsync("annotate", "-n", ns, "gpufunction", "steady", "pilotlight.dev/restartedAt=2026-12-03T00:00:00Z");
        await E2ECluster.UntilAsync("the function's pod to run the new sidecars", TimeSpan.FromMinutes(5), async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: "pilotlight.dev/function=steady");
            var ready = pods.Items.Where(p => p.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true
                && p.Metadata.DeletionTimestamp is null
                && p.Spec.Containers.Any(c => c.Image.EndsWith("runtime-shim:" + next, StringComparison.Ordinal))
                && p.Spec.Containers.Any(c => c.Image.EndsWith("meter:" + next, StringComparison.Ordinal))).ToList();
            return (ready.Count == 1 && pods.Items.All(p => p.Metadata.Uid != serving[0].Metadata.Uid),
                string.Join(", ", pods.Items.Select(p => $"{p.Metadata.Name} {string.Join(' ', p.Spec.Containers.Select(c => c.Image))}")));
        });
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        await traffic;
        TestContext.Progress.WriteLine($"helm upgrade under traffic: {served} requests served, {failures.Count} failed");
        Assert.Multiple(() =>
        {
            Assert.That(served, Is.GreaterThan(10), "traffic ran through the upgrade");
            Assert.That(failures, Is.Empty, "no request failed while operator and gateway were replaced and the function's pod was rolled");
        });
        await Cluster.DeleteNamespaceAsync(ns);
    }

    [Test, Order(99)]
    public async Task The_readmes_uninstall_steps_leave_nothing_but_the_crds_and_the_users_objects()
    {
        if (RealNode.DockerHost is null)
        {
            Assert.Ignore("uninstalls the release: the local real node only");
        }

        var ns = await Cluster.CreateNamespaceAsync("bye");
        await Cluster.ApplyAsync(ns, OneReplicaFunction("left") + $$"""
            ---
            apiVersion: pilotlight.dev/v1alpha1
            kind: Sandbox
            metadata:
              name: left
            spec:
              image: {{Cluster.ShellImage}}
              # Every node may be a GPU node, tainted so; the platform allows this toleration (sandbox.scheduling).
              tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
              timeout: 600s
            """);
        await E2ECluster.UntilAsync("the function's and the sandbox's pods to run", Startup, async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns);
            return (pods.Items.Count(p => p.Status?.Phase == "Running") == 2, string.Join(", ", pods.Items.Select(p => $"{p.Metadata.Name} {p.Status?.Phase}")));
        });

        // The README's uninstall steps, as written there.
        await Cluster.KubectlAsync("-n", E2ECluster.ReleaseNamespace, "scale", "deployment", $"{E2ECluster.Release}-operator", "--replicas=0");
        await E2ECluster.UntilAsync("the operator's pods to be gone", TimeSpan.FromMinutes(2), async () =>
        {
            var pods = await Cluster.Client.CoreV1.ListNamespacedPodAsync(E2ECluster.ReleaseNamespace, labelSelector: "app.kubernetes.io/name=pilotlight-operator");
            return (pods.Items.Count == 0, string.Join(", ", pods.Items.Select(p => p.Metadata.Name)));
        });
        await Cluster.KubectlAsync("delete", "pods,services,networkpolicies,daemonsets", "-A", "-l", "app.kubernetes.io/managed-by=pilotlight", "--wait=false");
        await Cluster.KubectlAsync("-n", E2ECluster.ReleaseNamespace, "delete", "lease", $"{E2ECluster.Release}-operator", "--ignore-not-found");
        await RealNode.HelmAsync("uninstall", E2ECluster.Release, "--namespace", E2ECluster.ReleaseNamespace, "--wait", "--timeout", "5m");

        await E2ECluster.UntilAsync("nothing of Pilotlight's to run after helm uninstall", TimeSpan.FromMinutes(3), async () =>
        {
            var left = new List<string>();
            left.AddRange((await Cluster.Client.CoreV1.ListNamespacedPodAsync(ns)).Items.Select(p => $"pod {p.Metadata.Name}"));
            left.AddRange((await Cluster.Client.CoreV1.ListNamespacedServiceAsync(ns)).Items.Select(s => $"service {s.Metadata.Name}"));
            left.AddRange((await Cluster.Client.NetworkingV1.ListNamespacedNetworkPolicyAsync(ns)).Items.Select(p => $"networkpolicy {p.Metadata.Name}"));
            left.AddRange((await Cluster.Client.CoreV1.ListPodForAllNamespacesAsync(labelSelector: "app.kubernetes.io/managed-by=pilotlight")).Items
                .Select(p => $"pod {p.Metadata.NamespaceProperty}/{p.Metadata.Name}"));
            left.AddRange((await Cluster.Client.CoordinationV1.ListNamespacedLeaseAsync(E2ECluster.ReleaseNamespace)).Items.Select(l => $"lease {l.Metadata.Name}"));
            return (left.Count == 0, string.Join(", ", left));
        });

        // The users' objects and the CRDs stay (helm never deletes CRDs; GitOps owns the objects).
        var functions = await Cluster.KubectlAsync("get", "gpufunctions,sandboxes", "-n", ns, "-o", "name");
        Assert.That(functions, Does.Contain("gpufunction.pilotlight.dev/left").And.Contain("sandbox.pilotlight.dev/left"));
        await Cluster.DeleteNamespaceAsync(ns);
    }

    /// <summary>A public CPU function of the sample model server held at one replica; <paramref name="extraSpec"/> adds lines under spec.</summary>
    private string OneReplicaFunction(string name, string extraSpec = "") => $$"""
        apiVersion: pilotlight.dev/v1alpha1
        kind: GpuFunction
        metadata:
          name: {{name}}
        spec:
          image: {{Cluster.ModelServerImage}}
          access: Public
          port: 8080
          healthPath: /healthz
          gpu:
            type: {{Cluster.GpuType}}
            count: 0
          scaling:
            minReplicas: 1
            maxReplicas: 1

        """ + string.Concat(extraSpec.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => $"  {line}\n"));

    [GeneratedRegex(@"(?m)^pilotlight_cpu_seconds_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)")]
    private static partial Regex MeterCpu();
}
