using System.Text.Json.Serialization;

namespace Pilotlight.Api.V1Alpha1;

/// <summary>
/// A GPU model by its friendly name. Which GPU Feature Discovery product labels
/// each name matches is operator configuration, not part of the API.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<GpuType>))]
public enum GpuType
{
    /// <summary>NVIDIA T4 (16 GB).</summary>
    T4,

    /// <summary>NVIDIA L4 (24 GB).</summary>
    L4,

    /// <summary>NVIDIA A10 (24 GB).</summary>
    A10,

    /// <summary>NVIDIA L40S (48 GB).</summary>
    L40S,

    /// <summary>NVIDIA A100 40 GB.</summary>
    [JsonStringEnumMemberName("A100-40GB")]
    A100_40GB,

    /// <summary>NVIDIA A100 80 GB.</summary>
    [JsonStringEnumMemberName("A100-80GB")]
    A100_80GB,

    /// <summary>NVIDIA H100 (80 GB).</summary>
    H100,

    /// <summary>NVIDIA H200 (141 GB).</summary>
    H200,

    /// <summary>NVIDIA B200 (192 GB).</summary>
    B200,
}

/// <summary>Names of <see cref="GpuType"/> values as they appear in YAML and labels.</summary>
public static class GpuTypeNames
{
    /// <summary>The wire name of a GPU type, e.g. <c>A100-80GB</c>.</summary>
    public static string ToWireName(this GpuType type) => type switch
    {
        GpuType.A100_40GB => "A100-40GB",
        GpuType.A100_80GB => "A100-80GB",
        _ => type.ToString(),
    };

    /// <summary>Parses a wire name; false for names the API does not define.</summary>
    public static bool TryParse(string name, out GpuType type)
    {
        foreach (var candidate in Enum.GetValues<GpuType>())
        {
            if (string.Equals(candidate.ToWireName(), name, StringComparison.OrdinalIgnoreCase))
            {
                type = candidate;
                return true;
            }
        }

        type = default;
        return false;
    }
}
