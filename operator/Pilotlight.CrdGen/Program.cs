using Pilotlight.Api.V1Alpha1;
using Pilotlight.CrdGen;

// Usage: Pilotlight.CrdGen <output-dir> [--check]
// Writes one CRD per custom resource type; with --check, writes nothing and
// exits 1 when a file in the directory differs from what the types produce.
if (args.Length is < 1 or > 2 || (args.Length == 2 && args[1] != "--check"))
{
    Console.Error.WriteLine("usage: Pilotlight.CrdGen <output-dir> [--check]");
    return 2;
}

var directory = args[0];
var check = args.Length == 2;
var crds = CrdBuilder.BuildAll(typeof(GpuFunction).Assembly);
var stale = new List<string>();
Directory.CreateDirectory(directory);
foreach (var crd in crds)
{
    var file = Path.Combine(directory, crd.FileName);
    var current = File.Exists(file) ? File.ReadAllText(file) : null;
    if (current == crd.Yaml)
    {
        continue;
    }

    stale.Add(file);
    if (!check)
    {
        File.WriteAllText(file, crd.Yaml);
        Console.WriteLine($"wrote {file}");
    }
}

if (check && stale.Count > 0)
{
    Console.Error.WriteLine($"stale CRDs (run `make crds`): {string.Join(", ", stale)}");
    return 1;
}

return 0;
