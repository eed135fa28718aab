# syntax=docker/dockerfile:1
# pilotlight/sample-model-server: the stand-in model server of samples/model-server
# (configurable load and compute time: PORT, LOAD_SECONDS, COMPUTE_MS), for
# trying functions on a cluster without a real model; the K3s end-to-end suite
# (tests/Pilotlight.E2E.K3s) runs it as its function. Framework-dependent on the
# ASP.NET Core runtime. Not one of the images docker/build.sh builds; build it
# from the repository root:
#   docker build -f docker/model-server.Dockerfile --build-arg DOTNET_IMAGES=<repository of the .NET images> \
#     -t pilotlight/sample-model-server:0.1.0 .
ARG DOTNET_IMAGES
ARG DOTNET_VERSION=10.0

FROM ${DOTNET_IMAGES}/sdk:${DOTNET_VERSION} AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY samples/model-server/Pilotlight.SampleModelServer/Pilotlight.SampleModelServer.csproj samples/model-server/Pilotlight.SampleModelServer/
RUN dotnet restore samples/model-server/Pilotlight.SampleModelServer/Pilotlight.SampleModelServer.csproj
COPY samples/model-server/Pilotlight.SampleModelServer/ samples/model-server/Pilotlight.SampleModelServer/
RUN dotnet publish samples/model-server/Pilotlight.SampleModelServer/Pilotlight.SampleModelServer.csproj \
      -c Release --no-restore -p:UseAppHost=false -o /out

FROM ${DOTNET_IMAGES}/aspnet:${DOTNET_VERSION}
WORKDIR /app
COPY --from=build /out/ ./
ENV HOME=/tmp DOTNET_NOLOGO=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Pilotlight.SampleModelServer.dll"]
