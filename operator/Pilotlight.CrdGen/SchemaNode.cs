namespace Pilotlight.CrdGen;

/// <summary>An ordered JSON-schema node, serialised to YAML key by key in insertion order.</summary>
public sealed class SchemaNode : List<KeyValuePair<string, object>>
{
    /// <summary>Gets or sets a key, keeping the position of an existing one.</summary>
    public object this[string key]
    {
        get => this.First(pair => pair.Key == key).Value;
        set
        {
            var index = FindIndex(pair => pair.Key == key);
            if (index >= 0)
            {
                this[index] = new(key, value);
            }
            else
            {
                Add(new(key, value));
            }
        }
    }

    /// <summary>True when the node has the key.</summary>
    public bool ContainsKey(string key) => Exists(pair => pair.Key == key);

    /// <summary>Reads a key when present.</summary>
    public bool TryGetValue(string key, out object value)
    {
        var index = FindIndex(pair => pair.Key == key);
        value = index >= 0 ? this[index].Value : null!;
        return index >= 0;
    }

    /// <summary>Puts a key first, as descriptions read best at the top of a node.</summary>
    public void Prepend(string key, object value)
    {
        RemoveAll(pair => pair.Key == key);
        Insert(0, new(key, value));
    }
}
