namespace Pilotlight.Api.V1Alpha1;

/// <summary>The API group and version of Pilotlight's resources.</summary>
public static class Group
{
    /// <summary>API group.</summary>
    public const string Name = "pilotlight.dev";

    /// <summary>API version within the group.</summary>
    public const string Version = "v1alpha1";

    /// <summary>The apiVersion field of every object of this version.</summary>
    public const string ApiVersion = Name + "/" + Version;
}
