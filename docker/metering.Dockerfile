# pilotlight/meter: the metering sidecar, GPU probe and idle program
# (metering/Pilotlight.Metering), published with NativeAOT: one self-contained
# executable, /usr/local/bin/pilotlight-meter. Besides running as the sidecar,
# `pilotlight-meter install DEST` copies it into function pods, whose images
# only need glibc, so the runtime stage is scratch plus
# those few files (no .NET).
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/metering.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
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
COPY operator/Pilotlight.Nvml/Pilotlight.Nvml.csproj operator/Pilotlight.Nvml/
COPY metering/Pilotlight.Metering/Pilotlight.Metering.csproj metering/Pilotlight.Metering/
# NativeAOT compiles for one runtime identifier: the image's architecture.
RUN case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
      amd64) echo linux-x64 ;; arm64) echo linux-arm64 ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rid \
 && dotnet restore metering/Pilotlight.Metering/Pilotlight.Metering.csproj -r "$(cat /rid)" -p:PublishAot=true
COPY operator/Pilotlight.Nvml/ operator/Pilotlight.Nvml/
COPY metering/Pilotlight.Metering/ metering/Pilotlight.Metering/
RUN dotnet publish metering/Pilotlight.Metering/Pilotlight.Metering.csproj \
      -c Release --no-restore -r "$(cat /rid)" -p:PublishAot=true -p:StripSymbols=true -o /out \
 && install -m 0755 /out/Pilotlight.Metering /pilotlight-meter
# The runtime image holds the executable, the C library files it links (ldd
# lists them: libc, libm, the loader) and OpenSSL's libssl and libcrypto, which
# .NET loads at run time for the checkpoint's SHA-256 (without them the process
# aborts, "No usable version of libssl was found"); no shell, no package manager.
# /tmp is there for a writable emptyDir mount point; /etc/passwd names UID 65532.
RUN mkdir -p /rootfs/usr/local/bin /rootfs/tmp /rootfs/etc \
 && install -m 0755 /pilotlight-meter /rootfs/usr/local/bin/pilotlight-meter \
 && for lib in $(ldd /pilotlight-meter | grep -o '/[^ ]*') \
              $(ldconfig -p | awk '$1 == "libssl.so.3" || $1 == "libcrypto.so.3" {print $NF}'); do cp --parents -L "$lib" /rootfs/; done \
 && test -n "$(find /rootfs -name 'libcrypto.so.3')" \
 && chmod 1777 /rootfs/tmp \
 && echo 'nonroot:x:65532:65532::/tmp:/usr/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'nonroot:x:65532:' > /rootfs/etc/group

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/pilotlight-meter"]
