using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pilotlight.Api.V1Alpha1;

/// <summary>
/// A GPU model by its friendly name, such as <c>H100</c> or <c>A100-80GB</c>: a string, not a closed set. Which
/// names exist, and which GPU Feature Discovery product labels each matches, is the platform's GPU catalog (operator
/// configuration, the chart's <c>gpuTypes</c>), so a cluster can offer any GPU GFD reports without a new API version.
/// The CRD schema checks only the syntax (<see cref="Schema.Patterns.GpuType"/>); the operator checks the name against
/// its catalog, at admission and in the reconciler. Names compare case-insensitively, as the catalog matches them.
/// </summary>
/// <remarks>
/// A value type rather than a bare string so that call sites read as GPU types and the well-known names stay
/// discoverable as static members; on the wire it is a plain JSON string, so manifests written against the former
/// enum apply unchanged.
/// </remarks>
[JsonConverter(typeof(GpuTypeJsonConverter))]
public readonly struct GpuType : IEquatable<GpuType>
{
    /// <summary>The longest name: a Kubernetes label value's limit, since the name ends up in labels and metrics.</summary>
    public const int MaxLength = 63;

    private readonly string? _name;

    /// <summary>A GPU type by name, as written; whether the platform offers it is the catalog's to say.</summary>
    public GpuType(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _name = name;
    }

    /// <summary>The name as written, e.g. <c>A100-80GB</c>; empty for the default value.</summary>
    public string Name => _name ?? "";

    /// <summary>NVIDIA T4 (16 GB).</summary>
    public static GpuType T4 { get; } = new("T4");

    /// <summary>NVIDIA L4 (24 GB).</summary>
    public static GpuType L4 { get; } = new("L4");

    /// <summary>NVIDIA A10 (24 GB).</summary>
    public static GpuType A10 { get; } = new("A10");

    /// <summary>NVIDIA L40S (48 GB).</summary>
    public static GpuType L40S { get; } = new("L40S");

    /// <summary>NVIDIA A100 40 GB.</summary>
    public static GpuType A100_40GB { get; } = new("A100-40GB");

    /// <summary>NVIDIA A100 80 GB.</summary>
    public static GpuType A100_80GB { get; } = new("A100-80GB");

    /// <summary>NVIDIA H100 (80 GB).</summary>
    public static GpuType H100 { get; } = new("H100");

    /// <summary>NVIDIA H200 (141 GB).</summary>
    public static GpuType H200 { get; } = new("H200");

    /// <summary>NVIDIA B200 (192 GB).</summary>
    public static GpuType B200 { get; } = new("B200");

    /// <summary>NVIDIA V100 (16 or 32 GB).</summary>
    public static GpuType V100 { get; } = new("V100");

    /// <summary>NVIDIA A40 (48 GB).</summary>
    public static GpuType A40 { get; } = new("A40");

    /// <summary>NVIDIA L40 (48 GB).</summary>
    public static GpuType L40 { get; } = new("L40");

    /// <summary>NVIDIA RTX 6000 Ada Generation (48 GB).</summary>
    public static GpuType Rtx6000Ada { get; } = new("RTX-6000-Ada");

    /// <summary>NVIDIA GH200 Grace Hopper Superchip.</summary>
    public static GpuType GH200 { get; } = new("GH200");

    /// <summary>NVIDIA GB200 Grace Blackwell Superchip.</summary>
    public static GpuType GB200 { get; } = new("GB200");

    /// <summary>
    /// Whether <paramref name="name"/> has the syntax of a GPU type (<see cref="Schema.Patterns.GpuType"/>, at most
    /// <see cref="MaxLength"/> characters): letters, digits, '-', '_' and '.', beginning and ending with a letter or
    /// digit, so it is a valid label value.
    /// </summary>
    /// <remarks>A scanner, not a regular expression: the runtime shim's NativeAOT image carries this assembly.</remarks>
    public static bool IsValidName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength || !char.IsAsciiLetterOrDigit(name[0]) || !char.IsAsciiLetterOrDigit(name[^1]))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc />
    public bool Equals(GpuType other) => string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is GpuType other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.OrdinalIgnoreCase.GetHashCode(Name);

    /// <summary>The name, as it appears in YAML.</summary>
    public override string ToString() => Name;

    /// <summary>Equal names, ignoring case.</summary>
    public static bool operator ==(GpuType left, GpuType right) => left.Equals(right);

    /// <summary>Different names, ignoring case.</summary>
    public static bool operator !=(GpuType left, GpuType right) => !left.Equals(right);
}

/// <summary>Reads and writes a <see cref="GpuType"/> as a JSON string.</summary>
public sealed class GpuTypeJsonConverter : JsonConverter<GpuType>
{
    /// <inheritdoc />
    public override GpuType Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 } name
            ? new GpuType(name)
            : throw new JsonException("a GPU type is a non-empty string");

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, GpuType value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(value.Name);
    }
}
