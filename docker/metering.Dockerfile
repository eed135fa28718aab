# syntax=docker/dockerfile:1
# pilotlight/meter: the metering sidecar, GPU probe and idle program
# (metering/Pilotlight.Metering), published with NativeAOT: one self-contained
# executable, /usr/local/bin/pilotlight-meter. Besides running as the sidecar,
# `pilotlight-meter install DEST` copies it into function pods, whose images
# only need glibc, so the runtime stage is the runtime-deps image (no .NET).
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/metering.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
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
COPY operator/Pilotlight.Nvml/Pilotlight.Nvml.csproj operator/Pilotlight.Nvml/
COPY metering/Pilotlight.Metering/Pilotlight.Metering.csproj metering/Pilotlight.Metering/
# NativeAOT compiles for one runtime identifier: the image's architecture.
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo linux-x64 ;; arm64) echo linux-arm64 ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rid \
 && dotnet restore metering/Pilotlight.Metering/Pilotlight.Metering.csproj -r "$(cat /rid)" -p:PublishAot=true
COPY operator/Pilotlight.Nvml/ operator/Pilotlight.Nvml/
COPY metering/Pilotlight.Metering/ metering/Pilotlight.Metering/
RUN dotnet publish metering/Pilotlight.Metering/Pilotlight.Metering.csproj \
      -c Release --no-restore -r "$(cat /rid)" -p:PublishAot=true -p:StripSymbols=true -o /out \
 && install -m 0755 /out/Pilotlight.Metering /pilotlight-meter

FROM ${DOTNET_IMAGES}/runtime-deps:${DOTNET_VERSION}
COPY --from=build /pilotlight-meter /usr/local/bin/pilotlight-meter
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/pilotlight-meter"]
