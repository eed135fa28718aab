using System.Net;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Pilotlight.ControllerRuntime;
using Pilotlight.Operator;
using Pilotlight.Operator.Usage;
using Prometheus;

namespace Pilotlight.Tests.Operator;

/// <summary>/readyz as Program.cs serves it: 503 until every informer of every controller has listed, then 200.</summary>
public class OperatorReadyzTests
{
    private sealed class Nothing : IReconciler<V1Pod>
    {
        public Task<ReconcileResult> ReconcileAsync(V1Pod entity, CancellationToken cancellationToken) => Task.FromResult(ReconcileResult.Done);

        public Task DeletedAsync(ObjectKey key, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [Test]
    public async Task Readyz_is_503_with_the_reason_until_the_informers_list_then_200_and_healthz_is_200_throughout()
    {
        var listed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var pods = new Informer<V1Pod>(new ListWatch<V1Pod>(
            "pods",
            async (cont, limit, ct) =>
            {
                await listed.Task.WaitAsync(ct);
                return new ListPage<V1Pod>([], "1", null);
            },
            (rv, timeout, onError, ct) => Empty<V1Pod>(ct)));
        var nodes = new Informer<V1Node>(new ListWatch<V1Node>(
            "nodes", (cont, limit, ct) => Task.FromResult(new ListPage<V1Node>([], "1", null)), (rv, timeout, onError, ct) => Empty<V1Node>(ct)));

        // Never called: no leader election, and the informers are made of delegates.
        using var client = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:9" });
        var host = new ControllerHost(client, metrics: new ControllerMetrics(Metrics.NewCustomRegistry()))
            .Add(new Controller<V1Pod>("pods", pods, new Nothing()).Reads(nodes));

        ControllerHost? published = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var url = $"http://127.0.0.1:{ControlPlane.FreePort()}";
        builder.WebHost.UseUrls(url);
        await using var web = builder.Build();
        using var access = new UsageAccess(client);
        OperatorWeb.Map(web, new UsageApi(client, new UsageJournal(null), TimeProvider.System), access, () => published?.Unsynced);
        await web.StartAsync();
        using var http = new HttpClient();

        async Task<(HttpStatusCode, string)> GetAsync(string path)
        {
            using var response = await http.GetAsync(new Uri(url + path));
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var (status, body) = await GetAsync("/readyz");
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable), "no host yet");
        Assert.That(body, Does.Contain("not started"));

        published = host;
        using var stop = new CancellationTokenSource();
        var running = host.RunAsync(stop.Token);
        await nodes.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        (status, body) = await GetAsync("/readyz");
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(body, Does.Contain("pods").And.Not.Contain("nodes"), "it names the informer still listing");
        Assert.That(host.Synced, Is.False);
        Assert.That((await GetAsync("/healthz")).Item1, Is.EqualTo(HttpStatusCode.OK));

        listed.SetResult();
        await host.SyncedTask.WaitAsync(TimeSpan.FromSeconds(10));
        (status, body) = await GetAsync("/readyz");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(host.Synced, Is.True);

        await stop.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private static async IAsyncEnumerable<(WatchEventType, T)> Empty<T>([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
        yield break;
    }
}
