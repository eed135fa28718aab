using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pilotlight.Client;

/// <summary>What a sandbox is created with.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Image">Its container image.</param>
/// <param name="Timeout">Lifetime (e.g. <c>300s</c>); the CRD's default when null.</param>
/// <param name="IdleTimeout">Ends after this long without activity; none when null.</param>
/// <param name="Gpus">GPUs to attach; none when null or 0.</param>
/// <param name="GpuType">The GPU type (the CRD's names), when GPUs are asked for.</param>
public sealed record SandboxRequest(string Name, string Image, string? Timeout = null, string? IdleTimeout = null, int? Gpus = null, string? GpuType = null);

/// <summary>How an exec ended.</summary>
/// <param name="ExitCode">The command's exit code; null when the timeout killed it.</param>
/// <param name="TimedOut">The timeout killed it.</param>
/// <param name="Duration">From start to exit.</param>
public sealed record ExecOutcome(int? ExitCode, bool TimedOut, TimeSpan Duration);

/// <summary>One entry of a sandbox directory.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Type"><c>file</c>, <c>dir</c> or <c>link</c>.</param>
/// <param name="Size">Bytes of a file.</param>
public sealed record SandboxFileEntry(string Name, string Type, long Size);

/// <summary>
/// Sandboxes: created and deleted as Sandbox objects through the API server; exec, files and terminate through the
/// gateway's sandbox API (<c>/_sandbox/NS/NAME/...</c>), which checks the caller's Kubernetes token.
/// </summary>
public sealed class SandboxClient(PilotlightResources resources, HttpClient http, Uri gateway, string? token, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>The Sandbox object for a request, as JSON.</summary>
    public static JsonObject Manifest(SandboxRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var spec = new JsonObject { ["image"] = request.Image };
        if (request.Timeout is not null)
        {
            spec["timeout"] = request.Timeout;
        }

        if (request.IdleTimeout is not null)
        {
            spec["idleTimeout"] = request.IdleTimeout;
        }

        if (request.Gpus is > 0)
        {
            spec["gpu"] = new JsonObject { ["count"] = request.Gpus, ["type"] = request.GpuType };
        }

        return new JsonObject
        {
            ["apiVersion"] = $"{PilotlightResources.Group}/{PilotlightResources.Version}",
            ["kind"] = "Sandbox",
            ["metadata"] = new JsonObject { ["name"] = request.Name },
            ["spec"] = spec,
        };
    }

    /// <summary>Creates the sandbox and waits until it is Ready; fails when it finishes first or <paramref name="wait"/> passes.</summary>
    public async Task<JsonObject> CreateAsync(string ns, SandboxRequest request, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        await resources.CreateAsync(PilotlightKind.Sandbox, ns, Manifest(request), cancellationToken).ConfigureAwait(false);
        return await WaitReadyAsync(ns, request.Name, wait, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits until the sandbox's Ready condition is True.</summary>
    public async Task<JsonObject> WaitReadyAsync(string ns, string name, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        var deadline = _time.GetUtcNow() + wait;
        while (true)
        {
            var sandbox = await resources.GetAsync(PilotlightKind.Sandbox, ns, name, cancellationToken).ConfigureAwait(false);
            if (Condition(sandbox, "Finished") is { Status: "True" } finished)
            {
                throw new PilotlightClientException($"Sandbox {ns}/{name} finished before it was ready: {finished.Reason}: {finished.Message}",
                    $"See pilotlight describe sandbox {name} -n {ns}.");
            }

            if (Condition(sandbox, "Ready") is { Status: "True" })
            {
                return sandbox;
            }

            if (_time.GetUtcNow() >= deadline)
            {
                throw new PilotlightClientException($"Sandbox {ns}/{name} was not ready within {wait.TotalSeconds:F0} s.",
                    $"See pilotlight describe sandbox {name} -n {ns} (image pull, no node with room).");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A condition of an object's status, by type.</summary>
    public static (string? Status, string? Reason, string? Message)? Condition(JsonObject obj, string type) =>
        obj["status"]?["conditions"] is JsonArray conditions
        && conditions.OfType<JsonObject>().FirstOrDefault(c => c["type"]?.GetValue<string>() == type) is { } c
            ? (c["status"]?.GetValue<string>(), c["reason"]?.GetValue<string>(), c["message"]?.GetValue<string>())
            : null;

    /// <summary>
    /// Runs <paramref name="argv"/> in the sandbox, writing its stdout and stderr to the two streams as they arrive.
    /// </summary>
    public async Task<ExecOutcome> ExecAsync(string ns, string name, IReadOnlyList<string> argv, Stream stdout, Stream stderr,
        string? stdin = null, string? workingDir = null, TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? env = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(argv);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var body = new JsonObject { ["argv"] = new JsonArray([.. argv.Select(a => (JsonNode?)JsonValue.Create(a))]) };
        if (stdin is not null)
        {
            body["stdin"] = stdin;
        }

        if (workingDir is not null)
        {
            body["workingDir"] = workingDir;
        }

        if (timeout is { } t)
        {
            body["timeoutSeconds"] = t.TotalSeconds;
        }

        if (env is not null)
        {
            var vars = new JsonObject();
            foreach (var (k, v) in env)
            {
                vars[k] = v;
            }

            body["env"] = vars;
        }

        using var request = Request(HttpMethod.Post, ns, name, "exec");
        request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.TryGetProperty("stream", out var which) && root.TryGetProperty("data", out var data))
            {
                var target = which.GetString() == "stderr" ? stderr : stdout;
                await target.WriteAsync(data.GetBytesFromBase64(), cancellationToken).ConfigureAwait(false);
                await target.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            else if (root.TryGetProperty("exit", out var exit))
            {
                return new ExecOutcome(exit.ValueKind == JsonValueKind.Number ? exit.GetInt32() : null,
                    root.TryGetProperty("timedOut", out var to) && to.ValueKind == JsonValueKind.True,
                    TimeSpan.FromMilliseconds(root.TryGetProperty("durationMs", out var ms) && ms.ValueKind == JsonValueKind.Number ? ms.GetInt64() : 0));
            }
            else if (root.TryGetProperty("error", out var error))
            {
                throw new PilotlightClientException($"Exec in sandbox {ns}/{name} failed: {error.GetString()}", null);
            }
        }

        throw new PilotlightClientException($"The exec stream of sandbox {ns}/{name} ended without an exit status.",
            "The sandbox may have ended meanwhile; see pilotlight describe sandbox.");
    }

    /// <summary>Writes <paramref name="content"/> to <paramref name="path"/> (relative to the workspace), streamed.</summary>
    public async Task UploadAsync(string ns, string name, string path, Stream content, CancellationToken cancellationToken = default)
    {
        using var request = Request(HttpMethod.Put, ns, name, "files", path);
        request.Content = new StreamContent(content, 64 * 1024);
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        using var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Copies the file at <paramref name="path"/> into <paramref name="destination"/>.</summary>
    public async Task DownloadAsync(string ns, string name, string path, Stream destination, CancellationToken cancellationToken = default)
    {
        using var request = Request(HttpMethod.Get, ns, name, "files", path);
        using var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
        await response.Content.CopyToAsync(destination, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The entries of a directory (relative to the workspace; empty for the workspace itself).</summary>
    public async Task<IReadOnlyList<SandboxFileEntry>> ListAsync(string ns, string name, string path, CancellationToken cancellationToken = default)
    {
        using var request = Request(HttpMethod.Get, ns, name, "files/list", path);
        using var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        return [.. doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => new SandboxFileEntry(
            e.GetProperty("name").GetString() ?? "", e.GetProperty("type").GetString() ?? "", e.TryGetProperty("size", out var s) ? s.GetInt64() : 0))];
    }

    /// <summary>Asks the gateway to end the sandbox (its status says Finished soon after).</summary>
    public async Task TerminateAsync(string ns, string name, CancellationToken cancellationToken = default)
    {
        using var request = Request(HttpMethod.Post, ns, name, "terminate");
        using var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Extracts the tar <paramref name="tar"/> into the directory <paramref name="path"/> (relative to the workspace,
    /// created when missing; empty for the workspace), streamed: modes, links and empty directories kept.
    /// </summary>
    public async Task UploadArchiveAsync(string ns, string name, string path, HttpContent tar, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tar);
        using var request = Request(HttpMethod.Put, ns, name, "archive", path);
        request.Content = tar;
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-tar");
        using var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The directory <paramref name="path"/> as a tar stream (names relative to it); dispose it when read.</summary>
    public async Task<Stream> DownloadArchiveAsync(string ns, string name, string path, CancellationToken cancellationToken = default)
    {
        using var request = Request(HttpMethod.Get, ns, name, "archive", path);
        var response = await SendAsync(request, ns, name, cancellationToken).ConfigureAwait(false);
        return new ResponseStream(response, await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// Uploads a local file, or a directory as one tar stream (its modes, symbolic links and empty directories kept),
    /// to <paramref name="remotePath"/>. Returns the number of files copied.
    /// </summary>
    public async Task<int> CopyToAsync(string ns, string name, string localPath, string remotePath, CancellationToken cancellationToken = default)
    {
        if (File.Exists(localPath))
        {
            await using var file = File.OpenRead(localPath);
            await UploadAsync(ns, name, remotePath, file, cancellationToken).ConfigureAwait(false);
            return 1;
        }

        if (!Directory.Exists(localPath))
        {
            throw new PilotlightClientException($"{localPath} does not exist.", null);
        }

        using var tar = new DirectoryTarContent(localPath);
        await UploadArchiveAsync(ns, name, remotePath, tar, cancellationToken).ConfigureAwait(false);
        return tar.Files;
    }

    /// <summary>
    /// Downloads a remote file, or a directory as one tar stream, to <paramref name="localPath"/> (see
    /// <see cref="DirectoryTar.ExtractAsync"/> for what is refused or skipped).
    /// </summary>
    public async Task<TarExtraction> CopyFromAsync(string ns, string name, string remotePath, string localPath, CancellationToken cancellationToken = default)
    {
        Stream tar;
        try
        {
            tar = await DownloadArchiveAsync(ns, name, remotePath, cancellationToken).ConfigureAwait(false);
        }
        catch (GatewayException e) when (e.Status == 409)
        {
            // Not a directory: a file.
            if (Path.GetDirectoryName(Path.GetFullPath(localPath)) is { } parent)
            {
                Directory.CreateDirectory(parent);
            }

            await using var file = File.Create(localPath);
            await DownloadAsync(ns, name, remotePath, file, cancellationToken).ConfigureAwait(false);
            return new TarExtraction(1, 1, []);
        }

        await using (tar)
        {
            return await DirectoryTar.ExtractAsync(tar, localPath, cancellationToken).ConfigureAwait(false);
        }
    }

    private HttpRequestMessage Request(HttpMethod method, string ns, string name, string operation, string? path = null)
    {
        var query = path is null ? "" : $"?path={Uri.EscapeDataString(path)}";
        var request = new HttpRequestMessage(method, new Uri(gateway, $"_sandbox/{Uri.EscapeDataString(ns)}/{Uri.EscapeDataString(name)}/{operation}{query}"));
        GatewayHttp.Authorize(request, token);
        return request;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, string ns, string name, CancellationToken cancellationToken)
    {
        var response = await GatewayHttp.SendAsync(http, request, "the gateway", cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            using (response)
            {
                throw await GatewayException.FromResponseAsync(response, $"sandbox {ns}/{name}", cancellationToken).ConfigureAwait(false);
            }
        }

        return response;
    }

    /// <summary>A local directory as a request body, written as tar while it is sent.</summary>
    private sealed class DirectoryTarContent(string directory) : HttpContent
    {
        public int Files { get; private set; }

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
            Files = await DirectoryTar.WriteAsync(directory, stream).ConfigureAwait(false);

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context, CancellationToken cancellationToken) =>
            Files = await DirectoryTar.WriteAsync(directory, stream, cancellationToken).ConfigureAwait(false);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    /// <summary>A response body that disposes its response with it.</summary>
    private sealed class ResponseStream(HttpResponseMessage response, Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                response.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
