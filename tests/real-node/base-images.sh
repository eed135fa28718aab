#!/usr/bin/env bash
# Local stand-ins for the .NET images the Dockerfiles build from (DOTNET_IMAGES):
#   $RN_REGISTRY/dotnet/runtime-deps:10.0  Debian bookworm (debootstrap minbase) + ca-certificates, libssl3
#   $RN_REGISTRY/dotnet/aspnet:10.0        runtime-deps + this machine's .NET and ASP.NET Core shared runtimes
#   $RN_REGISTRY/dotnet/sdk:10.0           runtime-deps + this machine's whole .NET SDK
#   $RN_REGISTRY/dotnet/aspnet:10.0-chiseled  only the files of the packages .NET needs (libc6,
#                                          libgcc-s1, libstdc++6, libssl3, zlib1g, CA certificates)
#                                          + the shared runtimes: the counterpart of Microsoft's
#                                          aspnet:10.0-noble-chiseled (no shell, no package manager)
# built without pulling any image, and pushed to the node's registry, so
#   DOTNET_IMAGES=127.0.0.1:5000/dotnet docker/build.sh
# works on an air-gapped machine. The bookworm root filesystem is cached in
# $PILOTLIGHT_CACHE/images (debootstrap takes about a minute).
#   base-images.sh            build and push (needs up.sh's node: its dockerd and registry)
#   base-images.sh --rootfs   only the cached root filesystem
#   base-images.sh --force    rebuild and push even if the registry has them
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
rn_require_root

