#!/usr/bin/env bash
# Builds and pushes every image to the real node's registry: the local .NET base images
# (base-images.sh), then all of docker/build.sh's images. Restores inside the build use the
# host's network (the build container's own DNS would not be the host's) and trust the CA
# certificates this machine added in /usr/local/share/ca-certificates (a proxy that re-signs TLS).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
[ -f "$RN_DIR/env" ] || rn_die "the node is not up (tests/real-node/up.sh)"
. "$RN_DIR/env"
"$here/base-images.sh" >/dev/null
extra_ca=""
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  extra_ca=$RN_DIR/extra-ca.pem; cat /usr/local/share/ca-certificates/*.crt > "$extra_ca"
fi
ASPNET_VARIANT=${ASPNET_VARIANT--chiseled} DOCKER=$RN_DOCKER DOTNET_IMAGES=$RN_REGISTRY/dotnet REGISTRY=$RN_REGISTRY PUSH=1 BUILD_NETWORK=host \
  EXTRA_CA_CERT_FILE=$extra_ca "$here/../../docker/build.sh" "$@"
"$RN_DOCKER" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$RN_REGISTRY/pilotlight/*"
