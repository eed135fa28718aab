#!/usr/bin/env bash
# Builds the four Pilotlight images from the repository root, tagged as the
# chart expects them: [REGISTRY/]pilotlight/{operator,gateway,runtime-shim,meter}:TAG.
#   DOTNET_IMAGES=<repository of the .NET images> docker/build.sh [component...]
# Environment:
#   DOTNET_IMAGES  where the sdk, aspnet and runtime-deps images come from
#                  (required: Microsoft's .NET image repository or your mirror)
#   REGISTRY       prefix of the image names (the chart's image.registry); default none
#   TAG            default: the chart's appVersion
#   PUSH=1         push after building
#   DOCKER         the build command; default docker (e.g. DOCKER=podman)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${DOTNET_IMAGES:?set DOTNET_IMAGES to the repository of the .NET images (the one holding sdk, aspnet and runtime-deps)}"
docker=${DOCKER:-docker}
# The per-Dockerfile .dockerignore files (no bin/ or obj/ in the context) are a BuildKit feature.
export DOCKER_BUILDKIT=1
tag=${TAG:-$(awk -F'"' '/^appVersion:/ {print $2}' "$root/charts/pilotlight/Chart.yaml")}
prefix=${REGISTRY:+${REGISTRY%/}/}

# component -> image name (the chart's *.image.repository defaults)
declare -A names=([operator]=pilotlight/operator [gateway]=pilotlight/gateway [runtime-shim]=pilotlight/runtime-shim [metering]=pilotlight/meter)
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(operator gateway runtime-shim metering)

for c in "${components[@]}"; do
  [ -n "${names[$c]:-}" ] || { echo "unknown component '$c' (operator, gateway, runtime-shim, metering)" >&2; exit 2; }
  image=$prefix${names[$c]}:$tag
  echo "== $image (docker/$c.Dockerfile)"
  "$docker" build -f "$root/docker/$c.Dockerfile" --build-arg "DOTNET_IMAGES=$DOTNET_IMAGES" -t "$image" "$root"
  if [ "${PUSH:-}" = 1 ]; then "$docker" push "$image"; fi
done
