using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Pilotlight.CrdGen;

/// <summary>
/// The XML documentation of the API assembly, so a field's description in the CRD
/// is the same sentence as its doc comment, written once; and of KubernetesClient,
/// whose models carry the upstream OpenAPI descriptions, so that the core types a
/// spec embeds (env, volumes, tolerations...) are described to <c>kubectl explain</c>
/// as they are for a Deployment.
/// </summary>
public sealed partial class XmlDocs
{
    private readonly Dictionary<string, string> summaries;

    private XmlDocs(Dictionary<string, string> summaries) => this.summaries = summaries;

    /// <summary>Loads the documentation files that sit beside the assemblies; a member documented twice keeps the first.</summary>
    public static XmlDocs For(params Assembly[] assemblies)
    {
        var summaries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var assembly in assemblies)
        {
            var file = Path.ChangeExtension(assembly.Location, ".xml");
            if (!File.Exists(file))
            {
                throw new FileNotFoundException(
                    $"XML documentation for {assembly.GetName().Name} not found; build it with GenerateDocumentationFile (or, for a package, "
                    + "CopyDocumentationFilesFromPackages).", file);
            }

            foreach (var member in XDocument.Load(file).Descendants("member").Where(m => m.Element("summary") is not null))
            {
                summaries.TryAdd((string)member.Attribute("name")!, Flatten(member.Element("summary")!));
            }
        }

        return new XmlDocs(summaries);
    }

    /// <summary>The summary of a type, or null when it has none.</summary>
    public string? Summary(Type type) => summaries.GetValueOrDefault("T:" + type.FullName);

    /// <summary>The summary of a property, or null when it has none.</summary>
    public string? Summary(PropertyInfo property) =>
        summaries.GetValueOrDefault($"P:{property.DeclaringType!.FullName}.{property.Name}");

    private static string Flatten(XElement summary)
    {
        var text = string.Concat(summary.Nodes().Select(node => node switch
        {
            XText t => t.Value,
            XElement { Name.LocalName: "c" } c => c.Value,
            XElement e when e.Attribute("cref") is { } cref => cref.Value[(cref.Value.LastIndexOf('.') + 1)..],
            XElement e => e.Value,
            _ => "",
        }));
        return Whitespace().Replace(text, " ").Trim();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
