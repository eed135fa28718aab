using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Pilotlight.RuntimeShim.Sandbox;

/// <summary>
/// Sandbox mode's HTTP API, the only thing served in that mode:
/// <c>GET /ready</c>, <c>POST /exec</c> (NDJSON output stream), <c>GET /exec/ws</c> (interactive exec, <see cref="ExecSocket"/>), <c>GET|PUT|DELETE /files?path=</c>,
/// <c>GET /files/list?path=</c>, <c>GET|PUT /archive?path=</c> (a directory as tar, <see cref="SandboxArchive"/>) and <c>GET /activity</c>. Errors are <c>{"error": "..."}</c>; other paths 404.
/// </summary>
internal sealed class SandboxAgent(
    SandboxOptions options,
    ShimRuntime runtime,
    SandboxActivity activity,
    ExecRunner exec,
    ExecSocket execSocket,
    SandboxFiles files,
    SandboxArchive archive,
    ILogger<SandboxAgent> log)
{
    /// <summary>Registers what sandbox mode needs with the app's services.</summary>
    public static void AddServices(IServiceCollection services, SandboxOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton(new WorkspacePaths(options.Workspace));
        services.AddSingleton<SandboxActivity>();
        services.AddSingleton<ChildProcesses>();
        services.AddSingleton<ExecRunner>();
        services.AddSingleton<ExecSocket>();
        services.AddSingleton<SandboxFiles>();
        services.AddSingleton<SandboxArchive>();
        services.AddSingleton<SandboxAgent>();
        services.AddSingleton<SandboxMainProcess>();
    }

    public async Task HandleAsync(HttpContext context)
    {
        try
        {
            await DispatchAsync(context);
        }
        catch (Exception e) when (context.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            // The client went away.
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            log.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
            await Error(context, StatusCodes.Status500InternalServerError, $"internal error: {e.Message}");
        }
    }

    private Task DispatchAsync(HttpContext context)
    {
        var method = context.Request.Method;
        if (options.Trust is { } trust && context.Request.Path.Value != "/ready")
        {
            // Everything but readiness: the gateway's client certificate (checked in the handshake when one is sent),
            // and this very pod named.
            if (context.Connection.ClientCertificate is null)
            {
                return Error(context, StatusCodes.Status401Unauthorized, "a client certificate from the gateway is required");
            }

            if (trust.Mismatch(context.Request.Headers[AgentTrust.NamespaceHeader], context.Request.Headers[AgentTrust.PodUidHeader]) is { } mismatch)
            {
                log.LogWarning("Refused {Method} {Path}: {Mismatch}", method, context.Request.Path, mismatch);
                return Error(context, StatusCodes.Status403Forbidden, mismatch);
            }
        }

        return context.Request.Path.Value switch
        {
            "/ready" => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) ? ReadyAsync(context) : NotAllowed(context, "GET, HEAD"),
            "/activity" => HttpMethods.IsGet(method)
                ? Json(context, StatusCodes.Status200OK, activity.Report(), ShimJson.Plain.ActivityReport)
                : NotAllowed(context, "GET"),
            "/exec" => HttpMethods.IsPost(method) ? exec.RunAsync(context) : NotAllowed(context, "POST"),
            // GET for an HTTP/1.1 upgrade, CONNECT for a WebSocket over HTTP/2 (RFC 8441), which the gateway's forwarder prefers.
            "/exec/ws" => HttpMethods.IsGet(method) || HttpMethods.IsConnect(method) ? execSocket.RunAsync(context) : NotAllowed(context, "GET"),
            "/files" => method switch
            {
                _ when HttpMethods.IsGet(method) => files.ReadAsync(context),
                _ when HttpMethods.IsPut(method) => files.WriteAsync(context),
                _ when HttpMethods.IsDelete(method) => files.DeleteAsync(context),
                _ => NotAllowed(context, "GET, PUT, DELETE"),
            },
            "/files/list" => HttpMethods.IsGet(method) ? files.ListAsync(context) : NotAllowed(context, "GET"),
            "/archive" => method switch
            {
                _ when HttpMethods.IsGet(method) => archive.ReadAsync(context),
                _ when HttpMethods.IsPut(method) => archive.WriteAsync(context),
                _ => NotAllowed(context, "GET, PUT"),
            },
            _ => Error(context, StatusCodes.Status404NotFound, $"no such endpoint: {context.Request.Path}"),
        };
    }

    private Task ReadyAsync(HttpContext context)
    {
        if (runtime.IsDraining)
        {
            return ShimApp.PlainText(context, StatusCodes.Status503ServiceUnavailable, "draining");
        }

        return Directory.Exists(options.Workspace)
            ? ShimApp.PlainText(context, StatusCodes.Status200OK, "ready")
            : ShimApp.PlainText(context, StatusCodes.Status503ServiceUnavailable, $"workspace {options.Workspace} is missing");
    }

    private static Task NotAllowed(HttpContext context, string allow)
    {
        context.Response.Headers.Allow = allow;
        return Error(context, StatusCodes.Status405MethodNotAllowed, $"{context.Request.Method} is not allowed on {context.Request.Path}; use {allow}");
    }

    /// <summary>Answers <c>{"error": message}</c> with <paramref name="status"/>.</summary>
    internal static Task Error(HttpContext context, int status, string message) =>
        Json(context, status, new SandboxError(message), ShimJson.Plain.SandboxError);

    /// <summary>Answers <paramref name="value"/> as JSON with <paramref name="status"/>.</summary>
    internal static async Task Json<T>(HttpContext context, int status, T value, JsonTypeInfo<T> type)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        await JsonSerializer.SerializeAsync(context.Response.Body, value, type, context.RequestAborted);
    }
}
