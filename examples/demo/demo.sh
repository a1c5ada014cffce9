#!/bin/bash
# The cninet demo: builds a "node" and a "pod" network namespace, runs a CNI chain through the
# cninet runtime (cninet-cni) inside the node - Debian's reference bridge + host-local, then
# cninet's own cninet-dns and cninet-debug chained after them - prints the result, shows the pod
# can reach its gateway, runs CHECK and DEL, and removes everything it created.
# Usage: demo.sh BUILD_DIR      (as root)
set -euo pipefail
BUILD=${1:?usage: demo.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
TAG=$$
NODE=cndemo-node-$TAG
POD=cndemo-pod-$TAG
WORK=$(mktemp -d /tmp/cninet-demo-XXXXXX)

cleanup() {
  ip netns delete "$POD" 2>/dev/null || true
  ip netns delete "$NODE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. namespaces: node $NODE, pod $POD"
ip netns add "$NODE"
ip netns add "$POD"
ip -n "$NODE" link set lo up

step "2. network configuration (CNI 1.0.0 conflist)"
mkdir -p "$WORK/net.d"
cat > "$WORK/net.d/10-demo.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "demo",
  "plugins": [
    {"type": "bridge", "bridge": "cni-demo0", "isGateway": true,
     "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "dataDir": "$WORK/ipam",
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "cninet-dns", "nameservers": ["10.96.0.10"]},
    {"type": "cninet-debug", "file": "$WORK/invocations.log"}
  ]
}
JSON
cat "$WORK/net.d/10-demo.conflist"

export NETCONFPATH=$WORK/net.d CNI_PATH=$BUILD/plugins:/usr/lib/cni CNI_CACHE_DIR=$WORK/cache
export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo"
CNI=$BUILD/bin/cninet-cni

step "3. ADD (cninet-cni add demo /run/netns/$POD, run inside the node)"
ip netns exec "$NODE" "$CNI" add demo "/run/netns/$POD"

step "4. the pod's interface and a ping to its gateway"
ip -n "$POD" -4 addr show dev eth0 | sed 's/^/   /'
ip netns exec "$POD" ping -c 2 -W 2 10.244.1.1 | sed 's/^/   /'

step "5. what cninet-debug (last in the chain) received as prevResult"
head -n 1 "$WORK/invocations.log" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]["prevResult"], indent=2))'

step "6. CHECK"
ip netns exec "$NODE" "$CNI" check demo "/run/netns/$POD" && echo "   CHECK passed"

step "7. DEL"
ip netns exec "$NODE" "$CNI" del demo "/run/netns/$POD" && echo "   DEL done"
if ip -n "$POD" link show eth0 >/dev/null 2>&1; then echo "   eth0 still present!"; exit 1; fi
leases=$(find "$WORK/ipam" -name '10.*' | wc -l)
echo "   pod eth0 removed; leases left: $leases"
[ "$leases" -eq 0 ]

step "demo finished: namespaces and files are removed on exit"
