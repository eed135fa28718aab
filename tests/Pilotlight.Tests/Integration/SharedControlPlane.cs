namespace Pilotlight.Tests.Integration;

/// <summary>
/// One real control plane for every integration test in this namespace,
/// started on first use with the CRDs installed and stopped after the run.
/// Tests isolate themselves by namespace (and by node labels where nodes matter).
/// </summary>
[SetUpFixture]
public sealed class SharedControlPlane
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static ControlPlane? _plane;

    /// <summary>The running control plane, started on first use.</summary>
    public static async Task<ControlPlane> GetAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_plane is null)
            {
                var plane = await ControlPlane.StartAsync();
                await plane.InstallCrdsAsync(Path.Combine(RepositoryRoot.Path, "crds"));
                _plane = plane;
            }

            return _plane;
        }
        finally
        {
            Gate.Release();
        }
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        var operatorRan = SharedOperator.Started;
        await SharedOperator.StopAsync();
        if (_plane is null)
        {
            return;
        }

        try
        {
            if (operatorRan)
            {
                // After every test of this namespace: whether the chart's RBAC was enough for all
                // they did and no more. A failure here fails the run (NUnit reports the teardown).
                await ChartRbacAudit.VerifyAsync(_plane, complete: EverythingRanAndPassed());
            }
        }
        finally
        {
            await _plane.DisposeAsync();
            _plane = null;
        }
    }

    /// <summary>True when every test under this fixture ran (none filtered out) and none failed.</summary>
    private static bool EverythingRanAndPassed()
    {
        var suite = NUnit.Framework.Internal.TestExecutionContext.CurrentContext.CurrentTest;
        var result = TestContext.CurrentContext.Result;
        var ran = result.PassCount + result.FailCount + result.WarningCount + result.SkipCount + result.InconclusiveCount;
        return ran == suite.TestCaseCount && result.FailCount == 0;
    }
}

/// <summary>Polls a condition until it holds or a timeout passes: the only way integration tests wait.</summary>
internal static class Eventually
{
    public static async Task<T> GetAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await probe() is { } value)
                {
                    return value;
                }
            }
            catch (Exception ex) when (ex is not AssertionException)
            {
                last = ex;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out after {timeout} waiting for {what}" + (last is null ? "" : $" (last error: {last.Message})"));
            }

            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(100));
        }
    }

    public static Task HoldsAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        GetAsync<object>(() => Task.FromResult(condition() ? new object() : null), timeout, what);

    public static Task HoldsAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        GetAsync<object>(async () => await condition() ? new object() : null, timeout, what);
}