cache=$rn_cache/images
rootfs_tar=$cache/bookworm-minbase.tar
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if [ ! -f "$rootfs_tar" ]; then
  command -v debootstrap >/dev/null || rn_die "debootstrap missing (tests/real-node/build.sh installs it)"
  mkdir -p "$cache"; work=$cache/bookworm.tmp; rm -rf "$work"
  rn_log "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include=ca-certificates,libssl3 bookworm "$work" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || rn_die "debootstrap failed (see $cache/debootstrap.log)"
  rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/* "$work"/var/log/* "$work"/usr/share/doc/* "$work"/usr/share/man/*
  tar -C "$work" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"; rm -rf "$work"
fi
[ "${1:-}" = --rootfs ] && exit 0

[ -f "$RN_DIR/env" ] || rn_die "the node is not up (run tests/real-node/up.sh)"
. "$RN_DIR/env"
docker() { "$RN_DOCKER" "$@"; }
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
[ -d "$dotnet_root/sdk" ] || rn_die "no .NET SDK next to $(command -v dotnet)"
runtime=$(ls "$dotnet_root/shared/Microsoft.NETCore.App" | sort -V | tail -1)
aspnet=$(ls "$dotnet_root/shared/Microsoft.AspNetCore.App" | sort -V | tail -1)
repo=$RN_REGISTRY/dotnet
path='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
pushed() { curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$RN_REGISTRY/v2/dotnet/$1/manifests/10.0"; }
pushed_chiseled() { curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$RN_REGISTRY/v2/dotnet/aspnet/manifests/10.0-chiseled"; }
if [ "${1:-}" != --force ] && pushed runtime-deps && pushed aspnet && pushed sdk && pushed_chiseled; then
  rn_log "$repo/{runtime-deps,aspnet,sdk}:10.0 are in the registry already"; echo "DOTNET_IMAGES=$repo"; exit 0
fi

if ! docker image inspect "$repo/runtime-deps:10.0" >/dev/null 2>&1; then
  docker import -c "ENV $path" -c 'CMD ["/bin/bash"]' "$rootfs_tar" "$repo/runtime-deps:10.0" >/dev/null
fi
# The .NET trees go in through a build context of their own; the image
# environment matches Microsoft's images (DOTNET_ROOT, dotnet on PATH).
ctx=$RN_DIR/base-images; rm -rf "$ctx"; mkdir -p "$ctx/aspnet/dotnet/shared" "$ctx/sdk"
cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$dotnet_root/LICENSE.txt" "$ctx/aspnet/dotnet/"
mkdir -p "$ctx/aspnet/dotnet/shared/Microsoft.NETCore.App" "$ctx/aspnet/dotnet/shared/Microsoft.AspNetCore.App"
cp -a "$dotnet_root/shared/Microsoft.NETCore.App/$runtime" "$ctx/aspnet/dotnet/shared/Microsoft.NETCore.App/"
cp -a "$dotnet_root/shared/Microsoft.AspNetCore.App/$aspnet" "$ctx/aspnet/dotnet/shared/Microsoft.AspNetCore.App/"
cp -a "$dotnet_root" "$ctx/sdk/dotnet"
# The chiseled base: from the bookworm tree, only what dpkg lists for the packages
# .NET loads, the generated CA bundle, /tmp and a passwd naming UID 65532.
tree=$ctx/bookworm; mkdir -p "$tree" "$ctx/chiseled/rootfs/tmp" "$ctx/chiseled/rootfs/etc"
tar -C "$tree" -xf "$rootfs_tar"
# Merged /usr: /lib, /lib64, /bin, /sbin are links into /usr, as in the tree (first, so the
# packages' /lib/... paths land in /usr/lib).
mkdir -p "$ctx/chiseled/rootfs/usr/bin"
for link in lib lib64 bin sbin; do
  [ -L "$tree/$link" ] || continue
  mkdir -p "$ctx/chiseled/rootfs/$(readlink "$tree/$link")"; cp -a "$tree/$link" "$ctx/chiseled/rootfs/"
done
for pkg in libc6 libgcc-s1 libstdc++6 libssl3 zlib1g ca-certificates; do
  list=$(ls "$tree/var/lib/dpkg/info/$pkg.list" "$tree/var/lib/dpkg/info/$pkg:"*.list 2>/dev/null | head -1 || true)
  [ -n "$list" ] || rn_die "package $pkg is not in the bookworm tree"
  (cd "$tree" && while read -r f; do { [ -e ".$f" ] || [ -L ".$f" ]; } && ! { [ -d ".$f" ] && [ ! -L ".$f" ]; } && echo ".$f" || true; done < "$list") \
    | tar -C "$tree" --no-recursion -cf - -T - | tar -C "$ctx/chiseled/rootfs" -xf -
done
cp -a "$tree/etc/ssl" "$ctx/chiseled/rootfs/etc/"
chmod 1777 "$ctx/chiseled/rootfs/tmp"
echo 'nonroot:x:65532:65532::/tmp:/usr/sbin/nologin' > "$ctx/chiseled/rootfs/etc/passwd"
echo 'nonroot:x:65532:' > "$ctx/chiseled/rootfs/etc/group"
mkdir -p "$ctx/chiseled/rootfs/usr/share/dotnet"
cp -a "$ctx/aspnet/dotnet/." "$ctx/chiseled/rootfs/usr/share/dotnet/"
ln -s ../share/dotnet/dotnet "$ctx/chiseled/rootfs/usr/bin/dotnet"
printf 'FROM scratch\nCOPY rootfs/ /\nENV DOTNET_ROOT=/usr/share/dotnet DOTNET_RUNNING_IN_CONTAINER=true %s\nUSER 65532:65532\n' "$path" \
  > "$ctx/chiseled/Dockerfile"
docker build -q -t "$repo/aspnet:10.0-chiseled" "$ctx/chiseled" >/dev/null
for kind in aspnet sdk; do
  cat > "$ctx/$kind/Dockerfile" <<D
FROM $repo/runtime-deps:10.0
COPY dotnet/ /usr/share/dotnet/
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_ROOT=/usr/share/dotnet DOTNET_RUNNING_IN_CONTAINER=true DOTNET_CLI_TELEMETRY_OPTOUT=1
D
  # The dotnet CLI needs ICU, which this base leaves out (Pilotlight's apps run invariant);
  # Microsoft's sdk image carries libicu instead.
  [ $kind = aspnet ] || echo 'ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1' >> "$ctx/$kind/Dockerfile"
  docker build -q -t "$repo/$kind:10.0" "$ctx/$kind" >/dev/null
done
rm -rf "$ctx"
for image in runtime-deps:10.0 aspnet:10.0 sdk:10.0 aspnet:10.0-chiseled; do docker push -q "$repo/$image" >/dev/null; done
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$repo/*"
echo "DOTNET_IMAGES=$repo"
