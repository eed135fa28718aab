# pilotlight/sample-model-server: the stand-in model server of samples/model-server
# (configurable load and compute time: PORT, LOAD_SECONDS, COMPUTE_MS), for
# trying functions on a cluster without a real model; the K3s end-to-end suite
# (tests/Pilotlight.E2E) runs it as its function. Framework-dependent on the
# ASP.NET Core runtime. `docker/build.sh model-server` builds it (it is in the
# default set), or from the repository root:
#   docker build -f docker/model-server.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> \
#     -t pilotlight/sample-model-server:0.1.0 .
ARG DOTNET_IMAGES
ARG DOTNET_VERSION=10.0
# A suffix of the aspnet tag for the runtime stage, e.g. -noble-chiseled: Microsoft's
# chiseled images (no shell, no package manager) are about half the size. The stage
# runs no command, so any variant with the ASP.NET Core runtime works.
ARG ASPNET_VARIANT=""

FROM ${DOTNET_IMAGES}/sdk:${DOTNET_VERSION} AS build
# An extra CA certificate for restores, where a proxy re-signs outbound TLS:
# docker/build.sh passes the PEM file named by EXTRA_CA_CERT_FILE. A certificate
# is public, so a build argument is fine; it stays in this build stage only.
ARG EXTRA_CA_CERT=""
RUN if [ -n "$EXTRA_CA_CERT" ]; then \
      printf '%s\n' "$EXTRA_CA_CERT" > /usr/local/share/ca-certificates/pilotlight-extra-ca.crt \
      && update-ca-certificates >/dev/null; \
    fi
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY samples/model-server/Pilotlight.SampleModelServer/Pilotlight.SampleModelServer.csproj samples/model-server/Pilotlight.SampleModelServer/
RUN dotnet restore samples/model-server/Pilotlight.SampleModelServer/Pilotlight.SampleModelServer.csproj
COPY samples/model-server/Pilotlight.SampleModelServer/ samples/model-server/Pilotlight.SampleModelServer/
# HTTP/1.1 and h2c on one port: a source file shared with the shim, linked into this project.
COPY runtime-shim/Pilotlight.RuntimeShim/Http/ runtime-shim/Pilotlight.RuntimeShim/Http/
RUN dotnet publish samples/model-server/Pilotlight.SampleModelServer/Pilotlight.SampleModelServer.csproj \
      -c Release --no-restore -p:UseAppHost=false -o /out

FROM ${DOTNET_IMAGES}/aspnet:${DOTNET_VERSION}${ASPNET_VARIANT}
WORKDIR /app
COPY --from=build /out/ ./
ENV HOME=/tmp DOTNET_NOLOGO=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Pilotlight.SampleModelServer.dll"]
