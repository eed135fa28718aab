using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Pilotlight.Client.Deploy;

/// <summary>
/// Reads Kubernetes manifests: YAML or JSON files, several documents each, directories recursively (their
/// <c>.yaml</c>, <c>.yml</c> and <c>.json</c> files in path order), and <c>kind: List</c> expanded into its items.
/// YAML is turned into JSON by the YAML 1.2 core schema (so <c>on</c>/<c>yes</c> stay strings), with merge keys.
/// </summary>
public static class ManifestReader
{
    private static readonly string[] Extensions = [".yaml", ".yml", ".json"];

    /// <summary>The objects of every file or directory in <paramref name="paths"/> (<c>-</c> is standard input), in order.</summary>
    public static IReadOnlyList<ManifestObject> Read(IEnumerable<string> paths, TextReader? standardInput = null)
    {
        var objects = new List<ManifestObject>();
        foreach (var path in paths)
        {
            if (path == "-")
            {
                objects.AddRange(Parse((standardInput ?? Console.In).ReadToEnd(), "<stdin>"));
            }
            else if (Directory.Exists(path))
            {
                var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal)
                    .ToList();
                if (files.Count == 0)
                {
                    throw new PilotlightClientException($"No .yaml, .yml or .json files under {path}.", "Point -f at a manifest file or a directory that holds some.");
                }

                foreach (var file in files)
                {
                    objects.AddRange(Parse(File.ReadAllText(file), file));
                }
            }
            else if (File.Exists(path))
            {
                objects.AddRange(Parse(File.ReadAllText(path), path));
            }
            else
            {
                throw new PilotlightClientException($"No file or directory {path}.", "Check the path given to -f.");
            }
        }

        return objects;
    }

    /// <summary>The objects in one file's text; <paramref name="source"/> names it in messages.</summary>
    public static IReadOnlyList<ManifestObject> Parse(string text, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new PilotlightClientException(
                $"{source}: not valid YAML at line {e.Start.Line}, column {e.Start.Column}: {Innermost(e).Message}",
                "Check the indentation and quoting there (a linter such as yamllint points at the spot).", e);
        }

        var objects = new List<ManifestObject>();
        for (var i = 0; i < stream.Documents.Count; i++)
        {
            var where = stream.Documents.Count > 1 ? $"{source}#{i + 1}" : source;
            var node = ToJson(stream.Documents[i].RootNode, where);
            if (node is null)
            {
                // An empty document (a trailing ---, or only comments).
                continue;
            }

            if (node is not JsonObject obj)
            {
                throw new PilotlightClientException($"{where}: a manifest document must be a mapping (apiVersion, kind, metadata, ...), not a {node.GetValueKind()}.",
                    "Each document separated by --- holds one Kubernetes object.");
            }

            objects.AddRange(Expand(obj, where));
        }

        return objects;
    }

    private static IEnumerable<ManifestObject> Expand(JsonObject obj, string where)
    {
        if (obj["kind"]?.GetValue<string>() is "List" && obj["items"] is JsonArray items)
        {
            for (var i = 0; i < items.Count; i++)
            {
                if (items[i] is JsonObject item)
                {
                    foreach (var o in Expand((JsonObject)item.DeepClone(), $"{where} items[{i}]"))
                    {
                        yield return o;
                    }
                }
            }

            yield break;
        }

        var manifest = new ManifestObject(obj, where);
        if (manifest.ApiVersion.Length == 0 || manifest.Kind.Length == 0)
        {
            throw new PilotlightClientException($"{where}: the object has no {(manifest.ApiVersion.Length == 0 ? "apiVersion" : "kind")}.",
                "Every object needs apiVersion and kind, e.g. apiVersion: pilotlight.dev/v1alpha1 and kind: GpuFunction.");
        }

        if (manifest.Name.Length == 0)
        {
            throw new PilotlightClientException($"{where}: the {manifest.Kind} has no metadata.name.",
                "Server-side apply needs a name (generateName is not enough); set metadata.name.");
        }

        yield return manifest;
    }

    private static Exception Innermost(Exception e) => e.InnerException is YamlException inner ? Innermost(inner) : e;

    /// <summary>A YAML node as JSON; null for an empty document or a null scalar.</summary>
    internal static JsonNode? ToJson(YamlNode? node, string where) => node switch
    {
        null => null,
        YamlScalarNode scalar => Scalar(scalar),
        YamlSequenceNode sequence => new JsonArray([.. sequence.Children.Select(c => ToJson(c, where))]),
        YamlMappingNode mapping => Mapping(mapping, where),
        _ => throw new PilotlightClientException($"{where}: unsupported YAML node at line {node.Start.Line}.", null),
    };

    private static JsonObject Mapping(YamlMappingNode mapping, string where)
    {
        var result = new JsonObject();
        // Merge keys (<<: *base) first, so the mapping's own keys override them.
        foreach (var (key, value) in mapping.Children.Where(c => IsMergeKey(c.Key)))
        {
            var sources = value is YamlSequenceNode many ? many.Children : [value];
            foreach (var source in sources)
            {
                if (ToJson(source, where) is JsonObject merged)
                {
                    foreach (var (k, v) in merged)
                    {
                        result[k] = v?.DeepClone();
                    }
                }
            }
        }

        foreach (var (key, value) in mapping.Children.Where(c => !IsMergeKey(c.Key)))
        {
            if (key is not YamlScalarNode { Value: { } name })
            {
                throw new PilotlightClientException($"{where}: line {key.Start.Line}: a mapping key must be a plain value.", null);
            }

            result[name] = ToJson(value, where);
        }

        return result;
    }

    private static bool IsMergeKey(YamlNode key) => key is YamlScalarNode { Value: "<<", Style: ScalarStyle.Plain };

    /// <summary>A scalar by the YAML 1.2 core schema: quoted and block scalars are strings; plain ones may be null, bool, int or float.</summary>
    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        var tag = scalar.Tag.IsEmpty ? null : scalar.Tag.Value;
        if (tag is "tag:yaml.org,2002:str" || (tag is null && scalar.Style != ScalarStyle.Plain))
        {
            return JsonValue.Create(text);
        }

        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }

        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return JsonValue.Create(integer);
        }

        if (text.StartsWith("0x", StringComparison.Ordinal) && long.TryParse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hex))
        {
            return JsonValue.Create(hex);
        }

        if (text.StartsWith("0o", StringComparison.Ordinal) && text.Length > 2 && text[2..].All(c => c is >= '0' and <= '7'))
        {
            return JsonValue.Create(Convert.ToInt64(text[2..], 8));
        }

        if (IsFloat(text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number))
        {
            return JsonValue.Create(number);
        }

        // Anything else, .inf and .nan included (JSON has no such numbers), is a string.
        return JsonValue.Create(text);
    }

    /// <summary>The core schema's float form: [-+]? ( . digits | digits [ . digits* ] ) ( [eE] [-+]? digits )?.</summary>
    private static bool IsFloat(string text)
    {
        var i = 0;
        if (i < text.Length && text[i] is '-' or '+')
        {
            i++;
        }

        var digits = 0;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            i++;
            digits++;
        }

        if (i < text.Length && text[i] == '.')
        {
            i++;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                i++;
                digits++;
            }
        }

        if (digits == 0)
        {
            return false;
        }

        if (i < text.Length && text[i] is 'e' or 'E')
        {
            i++;
            if (i < text.Length && text[i] is '-' or '+')
            {
                i++;
            }

            var exponent = 0;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                i++;
                exponent++;
            }

            if (exponent == 0)
            {
                return false;
            }
        }

        return i == text.Length;
    }
}
