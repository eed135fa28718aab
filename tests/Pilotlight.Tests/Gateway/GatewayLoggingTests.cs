using System.Collections.Concurrent;
using k8s;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pilotlight.Gateway;
using Pilotlight.Tests.Integration;

namespace Pilotlight.Tests.Gateway;

/// <summary>An idle gateway's log: probes and polls are not news.</summary>
public sealed class GatewayLoggingTests
{
    [Test]
    public async Task Probes_and_polls_write_no_lines_at_information_but_the_framework_warnings_would()
    {
        using var client = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:9" });
        var lines = new ConcurrentQueue<(LogLevel Level, string Category)>();
        int port = ControlPlane.FreePort(), admin = ControlPlane.FreePort();
        await using var app = GatewayApp.Build(client, $"http://127.0.0.1:{port}", new GatewayOptions { AdminPort = admin },
            registry: Prometheus.Metrics.NewCustomRegistry(),
            logging: b => b.AddProvider(new Recording(lines)).SetMinimumLevel(LogLevel.Trace));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            for (var i = 0; i < 5; i++)
            {
                (await http.GetAsync($"http://127.0.0.1:{port}/healthz")).Dispose();
                (await http.GetAsync($"http://127.0.0.1:{port}/readyz")).Dispose();
            }

            var framework = lines.Where(l => l.Category.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)).ToList();
            Assert.That(framework.Where(l => l.Level < LogLevel.Warning), Is.Empty, "no per-request lines from ASP.NET Core");
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Microsoft.AspNetCore.Server.Kestrel");
            Assert.That(logger.IsEnabled(LogLevel.Warning), Is.True, "the framework's warnings still reach the log");
            Assert.That(logger.IsEnabled(LogLevel.Information), Is.False);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    private sealed class Recording(ConcurrentQueue<(LogLevel, string)> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<(LogLevel, string)> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue((logLevel, category));
        }
    }
}
