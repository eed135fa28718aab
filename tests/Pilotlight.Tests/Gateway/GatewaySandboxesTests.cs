using k8s.Models;
using Pilotlight.Api.V1Alpha1;
using Pilotlight.Contracts;
using Pilotlight.Gateway;

namespace Pilotlight.Tests.Gateway;

/// <summary>What the gateway caches of a Sandbox: every field it reads, nothing else.</summary>
public sealed class GatewaySandboxesTests
{
    /// <summary>The status fields the gateway reads (where to forward, and whether the sandbox has finished).</summary>
    private static readonly string[] Read = [nameof(SandboxStatus.PodName), nameof(SandboxStatus.Conditions)];

    /// <summary>The status fields only the operator and users read.</summary>
    private static readonly string[] NotRead =
    [
        nameof(SandboxStatus.ObservedGeneration), nameof(SandboxStatus.StartTime), nameof(SandboxStatus.ExpiresAt), nameof(SandboxStatus.Usage),
    ];

    private static Sandbox Whole(bool finished = true) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = "py", NamespaceProperty = "ns", Uid = "uid-1", ResourceVersion = "42", Generation = 2,
            DeletionTimestamp = new DateTime(2026, 12, 3, 10, 0, 0, DateTimeKind.Utc),
            Labels = new Dictionary<string, string> { ["team"] = "a" },
            Annotations = new Dictionary<string, string> { ["kubectl.kubernetes.io/last-applied-configuration"] = new string('x', 2000) },
            ManagedFields = [new V1ManagedFieldsEntry { Manager = "kubectl" }],
        },
        Spec = new SandboxSpec { Image = "registry.example/python:3.12", Command = ["python", "-c", "print(1)"] },
        Status = new SandboxStatus
        {
            ObservedGeneration = 2,
            PodName = "py-abcde",
            StartTime = new DateTime(2026, 12, 3, 9, 0, 0, DateTimeKind.Utc),
            ExpiresAt = new DateTime(2026, 12, 3, 11, 0, 0, DateTimeKind.Utc),
            Usage = new UsageTotals { GpuSeconds = 3 },
            Conditions =
            [
                new V1Condition { Type = SandboxConditions.Ready, Status = "False", Reason = "Finished", Message = "done" },
                new V1Condition { Type = SandboxConditions.Finished, Status = finished ? "True" : "False", Reason = finished ? "Completed" : "Running", Message = "exit 0" },
            ],
        },
    };

    [Test]
    public void A_cached_sandbox_keeps_every_field_the_gateway_reads()
    {
        var whole = Whole();

        var kept = (Sandbox)GatewaySandboxes.KeepRoutingFields(Whole());

        Assert.That((kept.Metadata.Name, kept.Metadata.NamespaceProperty, kept.Metadata.Uid, kept.Metadata.ResourceVersion, kept.Metadata.Generation,
            kept.Metadata.DeletionTimestamp), Is.EqualTo((whole.Metadata.Name, whole.Metadata.NamespaceProperty, whole.Metadata.Uid,
            whole.Metadata.ResourceVersion, whole.Metadata.Generation, whole.Metadata.DeletionTimestamp)));
        Assert.That(kept.Status!.PodName, Is.EqualTo("py-abcde"));
        var finished = kept.Status.Conditions!.Single();
        Assert.That((finished.Type, finished.Status, finished.Reason), Is.EqualTo((SandboxConditions.Finished, "True", "Completed")));
        Assert.That((kept.ApiVersion, kept.Kind), Is.EqualTo((whole.ApiVersion, whole.Kind)));
    }

    [Test]
    public void A_running_sandbox_keeps_its_finished_condition_as_false()
    {
        var kept = (Sandbox)GatewaySandboxes.KeepRoutingFields(Whole(finished: false));

        Assert.That(kept.Status!.Conditions!.Single().Status, Is.EqualTo("False"));
    }

    [Test]
    public void A_cached_sandbox_drops_its_spec_metadata_usage_and_other_conditions()
    {
        var kept = (Sandbox)GatewaySandboxes.KeepRoutingFields(Whole());

        Assert.That((kept.Metadata.Labels, kept.Metadata.Annotations, kept.Metadata.ManagedFields), Is.EqualTo(((object?)null, (object?)null, (object?)null)));
        Assert.That((kept.Spec.Image, kept.Spec.Command), Is.EqualTo(("", (object?)null)));
        Assert.That((kept.Status!.Usage, kept.Status.StartTime, kept.Status.ExpiresAt, kept.Status.ObservedGeneration),
            Is.EqualTo(((object?)null, (object?)null, (object?)null, (object?)null)));
        Assert.That(kept.Status.Conditions!.Select(c => c.Type), Has.None.EqualTo(SandboxConditions.Ready));
        Assert.That(kept.Status.Conditions!.Single().Message, Is.Null);
    }

    [Test]
    public void A_sandbox_without_status_is_kept_without_one()
    {
        var fresh = Whole() with { Status = null };

        Assert.That(((Sandbox)GatewaySandboxes.KeepRoutingFields(fresh)).Status, Is.Null);
    }

    [Test]
    public void Every_status_field_is_either_kept_or_known_to_be_unread_by_the_gateway()
    {
        // A new status field fails this until someone decides whether the gateway reads it (and keeps it if so).
        Assert.That(typeof(SandboxStatus).GetProperties().Select(p => p.Name), Is.EquivalentTo(Read.Concat(NotRead)));
    }
}
