#!/usr/bin/env bash
# Installs Pilotlight on the real node as a platform team would, idempotently: simulated GPUs advertised to
# the real kubelet (tests/Pilotlight.DevicePluginSim, 2 x NVIDIA-L4, its PID in $RN_DIR/pids so down.sh stops
# it), then `helm upgrade --install pilotlight charts/pilotlight` with the images from the node's registry,
# waiting until the operator and gateway are available. Used by demo.sh and the real-node benchmark.
# Needs the node up and the images pushed (make real-node-images).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
rn_use_node
helm=${HELM:-${XDG_CACHE_HOME:-$HOME/.cache}/pilotlight/helm/helm}
[ -x "$helm" ] || rn_die "no helm at $helm (make chart-check caches it)"
node=$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')

# Simulated GPUs on the real kubelet (the process outlives this script; down.sh stops it by its PID).
dotnet build "$root/tests/Pilotlight.DevicePluginSim" -c Release -v quiet -nologo >/dev/null
if ! { [ -f "$RN_DIR/pids/device-plugin" ] && kill -0 "$(cat "$RN_DIR/pids/device-plugin")" 2>/dev/null; }; then
  nohup dotnet "$root/tests/Pilotlight.DevicePluginSim/bin/Release/net10.0/Pilotlight.DevicePluginSim.dll" \
    --plugin-dir /var/lib/kubelet/device-plugins --node "$node" --kubeconfig "$KUBECONFIG" --count 2 --product NVIDIA-L4 \
    >"$RN_DIR/logs/device-plugin.log" 2>&1 &
  echo $! > "$RN_DIR/pids/device-plugin"
fi
for _ in $(seq 60); do
  [ "$(kubectl get node "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')" = 2 ] && break; sleep 1
done
say "node $node: $(kubectl get node "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}') x nvidia.com/gpu (simulated device plugin), labelled $(kubectl get node "$node" -o jsonpath='{.metadata.labels.nvidia\.com/gpu\.product}')"

values=$RN_DIR/install-values.yaml
cat > "$values" <<V
image: {registry: "$RN_REGISTRY", pullPolicy: Always}
sandbox: {runtimeClasses: {allowed: [], default: ""}}
V
say "helm upgrade --install pilotlight charts/pilotlight (images $RN_REGISTRY/pilotlight/*:$tag)"
# --server-side=false: this node is Kubernetes 1.20, which refuses the CRDs' CEL rules in a server-side apply (README).
"$helm" upgrade --install pilotlight "$root/charts/pilotlight" -n pilotlight-system --create-namespace -f "$values" --wait --timeout 10m --server-side=false >/dev/null
say "operator and gateway available"
