using Microsoft.AspNetCore.Http;

namespace Pilotlight.Gateway;

/// <summary>What a request's Host says under host-based routing.</summary>
internal enum HostMatch
{
    /// <summary>Not under the domain: the request is routed by its path.</summary>
    Elsewhere,

    /// <summary><c>{function}.{namespace}.{domain}</c>: routed to that function, path unchanged.</summary>
    Function,

    /// <summary>Under the domain but not of that shape (the domain itself, one label, three): no such function.</summary>
    Unknown,
}

/// <summary>
/// Host-based routing, as Knative names its routes: <c>{function}.{namespace}.{domain}</c> reaches that function with
/// the request's path as it is, so every function has a web origin of its own (cookies, storage and CORS of one
/// tenant's function are not another's). Pure: the host and the domain in, the match out.
/// </summary>
internal static class HostRouting
{
    /// <summary>Matches <paramref name="host"/> (port ignored, any case) against <paramref name="domain"/>.</summary>
    public static HostMatch Match(HostString host, string domain, out string ns, out string function)
    {
        ns = function = "";
        var name = host.Host.TrimEnd('.');
        domain = domain.Trim('.');
        if (name.Equals(domain, StringComparison.OrdinalIgnoreCase))
        {
            return HostMatch.Unknown;
        }

        if (name.Length <= domain.Length + 1 || !name.EndsWith(domain, StringComparison.OrdinalIgnoreCase) || name[^(domain.Length + 1)] != '.')
        {
            return HostMatch.Elsewhere;
        }

        var labels = name[..^(domain.Length + 1)].ToLowerInvariant().Split('.');
        if (labels is not [var fn, var space] || !IsLabel(fn) || !IsLabel(space))
        {
            return HostMatch.Unknown;
        }

        (function, ns) = (fn, space);
        return HostMatch.Function;
    }

    /// <summary>An RFC 1123 label, as namespace and GpuFunction names are (the Service a function gets needs one).</summary>
    private static bool IsLabel(string label) =>
        label.Length is > 0 and <= 63 && char.IsAsciiLetterOrDigit(label[0]) && char.IsAsciiLetterOrDigit(label[^1])
        && label.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');
}
