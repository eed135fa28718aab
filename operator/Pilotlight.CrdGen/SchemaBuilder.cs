using System.Collections;
using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.Json.Serialization;
using k8s.Models;
using Pilotlight.Api.Schema;

namespace Pilotlight.CrdGen;

/// <summary>
/// Turns C# API types into structural OpenAPI v3 schemas, the subset the API
/// server accepts in a CRD. SchemaNode nodes are ordered dictionaries so the YAML
/// comes out the same on every run.
/// </summary>
public sealed class SchemaBuilder(XmlDocs docs)
{
    // Kubernetes' own quantity grammar, as the API server checks it for built-in types.
    private const string QuantityPattern = @"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

    private readonly NullabilityInfoContext nullability = new();
    private readonly Stack<Type> path = new();

    /// <summary>The schema of an object type, its properties and their validation.</summary>
    public SchemaNode ForType(Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;

        if (underlying == typeof(string))
        {
            return new SchemaNode { ["type"] = "string" };
        }

        if (underlying == typeof(int) || underlying == typeof(long) || underlying == typeof(short))
        {
            return new SchemaNode { ["type"] = "integer", ["format"] = underlying == typeof(long) ? "int64" : "int32" };
        }

        if (underlying == typeof(double) || underlying == typeof(float) || underlying == typeof(decimal))
        {
            return new SchemaNode { ["type"] = "number" };
        }

        if (underlying == typeof(bool))
        {
            return new SchemaNode { ["type"] = "boolean" };
        }

        if (underlying == typeof(DateTime) || underlying == typeof(DateTimeOffset))
        {
            return new SchemaNode { ["type"] = "string", ["format"] = "date-time" };
        }

        if (underlying == typeof(byte[]))
        {
            return new SchemaNode { ["type"] = "string", ["format"] = "byte" };
        }

        if (underlying.IsEnum)
        {
            return new SchemaNode { ["type"] = "string", ["enum"] = EnumNames(underlying).ToList() };
        }

        if (underlying == typeof(Pilotlight.Api.V1Alpha1.GpuType))
        {
            // Only the syntax: which types exist is the platform's GPU catalog, checked by the webhook and the reconciler.
            return new SchemaNode
            {
                ["type"] = "string",
                ["maxLength"] = Pilotlight.Api.V1Alpha1.GpuType.MaxLength,
                ["pattern"] = Patterns.GpuType,
            };
        }

        if (underlying == typeof(ResourceQuantity))
        {
            return new SchemaNode
            {
                ["anyOf"] = new List<object> { new SchemaNode { ["type"] = "integer" }, new SchemaNode { ["type"] = "string" } },
                ["pattern"] = QuantityPattern,
                ["x-kubernetes-int-or-string"] = true,
            };
        }

        if (underlying == typeof(IntOrString))
        {
            return new SchemaNode
            {
                ["anyOf"] = new List<object> { new SchemaNode { ["type"] = "integer" }, new SchemaNode { ["type"] = "string" } },
                ["x-kubernetes-int-or-string"] = true,
            };
        }

        if (underlying == typeof(V1ObjectMeta) || underlying == typeof(object) || underlying.GetCustomAttribute<PreserveUnknownFieldsAttribute>() is not null)
        {
            // Embedded object metadata and free-form values keep whatever the user wrote.
            return new SchemaNode { ["type"] = "object", ["x-kubernetes-preserve-unknown-fields"] = true };
        }

        if (DictionaryValueType(underlying) is { } valueType)
        {
            return new SchemaNode { ["type"] = "object", ["additionalProperties"] = ForType(valueType) };
        }

        if (ListItemType(underlying) is { } itemType)
        {
            return new SchemaNode { ["type"] = "array", ["items"] = ForType(itemType) };
        }

        return ForObject(underlying);
    }

    private SchemaNode ForObject(Type type)
    {
        if (path.Contains(type))
        {
            // A recursive type has no finite structural schema; keep its content as written.
            return new SchemaNode { ["type"] = "object", ["x-kubernetes-preserve-unknown-fields"] = true };
        }

        path.Push(type);
        try
        {
            var schema = new SchemaNode();
            if (docs.Summary(type) is { } description)
            {
                schema["description"] = description;
            }

            schema["type"] = "object";
            var properties = new SchemaNode();
            var required = new List<object>();
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.GetCustomAttribute<JsonIgnoreAttribute>() is not null || property.GetIndexParameters().Length > 0)
                {
                    continue;
                }

                var name = property.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonCamelCase(property.Name);
                properties[name] = ForProperty(property);
                if (property.GetCustomAttribute<RequiredAttribute>() is not null || property.GetCustomAttribute<RequiredMemberAttribute>() is not null)
                {
                    required.Add(name);
                }
            }

