# pilotlight/operator: the GpuFunction and Sandbox controllers, autoscaler and
# usage ledger (operator/Pilotlight.Operator), framework-dependent on the
# ASP.NET Core runtime (it serves /metrics, /healthz and /usage).
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/operator.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
# DOTNET_IMAGES is where the sdk, aspnet and runtime-deps images are pulled
# from: Microsoft's .NET image repository, or your mirror of it.
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
# Restore first, from the project files only, so source edits keep this layer.
COPY Directory.Build.props Directory.Packages.props ./
COPY operator/Pilotlight.Api/Pilotlight.Api.csproj operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/Pilotlight.ControllerRuntime.csproj operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Contracts/Pilotlight.Contracts.csproj operator/Pilotlight.Contracts/
COPY operator/Pilotlight.Operator/Pilotlight.Operator.csproj operator/Pilotlight.Operator/
RUN dotnet restore operator/Pilotlight.Operator/Pilotlight.Operator.csproj
COPY operator/Pilotlight.Api/ operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/ operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Contracts/ operator/Pilotlight.Contracts/
COPY operator/Pilotlight.Operator/ operator/Pilotlight.Operator/
RUN dotnet publish operator/Pilotlight.Operator/Pilotlight.Operator.csproj \
      -c Release --no-restore -p:UseAppHost=false -o /out
# Time zones for schedules (spec.schedule.timeZone): chiseled runtime images carry no
# tzdata, so the zone files come from this stage (without the posix/ and right/ copies).
RUN test -f /usr/share/zoneinfo/Europe/Berlin \
      || { echo "the sdk image has no /usr/share/zoneinfo (tzdata): schedules need it" >&2; exit 1; } \
 && mkdir -p /tz && cp -a /usr/share/zoneinfo /tz/ && rm -rf /tz/zoneinfo/posix /tz/zoneinfo/right

FROM ${DOTNET_IMAGES}/aspnet:${DOTNET_VERSION}${ASPNET_VARIANT}
WORKDIR /app
COPY --from=build /out/ ./
COPY --from=build /tz/zoneinfo/ /usr/share/zoneinfo/
# Non-root, matching the chart's runAsUser; the root filesystem can be read-only
# (the chart mounts an emptyDir on /tmp).
ENV HOME=/tmp DOTNET_NOLOGO=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Pilotlight.Operator.dll"]
