using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Pilotlight.CrdGen;

/// <summary>
/// The XML documentation of the API assembly, so a field's description in the CRD
/// is the same sentence as its doc comment, written once.
/// </summary>
public sealed partial class XmlDocs
{
    private readonly Dictionary<string, string> summaries;

    private XmlDocs(Dictionary<string, string> summaries) => this.summaries = summaries;

    /// <summary>Loads the documentation file that sits beside an assembly.</summary>
    public static XmlDocs For(Assembly assembly)
    {
        var file = Path.ChangeExtension(assembly.Location, ".xml");
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"XML documentation for {assembly.GetName().Name} not found; build it with GenerateDocumentationFile.", file);
        }

        var members = XDocument.Load(file).Descendants("member");
        return new XmlDocs(members
            .Where(m => m.Element("summary") is not null)
            .ToDictionary(m => (string)m.Attribute("name")!, m => Flatten(m.Element("summary")!)));
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
