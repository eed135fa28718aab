using System.Text;
using Grpc.Core;

namespace Pilotlight.SampleModelServer;

/// <summary>
/// The sample server's gRPC contract, <c>pilotlight.sample.Echo/Say</c>: one unary method whose request and
/// reply are UTF-8 strings. Written out by hand (no .proto, no protobuf) so that the server, the tests and the
/// benchmarks share it by linking this file; the wire format is gRPC's all the same.
/// </summary>
public static class SampleEcho
{
    /// <summary>The service's full name.</summary>
    public const string Service = "pilotlight.sample.Echo";

    /// <summary>Trailer the server adds to every reply: the pod that answered.</summary>
    public const string PodTrailer = "x-sample-pod";

    private static readonly Marshaller<string> Utf8 = Marshallers.Create(Encoding.UTF8.GetBytes, Encoding.UTF8.GetString);

    /// <summary>Say: answers "{pod}: {request}".</summary>
    public static readonly Method<string, string> Say = new(MethodType.Unary, Service, "Say", Utf8, Utf8);
}