            if (properties.Count > 0)
            {
                schema["properties"] = properties;
            }

            if (required.Count > 0)
            {
                schema["required"] = required;
            }

            var rules = type.GetCustomAttributes<ValidationRuleAttribute>().ToList();
            if (rules.Count > 0)
            {
                schema["x-kubernetes-validations"] = rules.Select(r => (object)new SchemaNode { ["rule"] = r.Rule, ["message"] = r.Message }).ToList();
            }

            return schema;
        }
        finally
        {
            path.Pop();
        }
    }

    private SchemaNode ForProperty(PropertyInfo property)
    {
        var schema = ForType(property.PropertyType);
        var isArray = schema.TryGetValue("type", out var t) && Equals(t, "array");

        if (docs.Summary(property) is { } description)
        {
            schema.Prepend("description", description);
        }

        if (property.GetCustomAttribute<RangeAttribute>() is { } range)
        {
            schema["minimum"] = range.Minimum;
            schema["maximum"] = range.Maximum;
        }

        if (property.GetCustomAttribute<MinLengthAttribute>() is { } minLength)
        {
            schema[isArray ? "minItems" : "minLength"] = minLength.Length;
        }

        if (property.GetCustomAttribute<MaxLengthAttribute>() is { } maxLength)
        {
            schema[isArray ? "maxItems" : "maxLength"] = maxLength.Length;
        }

        if (property.GetCustomAttribute<RegularExpressionAttribute>() is { } regex)
        {
            // On a list of strings the pattern constrains each item.
            (isArray ? (SchemaNode)schema["items"] : schema)["pattern"] = regex.Pattern;
        }

        if (property.GetCustomAttribute<DefaultValueAttribute>() is { } defaultValue)
        {
            schema["default"] = defaultValue.Value is Enum e ? EnumName(e.GetType(), e) : defaultValue.Value!;
        }
        else if (IsAlwaysPresentObject(property, schema))
        {
            // Lets the API server apply the defaults nested inside it even when the user omits it.
            schema["default"] = new SchemaNode();
        }

        if (property.GetCustomAttribute<PreserveUnknownFieldsAttribute>() is not null)
        {
            schema["x-kubernetes-preserve-unknown-fields"] = true;
        }

        if (property.GetCustomAttribute<ListTypeAttribute>() is { } listType)
        {
            schema["x-kubernetes-list-type"] = listType.ListType;
            if (listType.MapKeys.Count > 0)
            {
                schema["x-kubernetes-list-map-keys"] = listType.MapKeys.ToList<object>();

                // The API server insists that list-map keys are always present.
                var items = (SchemaNode)schema["items"];
                var required = items.TryGetValue("required", out var r) ? (List<object>)r : [];
                foreach (var key in listType.MapKeys.Where(k => !required.Contains(k)))
                {
                    required.Add(key);
                }

                items["required"] = required;
            }
        }

        return schema;
    }

    private bool IsAlwaysPresentObject(PropertyInfo property, SchemaNode schema) =>
        property.DeclaringType?.Namespace?.StartsWith("Pilotlight", StringComparison.Ordinal) == true
        && schema.TryGetValue("type", out var type) && Equals(type, "object") && schema.ContainsKey("properties")
        && property.GetCustomAttribute<RequiredAttribute>() is null
        && nullability.Create(property).ReadState == NullabilityState.NotNull;

    private static IEnumerable<object> EnumNames(Type enumType) =>
        Enum.GetValues(enumType).Cast<Enum>().Select(value => (object)EnumName(enumType, value));

    private static string EnumName(Type enumType, Enum value)
    {
        var field = enumType.GetField(value.ToString())!;
        return field.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? value.ToString();
    }

    private static Type? DictionaryValueType(Type type)
    {
        var dictionary = type.IsGenericType && type.GetGenericTypeDefinition() is var d
            && (d == typeof(IDictionary<,>) || d == typeof(IReadOnlyDictionary<,>) || d == typeof(Dictionary<,>))
            ? type
            : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>));
        return dictionary?.GetGenericArguments() is [var key, var value] && key == typeof(string) ? value : null;
    }

    private static Type? ListItemType(Type type)
    {
        if (type.IsArray)
        {
            return type.GetElementType();
        }

        if (type == typeof(string) || !typeof(IEnumerable).IsAssignableFrom(type))
        {
            return null;
        }

        var enumerable = type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IEnumerable<>)
            ? type
            : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        return enumerable?.GetGenericArguments()[0];
    }

    private static string JsonCamelCase(string name) => char.ToLowerInvariant(name[0]) + name[1..];
}
