using System.Net;
using System.Net.Sockets;
using k8s.Models;
using Pilotlight.ControllerRuntime;

namespace Pilotlight.Operator.Scaling;

/// <summary>One gateway the autoscaler reads demand from.</summary>
/// <param name="Url">Its base URL (<c>/internal/demand</c> is read relative to it).</param>
/// <param name="Label">
/// The metric label its failed reads are counted under: the URL of a gateway named by
/// <c>--gateways</c>, the Service (<c>NAMESPACE/NAME</c>) of one found through its Endpoints, so
/// that pod IPs coming and going never make new series.
/// </param>
public sealed record GatewayAddress(Uri Url, string Label);

/// <summary>The gateways of one demand poll.</summary>
/// <param name="Poll">Gateways to read.</param>
/// <param name="Unreadable">
/// Gateways known to exist that cannot be read (an address the Endpoints list as not ready, or
/// Endpoints not seen at all): their demand is unknown, never zero.
/// </param>
/// <param name="Labels">Every metric label this set stands for, including ones with no gateway now.</param>
public sealed record GatewaySet(IReadOnlyList<GatewayAddress> Poll, IReadOnlyList<GatewayAddress> Unreadable, IReadOnlyList<string> Labels)
{
    /// <summary>The name of the gateway's internal port (demand, signals) in the chart's <c>-pods</c> Service.</summary>
    public const string PortName = "internal";

    /// <summary>The port read where the Endpoints name no <see cref="PortName"/> port (a gateway serving all on one port).</summary>
    public const string PublicPortName = "http";

    /// <summary>No gateway at all.</summary>
    public static GatewaySet Empty { get; } = new([], [], []);

    /// <summary>Gateways named by URL (<c>--gateways</c>), each its own label.</summary>
    public static GatewaySet Of(IEnumerable<Uri> urls)
    {
        var poll = urls.Select(u => new GatewayAddress(u, u.ToString())).ToList();
        return new GatewaySet(poll, [], [.. poll.Select(g => g.Label).Distinct()]);
    }

    /// <summary>
    /// The gateway pods behind a Service, from its core/v1 Endpoints: every ready address is read at
    /// the port named <see cref="PortName"/> (else <see cref="PublicPortName"/>, else the subset's only port); a not-ready address, an
    /// address with no such port, or Endpoints not seen yet (<paramref name="endpoints"/> null) is
    /// unreadable. Endpoints with no address at all mean no gateway runs: nothing to read.
    /// </summary>
    public static GatewaySet FromEndpoints(ObjectKey service, V1Endpoints? endpoints)
    {
        var label = service.ToString();
        if (endpoints is null)
        {
            return new GatewaySet([], [new GatewayAddress(new Uri($"http://{service.Name}.{service.Namespace}.svc/"), label)], [label]);
        }

        List<GatewayAddress> poll = [], unreadable = [];
        foreach (var subset in endpoints.Subsets ?? [])
        {
            var ports = subset.Ports ?? [];
            var port = ports.FirstOrDefault(p => p.Name == PortName) ?? ports.FirstOrDefault(p => p.Name == PublicPortName) ?? (ports.Count == 1 ? ports[0] : null);
            foreach (var address in subset.Addresses ?? [])
            {
                (port is null ? unreadable : poll).Add(new GatewayAddress(UrlOf(address.Ip, port?.Port ?? 0), label));
            }

            foreach (var address in subset.NotReadyAddresses ?? [])
            {
                unreadable.Add(new GatewayAddress(UrlOf(address.Ip, port?.Port ?? 0), label));
            }
        }

        return new GatewaySet(poll, unreadable, [label]);
    }

    /// <summary>Both sets together.</summary>
    public GatewaySet With(GatewaySet other) =>
        new([.. Poll, .. other.Poll], [.. Unreadable, .. other.Unreadable], [.. Labels.Concat(other.Labels).Distinct()]);

    private static Uri UrlOf(string ip, int port) =>
        new($"http://{(IPAddress.TryParse(ip, out var a) && a.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip}]" : ip)}:{port}/");
}
