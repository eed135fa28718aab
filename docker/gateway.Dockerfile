# pilotlight/gateway: routes /{namespace}/{function}/{path} to function pods,
# holds requests while a function wakes, serves the sandbox API
# (operator/Pilotlight.Gateway), framework-dependent on the ASP.NET Core runtime. It shares only
# operator/Pilotlight.Contracts with the operator, never the operator itself.
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/gateway.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
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
COPY operator/Pilotlight.Api/Pilotlight.Api.csproj operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/Pilotlight.ControllerRuntime.csproj operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Contracts/Pilotlight.Contracts.csproj operator/Pilotlight.Contracts/
COPY operator/Pilotlight.Gateway/Pilotlight.Gateway.csproj operator/Pilotlight.Gateway/
RUN dotnet restore operator/Pilotlight.Gateway/Pilotlight.Gateway.csproj
COPY operator/Pilotlight.Api/ operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/ operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Contracts/ operator/Pilotlight.Contracts/
COPY operator/Pilotlight.Gateway/ operator/Pilotlight.Gateway/
# HTTP/1.1 and h2c on one port: a source file shared with the shim, linked into this project.
COPY runtime-shim/Pilotlight.RuntimeShim/Http/ runtime-shim/Pilotlight.RuntimeShim/Http/
RUN dotnet publish operator/Pilotlight.Gateway/Pilotlight.Gateway.csproj \
      -c Release --no-restore -p:UseAppHost=false -o /out

FROM ${DOTNET_IMAGES}/aspnet:${DOTNET_VERSION}${ASPNET_VARIANT}
WORKDIR /app
COPY --from=build /out/ ./
ENV HOME=/tmp DOTNET_NOLOGO=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Pilotlight.Gateway.dll"]
