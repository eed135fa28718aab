using k8s;
using k8s.Models;
using Pilotlight.Tests.Integration;

namespace Pilotlight.Tests.Testing;

/// <summary>The API server's write counts the scale bench reports (from <c>apiserver_request_total</c>).</summary>
public class ApiServerWritesTests
{
    [Test]
    public void Sums_the_write_verbs_by_resource_and_subresource_over_every_other_label()
    {
        const string exposition = """
            # HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.
            # TYPE apiserver_request_total counter
            apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 7
            apiserver_request_total{code="409",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2
            apiserver_request_total{code="201",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 5
            apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="pilotlight.dev",resource="gpufunctions",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 1.1e+04
            apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 3
            apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="DELETE",version="v1"} 1
            apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 40
            apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 90
            apiserver_request_total{code="0",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 4
            apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 9
            apiserver_request_total{code="500",component="apiserver",contentType="odd \"quoted\", and {braced}",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="PATCH",version="v1"} 6 1733300000000
            apiserver_request_total{code="200",resource="secrets",verb="POST" 8
            """;

        var writes = ApiServerWrites.Parse(exposition);

        Assert.That(writes.ByResource, Is.EquivalentTo(new Dictionary<string, long>
        {
            ["pods"] = 10, // 7 + 2 creates (whatever their answer) + 1 delete; no reads or watches
            ["pods/binding"] = 5,
            ["gpufunctions/status"] = 11_000,
            ["leases"] = 3,
            ["configmaps"] = 6, // a quoted comma and braces in a value, and a timestamp after the value
        }));
        Assert.That(writes.Total, Is.EqualTo(11_024));
    }

    [Test]
    public void Since_keeps_only_what_grew()
    {
        var before = new ApiServerWrites(new Dictionary<string, long> { ["pods"] = 3, ["leases"] = 10 });
        var after = new ApiServerWrites(new Dictionary<string, long> { ["pods"] = 5, ["leases"] = 10, ["events"] = 4 });

        Assert.That(ApiServerWrites.Since(before, after).ByResource,
            Is.EquivalentTo(new Dictionary<string, long> { ["pods"] = 2, ["events"] = 4 }));
    }

    [Test, Category("Integration")]
    public async Task Counts_writes_the_real_api_server_served()
    {
        var plane = await SharedControlPlane.GetAsync();
        using var client = plane.CreateClient();
        var ns = await plane.CreateNamespaceAsync("apiwrites");
        var before = await ApiServerWrites.ReadAsync(plane.KubeconfigPath);

        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "counted" } }, ns);
        for (var i = 0; i < 3; i++)
        {
            await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch($"{{\"data\":{{\"n\":\"{i}\"}}}}", V1Patch.PatchType.MergePatch), "counted", ns);
        }

        var since = ApiServerWrites.Since(before, await ApiServerWrites.ReadAsync(plane.KubeconfigPath));
        // Other tests share this API server and may write ConfigMaps meanwhile: at least these four.
        Assert.That(since.ByResource.GetValueOrDefault("configmaps"), Is.GreaterThanOrEqualTo(4));
        Assert.That(since.Total, Is.GreaterThanOrEqualTo(since.ByResource["configmaps"]));
    }
}
