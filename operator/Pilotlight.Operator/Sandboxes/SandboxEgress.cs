using System.Globalization;
using System.Net;
using k8s.Models;

namespace Pilotlight.Operator.Sandboxes;

/// <summary>
/// Where a sandbox's traffic may go. What the user allows (<c>network.allowCidrs</c>) is checked against the
/// platform's cap (<see cref="SandboxOptions.AllowedEgress"/>), and every allowed range gets the platform's floor
/// (<see cref="SandboxOptions.EgressFloor"/>) as <c>except</c> entries, so "0.0.0.0/0", the obvious way to allow a
/// package index, never reaches the cloud's metadata service, the cluster's pods or the API server.
/// </summary>
public static class SandboxEgress
{
    /// <summary>Why the asked ranges cannot be allowed, one problem per range, each naming its field.</summary>
    public static IReadOnlyList<string> Problems(IReadOnlyList<string>? asked, SandboxOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        var allowed = options.AllowedEgress.Select(Parse).OfType<IPNetwork>().ToList();
        var floor = options.EgressFloor.Select(Parse).OfType<IPNetwork>().ToList();
        for (var i = 0; i < (asked?.Count ?? 0); i++)
        {
            var field = $"spec.network.allowCidrs[{i}]";
            if (Parse(asked![i]) is not { } range)
            {
                problems.Add($"{field}: '{asked[i]}' is not a CIDR range such as 203.0.113.0/24");
                continue;
            }

            if (!allowed.Any(a => Within(range, a)))
            {
                problems.Add($"{field}: {asked[i]} is wider than this platform allows sandboxes to reach (allowed: {string.Join(", ", options.AllowedEgress)})");
            }
            else if (floor.Where(f => Within(range, f)).Select(f => (IPNetwork?)f).FirstOrDefault() is { } f)
            {
                problems.Add($"{field}: {asked[i]} lies in {Format(f)}, which no sandbox may reach");
            }
        }

        return problems;
    }

    /// <summary>
    /// The policy peers for <paramref name="asked"/>: each range as an ipBlock whose <c>except</c> lists the floor
    /// ranges inside it. A range wholly inside the floor, or unparseable, yields nothing (validation reports it).
    /// </summary>
    public static IReadOnlyList<V1NetworkPolicyPeer> Peers(IReadOnlyList<string> asked, IReadOnlyList<string> floorRanges)
    {
        ArgumentNullException.ThrowIfNull(asked);
        ArgumentNullException.ThrowIfNull(floorRanges);
        var floor = floorRanges.Select(Parse).OfType<IPNetwork>().ToList();
        var peers = new List<V1NetworkPolicyPeer>();
        foreach (var text in asked)
        {
            if (Parse(text) is not { } range || floor.Any(f => Within(range, f)))
            {
                continue;
            }

            // A floor range wider than the asked one and holding it was refused above; one that overlaps it must lie inside
            // it (CIDR ranges nest or are disjoint), so it is a strict subset, as the API requires of except entries.
            var except = floor.Where(f => Within(f, range)).Select(Format).Distinct().ToList();
            peers.Add(new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = Format(range), Except = except.Count == 0 ? null : except } });
        }

        return peers;
    }

    /// <summary>Parses <c>address/prefix</c>, clearing host bits (the API server accepts 10.1.2.3/8 as 10.0.0.0/8); null if malformed.</summary>
    public static IPNetwork? Parse(string? text)
    {
        var slash = text?.IndexOf('/', StringComparison.Ordinal) ?? -1;
        if (slash < 0
            || !IPAddress.TryParse(text![..slash], out var address)
            || !int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix))
        {
            return null;
        }

        var bytes = address.GetAddressBytes();
        if (prefix > bytes.Length * 8)
        {
            return null;
        }

        for (var bit = prefix; bit < bytes.Length * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return new IPNetwork(new IPAddress(bytes), prefix);
    }

    /// <summary>Whether <paramref name="inner"/> lies wholly within <paramref name="outer"/> (the same family).</summary>
    public static bool Within(IPNetwork inner, IPNetwork outer) =>
        inner.BaseAddress.AddressFamily == outer.BaseAddress.AddressFamily
        && inner.PrefixLength >= outer.PrefixLength
        && outer.Contains(inner.BaseAddress);

    private static string Format(IPNetwork network) => network.ToString();
}
