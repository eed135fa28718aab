using System.Runtime.CompilerServices;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Tests.ControllerRuntime;

/// <summary>The informer's secondary indexes and transform, over a list/watch made of delegates.</summary>
public class InformerIndexTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>A stand-in API server: a list of objects, and the watch the informer has open.</summary>
    private sealed class FakeApi
    {
        private readonly object _gate = new();
        private readonly Dictionary<string, V1Pod> _objects = [];
        private Channel<(WatchEventType, V1Pod)>? _watch;
        private Action<Exception>? _onError;
        private int _version;

        public int Lists { get; private set; }

        public int Watches { get; private set; }

        public ListWatch<V1Pod> ListWatch => new("pods", ListAsync, WatchAsync);

        /// <summary>Stores an object without telling the watch (as if the watch missed it).</summary>
        public V1Pod Put(V1Pod pod)
        {
            lock (_gate)
            {
                pod.Metadata.ResourceVersion = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);
                _objects[Key(pod)] = pod;
                return pod;
            }
        }

        public void Drop(string ns, string name)
        {
            lock (_gate)
            {
                _objects.Remove($"{ns}/{name}");
            }
        }

        /// <summary>Stores an object and sends it on the open watch.</summary>
        public void Send(WatchEventType type, V1Pod pod)
        {
            if (type == WatchEventType.Deleted)
            {
                Drop(pod.Metadata.NamespaceProperty, pod.Metadata.Name);
            }
            else
            {
                Put(pod);
            }

            Channel<(WatchEventType, V1Pod)> watch;
            lock (_gate)
            {
                watch = _watch ?? throw new InvalidOperationException("no watch is open");
            }

            watch.Writer.TryWrite((type, Copy(pod)));
        }

        /// <summary>Ends the open watch with 410 Gone, as the API server does for an expired resourceVersion.</summary>
        public void Expire()
        {
            lock (_gate)
            {
                _onError!(new KubernetesException(new V1Status { Code = 410, Reason = "Expired" }));
                _watch!.Writer.TryWrite((WatchEventType.Bookmark, new V1Pod { Metadata = new V1ObjectMeta { ResourceVersion = "0" } }));
                _watch.Writer.TryComplete();
                _watch = null;
            }
        }

        private Task<ListPage<V1Pod>> ListAsync(string? cont, int limit, CancellationToken ct)
        {
            lock (_gate)
            {
                Lists++;
                return Task.FromResult(new ListPage<V1Pod>(
                    [.. _objects.Values.Select(Copy)], _version.ToString(System.Globalization.CultureInfo.InvariantCulture), null));
            }
        }

        private async IAsyncEnumerable<(WatchEventType, V1Pod)> WatchAsync(string rv, int timeout, Action<Exception> onError,
            [EnumeratorCancellation] CancellationToken ct)
        {
            var channel = Channel.CreateUnbounded<(WatchEventType, V1Pod)>();
            lock (_gate)
            {
                _watch = channel;
                _onError = onError;
                Watches++;
            }

            await foreach (var e in channel.Reader.ReadAllAsync(ct))
            {
                yield return e;
            }
        }

        private static string Key(V1Pod pod) => $"{pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}";

        private static V1Pod Copy(V1Pod pod) => KubernetesJson.Deserialize<V1Pod>(KubernetesJson.Serialize(pod));
    }

    private static V1Pod Pod(string ns, string name, string? ownerUid = null) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            NamespaceProperty = ns,
            Uid = $"uid-{ns}-{name}",
            OwnerReferences = ownerUid is null ? null : [new V1OwnerReference { Controller = true, Uid = ownerUid, Kind = "Sandbox", Name = "o", ApiVersion = "v1" }],
            ManagedFields = [new V1ManagedFieldsEntry { Manager = "kubectl", Operation = "Update" }],
        },
    };

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        while (!condition())
        {
            try
            {
                await Task.Delay(10, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"timed out waiting until {what}");
            }
        }
    }

    private static string[] Names(IEnumerable<V1Pod> pods) => [.. pods.Select(p => p.Metadata.Name).Order(StringComparer.Ordinal)];

    private sealed class Running(Informer<V1Pod> informer) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task? _run;

        public Informer<V1Pod> Informer => informer;

        public async Task<Running> StartAsync()
        {
            _run = informer.RunAsync(_stop.Token);
            await informer.Synced.WaitAsync(Timeout);
            return this;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            if (_run is not null)
            {
                await _run.WaitAsync(Timeout);
            }

            _stop.Dispose();
        }
    }

    private static Task<Running> StartAsync(FakeApi api, InformerOptions? options = null) =>
        new Running(new Informer<V1Pod>(api.ListWatch, options ?? new InformerOptions { Backoff = new(TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1)) })
            .AddIndex(Indexers.ControllerUid, Indexers.ByControllerUid)).StartAsync();

    [Test]
    public async Task The_namespace_index_follows_adds_moves_and_deletes()
    {
        var api = new FakeApi();
        api.Put(Pod("a", "p1"));
        api.Put(Pod("b", "p2"));
        await using var running = await StartAsync(api);
        var informer = running.Informer;
        Assert.That(Names(informer.List("a")), Is.EqualTo(new[] { "p1" }));
        Assert.That(Names(informer.List("b")), Is.EqualTo(new[] { "p2" }));
        Assert.That(informer.List("c"), Is.Empty);

        api.Send(WatchEventType.Added, Pod("a", "p3"));
        await UntilAsync(() => informer.List("a").Count == 2, "the added pod is indexed");
        Assert.That(Names(informer.List("a")), Is.EqualTo(new[] { "p1", "p3" }));

        api.Send(WatchEventType.Deleted, Pod("a", "p1"));
        await UntilAsync(() => informer.List("a").Count == 1, "the deleted pod leaves the index");
        Assert.That(Names(informer.List("a")), Is.EqualTo(new[] { "p3" }));
        Assert.That(informer.Count, Is.EqualTo(2));
    }

    [Test]
    public async Task The_controller_uid_index_follows_a_change_of_owner()
    {
        var api = new FakeApi();
        api.Put(Pod("a", "p1", ownerUid: "owner-1"));
        api.Put(Pod("a", "p2", ownerUid: "owner-1"));
        api.Put(Pod("a", "p3"));
        await using var running = await StartAsync(api);
        var informer = running.Informer;
        Assert.That(Names(informer.ByIndex(Indexers.ControllerUid, "owner-1")), Is.EqualTo(new[] { "p1", "p2" }));

        api.Send(WatchEventType.Modified, Pod("a", "p2", ownerUid: "owner-2"));
        await UntilAsync(() => informer.ByIndex(Indexers.ControllerUid, "owner-2").Count == 1, "the new owner is indexed");
        Assert.That(Names(informer.ByIndex(Indexers.ControllerUid, "owner-1")), Is.EqualTo(new[] { "p1" }), "the old owner no longer lists it");

        api.Send(WatchEventType.Modified, Pod("a", "p1"));
        await UntilAsync(() => informer.ByIndex(Indexers.ControllerUid, "owner-1").Count == 0, "an orphaned pod leaves the index");
        Assert.That(Names(informer.ByIndex(Indexers.ControllerUid, "owner-2")), Is.EqualTo(new[] { "p2" }));
        Assert.That(Names(informer.List("a")), Is.EqualTo(new[] { "p1", "p2", "p3" }), "a modification does not duplicate the namespace entry");
    }

    [Test]
    public async Task A_relist_drops_what_was_deleted_while_the_watch_was_down_from_every_index()
    {
        var api = new FakeApi();
        api.Put(Pod("a", "p1", ownerUid: "owner-1"));
        api.Put(Pod("b", "p2", ownerUid: "owner-1"));
        await using var running = await StartAsync(api);
        var informer = running.Informer;
        var deleted = new List<string>();
        Assert.That(informer.ByIndex(Indexers.ControllerUid, "owner-1"), Has.Count.EqualTo(2));

        // Missed by the watch: p1 deleted, p2 moved to another owner, p4 added.
        api.Drop("a", "p1");
        api.Put(Pod("b", "p2", ownerUid: "owner-2"));
        api.Put(Pod("c", "p4", ownerUid: "owner-1"));
        var lists = api.Lists;
        api.Expire();
        await UntilAsync(() => api.Lists > lists && api.Watches >= 2 && informer.Count == 2, "the informer relists");

        Assert.Multiple(() =>
        {
            Assert.That(informer.List("a"), Is.Empty);
            Assert.That(Names(informer.List("b")), Is.EqualTo(new[] { "p2" }));
            Assert.That(Names(informer.List("c")), Is.EqualTo(new[] { "p4" }));
            Assert.That(Names(informer.ByIndex(Indexers.ControllerUid, "owner-1")), Is.EqualTo(new[] { "p4" }));
            Assert.That(Names(informer.ByIndex(Indexers.ControllerUid, "owner-2")), Is.EqualTo(new[] { "p2" }));
            Assert.That(informer.Relists, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task An_unknown_index_is_an_error_and_indexes_cannot_be_added_once_running()
    {
        var api = new FakeApi();
        await using var running = await StartAsync(api);
        Assert.Throws<ArgumentException>(() => running.Informer.ByIndex("nope", "x"));
        Assert.Throws<InvalidOperationException>(() => running.Informer.AddIndex("late", p => [p.Metadata.Name]));
    }

    [Test]
    public async Task ManagedFields_are_stripped_by_default_from_listed_and_watched_objects()
    {
        var api = new FakeApi();
        api.Put(Pod("a", "listed"));
        await using var running = await StartAsync(api);
        api.Send(WatchEventType.Added, Pod("a", "watched"));
        await UntilAsync(() => running.Informer.Count == 2, "the watched pod is cached");

        Assert.That(running.Informer.List().Select(p => p.Metadata.ManagedFields), Is.All.Null);
    }

    [Test]
    public async Task ManagedFields_are_kept_with_the_identity_transform()
    {
        var api = new FakeApi();
        api.Put(Pod("a", "listed"));
        await using var running = await StartAsync(api, new InformerOptions { Transform = InformerTransforms.None });
        api.Send(WatchEventType.Added, Pod("a", "watched"));
        await UntilAsync(() => running.Informer.Count == 2, "the watched pod is cached");

        Assert.That(running.Informer.List().Select(p => p.Metadata.ManagedFields?.Count), Is.All.EqualTo(1));
    }
}
