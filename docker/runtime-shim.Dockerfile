# syntax=docker/dockerfile:1
# pilotlight/runtime-shim: the sidecar in front of every function's server
# (runtime-shim/Pilotlight.RuntimeShim): concurrency limit, readiness, drain;
# configured by the PILOTLIGHT_* variables the operator sets on the container.
# The same executable is the sandbox agent, which an init container copies into
# a Sandbox's own image; so it is published with NativeAOT (no .NET runtime
# needed, only glibc) and the runtime stage is the runtime-deps image.
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/runtime-shim.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
ARG DOTNET_IMAGES
ARG DOTNET_VERSION=10.0

FROM ${DOTNET_IMAGES}/sdk:${DOTNET_VERSION} AS build
# The NativeAOT toolchain: a C toolchain to link with, and zlib.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
ARG TARGETARCH
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY operator/Pilotlight.Api/Pilotlight.Api.csproj operator/Pilotlight.Api/
COPY operator/Pilotlight.Nvml/Pilotlight.Nvml.csproj operator/Pilotlight.Nvml/
COPY runtime-shim/Pilotlight.RuntimeShim/Pilotlight.RuntimeShim.csproj runtime-shim/Pilotlight.RuntimeShim/
# NativeAOT compiles for one runtime identifier: the image's architecture.
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo linux-x64 ;; arm64) echo linux-arm64 ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rid \
 && dotnet restore runtime-shim/Pilotlight.RuntimeShim/Pilotlight.RuntimeShim.csproj -r "$(cat /rid)" -p:PublishAot=true
COPY operator/Pilotlight.Api/ operator/Pilotlight.Api/
COPY operator/Pilotlight.Nvml/ operator/Pilotlight.Nvml/
COPY runtime-shim/Pilotlight.RuntimeShim/ runtime-shim/Pilotlight.RuntimeShim/
RUN dotnet publish runtime-shim/Pilotlight.RuntimeShim/Pilotlight.RuntimeShim.csproj \
      -c Release --no-restore -r "$(cat /rid)" -p:PublishAot=true -p:StripSymbols=true -o /out \
 && install -m 0755 /out/Pilotlight.RuntimeShim /pilotlight-shim

FROM ${DOTNET_IMAGES}/runtime-deps:${DOTNET_VERSION}
COPY --from=build /pilotlight-shim /usr/local/bin/pilotlight-shim
USER 65532:65532
EXPOSE 8099
ENTRYPOINT ["/usr/local/bin/pilotlight-shim"]
