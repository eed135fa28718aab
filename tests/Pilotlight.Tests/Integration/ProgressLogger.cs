using Microsoft.Extensions.Logging;

namespace Pilotlight.Tests.Integration;

/// <summary>Logs from components under test, written to NUnit's progress output and, when PILOTLIGHT_TEST_LOG names a file, to it.</summary>
internal sealed class ProgressLoggerProvider(LogLevel minimum = LogLevel.Warning) : ILoggerProvider
{
    public static ILoggerFactory Factory(LogLevel minimum = LogLevel.Warning) =>
        LoggerFactory.Create(b => b.AddProvider(new ProgressLoggerProvider(minimum)).SetMinimumLevel(minimum));

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, minimum);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                var line = $"[{logLevel}] {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}";
                TestContext.Progress.WriteLine(line);
                if (Environment.GetEnvironmentVariable("PILOTLIGHT_TEST_LOG") is { } file)
                {
                    lock (typeof(ProgressLoggerProvider))
                    {
                        File.AppendAllText(file, line + Environment.NewLine);
                    }
                }
            }
        }
    }
}
