#!/bin/sh
# Runs ctr as `ctr run --cni` needs it for the cninet-ebpf containerd suite, without touching the
# host's CNI setup: ctr 1.6 reads its CNI configuration only from /etc/cni/net.d, finds plugins
# only in /opt/cni/bin and /usr/lib/cni, and caches results in /var/lib/cni. In a private mount
# namespace those become the test's own directories; then ctr runs inside the node's network
# namespace (nsenter, not `ip netns exec`, which remounts /sys and breaks runc).
#
# usage: ctr-in-node.sh NODE_NETNS CNI_CONF_DIR CNI_BIN_DIR CNI_CACHE_DIR -- CTR_ARGS...
set -eu
if [ "$#" -lt 5 ] || [ "$5" != "--" ]; then
  echo "usage: $0 NODE_NETNS CNI_CONF_DIR CNI_BIN_DIR CNI_CACHE_DIR -- CTR_ARGS..." >&2
  exit 2
fi
if [ ! -d /etc/cni/net.d ] || [ ! -d /opt ]; then
  echo "$0: /etc/cni/net.d and /opt must exist to be covered (install podman or containernetworking-plugins)" >&2
  exit 2
fi
mkdir -p /var/lib/cni "$4"
exec unshare --mount --propagation private /bin/sh -eu -c '
  node=$1 conf=$2 bin=$3 cache=$4
  shift 5
  mount --bind "$conf" /etc/cni/net.d
  mount -t tmpfs -o mode=0755 cninet-ctr-opt /opt
  mkdir -p /opt/cni/bin
  for p in "$bin"/*; do ln -s "$p" /opt/cni/bin/; done
  mount --bind "$cache" /var/lib/cni
  exec nsenter --net="/run/netns/$node" ctr "$@"
' ctr-in-node "$@"
