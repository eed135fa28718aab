namespace Pilotlight.Api.Schema;

/// <summary>Regular expressions the CRD schemas validate strings with.</summary>
public static class Patterns
{
    /// <summary>
    /// A Go-style duration made of whole or decimal amounts of ms, s, m or h,
    /// such as <c>60s</c>, <c>5m</c>, <c>1h30m</c> or <c>250ms</c>.
    /// </summary>
    public const string Duration = @"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

    /// <summary>A whole percentage such as <c>25%</c>: the string form of an int-or-percent field.</summary>
    public const string Percentage = @"^[0-9]+%$";

    /// <summary>An HTTP path beginning with a slash.</summary>
    public const string HttpPath = @"^/[^\s]*$";

    /// <summary>
    /// A standard five-field cron expression (minute hour day-of-month month
    /// day-of-week) or one of the @hourly/@daily/@weekly/@monthly/@yearly macros.
    /// </summary>
    public const string Cron = @"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$";

    /// <summary>An IPv4 or IPv6 CIDR block such as <c>10.0.0.0/8</c> or <c>2001:db8::/32</c>.</summary>
    public const string Cidr = @"^(([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])|[0-9a-fA-F:]+/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$";

    /// <summary>A DNS-1123 label, the shape of names such as runtime classes and service accounts.</summary>
    public const string DnsSubdomain = @"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

    /// <summary>
    /// A GPU type's name (<c>H100</c>, <c>A100-80GB</c>, <c>RTX-6000-Ada</c>): the syntax of a label value. Which
    /// names exist is the platform's GPU catalog; <see cref="V1Alpha1.GpuType.IsValidName"/> accepts the same language.
    /// </summary>
    public const string GpuType = @"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
}
