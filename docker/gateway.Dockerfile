# syntax=docker/dockerfile:1
# pilotlight/gateway: routes /{namespace}/{function}/{path} to function pods,
# holds requests while a function wakes, serves the sandbox API
# (operator/Pilotlight.Gateway), framework-dependent on the ASP.NET Core runtime.
# Build from the repository root (docker/build.sh does):
#   docker build -f docker/gateway.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> .
ARG DOTNET_IMAGES
ARG DOTNET_VERSION=10.0

FROM ${DOTNET_IMAGES}/sdk:${DOTNET_VERSION} AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY operator/Pilotlight.Api/Pilotlight.Api.csproj operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/Pilotlight.ControllerRuntime.csproj operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Operator/Pilotlight.Operator.csproj operator/Pilotlight.Operator/
COPY operator/Pilotlight.Gateway/Pilotlight.Gateway.csproj operator/Pilotlight.Gateway/
RUN dotnet restore operator/Pilotlight.Gateway/Pilotlight.Gateway.csproj
COPY operator/Pilotlight.Api/ operator/Pilotlight.Api/
COPY operator/Pilotlight.ControllerRuntime/ operator/Pilotlight.ControllerRuntime/
COPY operator/Pilotlight.Operator/ operator/Pilotlight.Operator/
COPY operator/Pilotlight.Gateway/ operator/Pilotlight.Gateway/
RUN dotnet publish operator/Pilotlight.Gateway/Pilotlight.Gateway.csproj \
      -c Release --no-restore -p:UseAppHost=false -o /out

FROM ${DOTNET_IMAGES}/aspnet:${DOTNET_VERSION}
WORKDIR /app
COPY --from=build /out/ ./
ENV HOME=/tmp DOTNET_NOLOGO=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Pilotlight.Gateway.dll"]
