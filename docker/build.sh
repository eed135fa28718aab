#!/usr/bin/env bash
# Builds the Pilotlight images from the repository root, tagged as the chart
# expects them: [REGISTRY/]pilotlight/{operator,gateway,runtime-shim,meter}:TAG,
# plus the sample model server, [REGISTRY/]pilotlight/sample-model-server:TAG.
#   DOTNET_IMAGES=<repository of the .NET images> docker/build.sh [component...]
# Components: operator gateway runtime-shim metering model-server (default: all).
# Environment:
#   DOTNET_IMAGES       where the sdk, aspnet and runtime-deps images come from
#                       (required: Microsoft's .NET image repository or your mirror)
#   REGISTRY            the registry the images go to, host[:port] (the chart's
#                       image.registry); default none. The names already start with
#                       pilotlight/, so REGISTRY=registry.example.com gives
#                       registry.example.com/pilotlight/operator.
#   TAG                 default: the chart's appVersion
#   PUSH=1              push after building
#   DOCKER              the build command; default docker (e.g. DOCKER=podman)
#   EXTRA_CA_CERT_FILE  PEM file of CA certificates the restore inside the build must
#                       trust (a proxy that re-signs TLS); default none
#   ASPNET_VARIANT      suffix of the aspnet tag the operator, gateway and model server run
#                       on, e.g. -noble-chiseled (Microsoft's smaller chiseled images); default none
#   BUILD_NETWORK       network of the build's RUN steps, e.g. host (where the default
#                       bridge cannot reach the package feeds or its DNS); default the builder's
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${DOTNET_IMAGES:?set DOTNET_IMAGES to the repository of the .NET images (the one holding sdk, aspnet and runtime-deps)}"
docker=${DOCKER:-docker}
tag=${TAG:-$(awk -F'"' '/^appVersion:/ {print $2}' "$root/charts/pilotlight/Chart.yaml")}
prefix=${REGISTRY:+${REGISTRY%/}/}
case "${REGISTRY:-}" in
  */pilotlight|*/pilotlight/) echo "note: REGISTRY ends in /pilotlight and the names start with pilotlight/: images will be ${prefix}pilotlight/..." >&2 ;;
esac

# BuildKit where the CLI has it (buildx); otherwise Docker's classic builder, which
# reads only the context's root .dockerignore (the repository's keeps bin/ and obj/
# out, like the per-Dockerfile ones BuildKit reads). A caller's DOCKER_BUILDKIT wins.
if [ -z "${DOCKER_BUILDKIT:-}" ] && [ "$(basename "$docker")" = docker ]; then
  if "$docker" buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=1
  else echo "note: no docker buildx plugin: building with the classic builder" >&2; export DOCKER_BUILDKIT=0; fi
fi

args=(--build-arg "DOTNET_IMAGES=$DOTNET_IMAGES")
if [ -n "${EXTRA_CA_CERT_FILE:-}" ]; then
  grep -q 'BEGIN CERTIFICATE' "$EXTRA_CA_CERT_FILE" || { echo "EXTRA_CA_CERT_FILE=$EXTRA_CA_CERT_FILE holds no PEM certificate" >&2; exit 2; }
  args+=(--build-arg "EXTRA_CA_CERT=$(cat "$EXTRA_CA_CERT_FILE")")
fi
[ -z "${BUILD_NETWORK:-}" ] || args+=(--network "$BUILD_NETWORK")

# component -> image name (the chart's *.image.repository defaults)
declare -A names=([operator]=pilotlight/operator [gateway]=pilotlight/gateway [runtime-shim]=pilotlight/runtime-shim
                  [metering]=pilotlight/meter [model-server]=pilotlight/sample-model-server)
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(operator gateway runtime-shim metering model-server)

for c in "${components[@]}"; do
  [ -n "${names[$c]:-}" ] || { echo "unknown component '$c' (operator, gateway, runtime-shim, metering, model-server)" >&2; exit 2; }
  image=$prefix${names[$c]}:$tag
  echo "== $image (docker/$c.Dockerfile)"
  variant=()
  case "$c" in operator|gateway|model-server) [ -z "${ASPNET_VARIANT:-}" ] || variant=(--build-arg "ASPNET_VARIANT=$ASPNET_VARIANT") ;; esac
  "$docker" build -f "$root/docker/$c.Dockerfile" "${args[@]}" "${variant[@]}" -t "$image" "$root"
  if [ "${PUSH:-}" = 1 ]; then "$docker" push "$image"; fi
done
