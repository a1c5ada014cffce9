#!/bin/sh
# Measures what cninet-ebpf adds to a pod's ADD, against a baseline taken in the same run:
# the chain [cninet-ptp + cninet-host-local] alone versus the same chain + cninet-ebpf, N pods
# each (interleaved), in network namespaces ("node", "outside", pods) and a private bpffs; everything is
# removed on exit. Prints medians in ms and the ratios; asserts nothing about time.
#
# usage (root): tests/e2e/chain/measure-add.sh BUILD_DIR [N]
set -eu
build=${1:?usage: $0 BUILD_DIR [N]}
n=${2:-10}
tag=cme$$
tmp=$(mktemp -d /tmp/cninet-chain-measure-XXXXXX)
node=${tag}n ext=${tag}e

cleanup() {
  set +e
  i=0
  while [ "$i" -lt "$n" ]; do
    ip netns del "${tag}b$i" 2>/dev/null
    ip netns del "${tag}e$i" 2>/dev/null
    i=$((i + 1))
  done
  ip netns del "$node" 2>/dev/null
  ip netns del "$ext" 2>/dev/null
  umount "$tmp/bpf" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

mkdir -p "$tmp/bpf" "$tmp/net.d"
mount -t bpf bpf "$tmp/bpf"
ip netns add "$node"
ip netns add "$ext"
ip -n "$node" link set lo up
ip -n "$node" link add up0 type veth peer name eth0 netns "$ext"
ip -n "$node" addr add 192.168.200.1/24 dev up0
ip -n "$node" link set up0 up
ip -n "$node" route add default via 192.168.200.2
ip -n "$ext" addr add 192.168.200.2/24 dev eth0
ip -n "$ext" link set eth0 up

ipam() { echo "\"ipam\":{\"type\":\"cninet-host-local\",\"ranges\":[[{\"subnet\":\"$1\"}]],\"dataDir\":\"$tmp/ipam\",\"routes\":[{\"dst\":\"0.0.0.0/0\"}]}"; }
cat > "$tmp/net.d/base.conflist" <<JSON
{"cniVersion":"1.0.0","name":"base","plugins":[{"type":"cninet-ptp",$(ipam 10.244.1.0/24)}]}
JSON
cat > "$tmp/net.d/ebpf.conflist" <<JSON
{"cniVersion":"1.0.0","name":"ebpf","plugins":[{"type":"cninet-ptp",$(ipam 10.244.2.0/24)},
 {"type":"cninet-ebpf","clusterCIDR":"10.244.0.0/16","bpffsRoot":"$tmp/bpf","stateDir":"$tmp/state",
  "mapSizes":{"conntrack":16384,"nat":16384,"services":1024,"serviceSlots":4096,"backends":4096,"affinity":1024,"endpoints":1024}}]}
JSON

cni() {  # cni OP NETWORK POD -> prints elapsed ms
  t0=$(date +%s%N)
  NETCONFPATH=$tmp/net.d CNI_PATH=$build/libexec/cni CNI_CACHE_DIR=$tmp/cache \
    nsenter --net="/run/netns/$node" "$build/bin/cninet-cni" "$1" "$2" "/run/netns/$3" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

i=0
while [ "$i" -lt "$n" ]; do
  ip netns add "${tag}b$i"
  ip netns add "${tag}e$i"
  i=$((i + 1))
done
# Interleaved (base pod i, then ebpf pod i) so drift in the machine's load hits both alike.
: > "$tmp/base.add"; : > "$tmp/base.del"; : > "$tmp/ebpf.add"; : > "$tmp/ebpf.del"
for op in add del; do
  i=0
  while [ "$i" -lt "$n" ]; do
    for net in base ebpf; do
      us=$(cni "$op" "$net" "${tag}$(echo "$net" | cut -c1)$i")
      if [ "$op$net$i" = addebpf0 ]; then echo "$us" > "$tmp/ebpf.first"; else echo "$us" >> "$tmp/$net.$op"; fi
    done
    i=$((i + 1))
  done
done

base_add=$(median < "$tmp/base.add"); base_del=$(median < "$tmp/base.del")
ebpf_add=$(median < "$tmp/ebpf.add"); ebpf_del=$(median < "$tmp/ebpf.del"); first=$(cat "$tmp/ebpf.first")
awk -v ba="$base_add" -v bd="$base_del" -v ea="$ebpf_add" -v ed="$ebpf_del" -v f="$first" -v n="$n" 'BEGIN {
  printf "pods per chain: %d (median wall time of cninet-cni, microseconds)\n", n
  printf "ADD  ptp+host-local              %9.0f  (baseline)\n", ba
  printf "ADD  ptp+host-local+cninet-ebpf  %9.0f  ratio %.2f  (later pods: pinned program reused)\n", ea, ea / ba
  printf "ADD  first pod with cninet-ebpf  %9.0f  ratio %.2f  (programs loaded and verified)\n", f, f / ba
  printf "DEL  ptp+host-local              %9.0f  (baseline)\n", bd
  printf "DEL  ptp+host-local+cninet-ebpf  %9.0f  ratio %.2f  (last one also tears the instance down)\n", ed, ed / bd
}'
