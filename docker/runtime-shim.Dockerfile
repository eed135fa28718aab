# pilotlight/runtime-shim: the sidecar in front of every function's server
# (runtime-shim/Pilotlight.RuntimeShim): concurrency limit, readiness, drain;
# configured by the PILOTLIGHT_* variables the operator sets on the container.
# The same executable is the sandbox agent, which an init container copies into
# a Sandbox's own image; so it is published with NativeAOT (no .NET runtime
# needed, only glibc) and the runtime stage is scratch plus the glibc files it links.
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/runtime-shim.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
ARG DOTNET_IMAGES
ARG DOTNET_VERSION=10.0

FROM ${DOTNET_IMAGES}/sdk:${DOTNET_VERSION} AS build
# An extra CA certificate for restores, where a proxy re-signs outbound TLS:
# docker/build.sh passes the PEM file named by EXTRA_CA_CERT_FILE. A certificate
# is public, so a build argument is fine; it stays in this build stage only.
ARG EXTRA_CA_CERT=""
RUN if [ -n "$EXTRA_CA_CERT" ]; then \
      printf '%s\n' "$EXTRA_CA_CERT" > /usr/local/share/ca-certificates/pilotlight-extra-ca.crt \
      && update-ca-certificates >/dev/null; \
    fi
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
RUN case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
      amd64) echo linux-x64 ;; arm64) echo linux-arm64 ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rid \
 && dotnet restore runtime-shim/Pilotlight.RuntimeShim/Pilotlight.RuntimeShim.csproj -r "$(cat /rid)" -p:PublishAot=true
COPY operator/Pilotlight.Api/ operator/Pilotlight.Api/
COPY operator/Pilotlight.Nvml/ operator/Pilotlight.Nvml/
COPY runtime-shim/Pilotlight.RuntimeShim/ runtime-shim/Pilotlight.RuntimeShim/
# One file of the controller runtime is compiled in: the log settings, read as the operator reads its flags.
COPY operator/Pilotlight.ControllerRuntime/ConsoleLogSettings.cs operator/Pilotlight.ControllerRuntime/
RUN dotnet publish runtime-shim/Pilotlight.RuntimeShim/Pilotlight.RuntimeShim.csproj \
      -c Release --no-restore -r "$(cat /rid)" -p:PublishAot=true -p:StripSymbols=true -o /out \
 && install -m 0755 /out/Pilotlight.RuntimeShim /pilotlight-shim
# The runtime image holds the executable and the C library files it links (ldd
# lists them: libc, libm, the loader), nothing else: no shell, no package manager.
# /tmp is there for a writable emptyDir mount point; /etc/passwd names UID 65532.
RUN mkdir -p /rootfs/usr/local/bin /rootfs/tmp /rootfs/etc \
 && install -m 0755 /pilotlight-shim /rootfs/usr/local/bin/pilotlight-shim \
 && for lib in $(ldd /pilotlight-shim | grep -o '/[^ ]*'); do cp --parents -L "$lib" /rootfs/; done \
 && chmod 1777 /rootfs/tmp \
 && echo 'nonroot:x:65532:65532::/tmp:/usr/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'nonroot:x:65532:' > /rootfs/etc/group

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 8099
ENTRYPOINT ["/usr/local/bin/pilotlight-shim"]
