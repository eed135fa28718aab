# syntax=docker/dockerfile:1
# pilotlight/operator: the GpuFunction and Sandbox controllers, autoscaler and
# usage ledger (operator/Pilotlight.Operator), framework-dependent on the
# ASP.NET Core runtime (it serves /metrics, /healthz and /usage).
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/operator.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
# DOTNET_IMAGES is where the sdk, aspnet and runtime-deps images are pulled
# from: Microsoft's .NET image repository, or your mirror of it.
ARG DOTNET_IMAGES
ARG DOTNET_VERSION=10.0

FROM ${DOTNET_IMAGES}/sdk:${DOTNET_VERSION} AS build
WORKDIR /src
# Restore first, from the project files only, so source edits keep this layer.
COPY Directory.Build.props Directory.Packages.props ./
COPY operator/Pilotlight.Api/Pilotlight.Api.csproj operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/Pilotlight.ControllerRuntime.csproj operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Operator/Pilotlight.Operator.csproj operator/Pilotlight.Operator/
RUN dotnet restore operator/Pilotlight.Operator/Pilotlight.Operator.csproj
COPY operator/Pilotlight.Api/ operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/ operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Operator/ operator/Pilotlight.Operator/
RUN dotnet publish operator/Pilotlight.Operator/Pilotlight.Operator.csproj \
      -c Release --no-restore -p:UseAppHost=false -o /out

FROM ${DOTNET_IMAGES}/aspnet:${DOTNET_VERSION}
WORKDIR /app
COPY --from=build /out/ ./
# Non-root, matching the chart's runAsUser; the root filesystem can be read-only
# (the chart mounts an emptyDir on /tmp).
ENV HOME=/tmp DOTNET_NOLOGO=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Pilotlight.Operator.dll"]
