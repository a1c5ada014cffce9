#!/usr/bin/env bash
# Times ADD+DEL of cninet-ptp + cninet-host-local against the reference ptp + host-local
# (/usr/lib/cni) on the same configuration, in the same run, and prints the ratio.
#
# usage: sudo bench/plugins/compare.sh [-b BUILD_DIR] [-n ITERATIONS] [-6] [-r]
#   -b  build directory holding plugins/cninet-ptp and plugins/cninet-host-local (default: build)
#   -n  ADD+DEL pairs per plugin (default 40), after 3 warm-up pairs each
#   -6  dual-stack configuration (both plugins then wait for IPv6 addresses to settle)
#   -r  give cninet-ptp the reference host-local too (isolates the main plugin's share)
#   -s  durable leases: cninet-host-local fsyncs each lease (its default). Without -s both
#       configs carry "fsync": false, which the reference host-local ignores (it never fsyncs),
#       so both IPAMs give the same durability.
#
# Everything runs inside two network namespaces this script creates ("node", where the plugins
# run, and "pod"); they and the IPAM data directory are removed on exit. The two plugins are
# interleaved (ref, ours, ref, ours, ...) so drift on a shared machine affects both alike.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
iterations=40
dual=0
our_ipam=cninet-host-local
fsync=false
while getopts "b:n:6rsh" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    n) iterations="$OPTARG" ;;
    6) dual=1 ;;
    r) our_ipam=host-local ;;
    s) fsync=true ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
done
ref_dir=/usr/lib/cni
ours_dir="$build/libexec/cni"
for f in "$ref_dir/ptp" "$ref_dir/host-local" "$ours_dir/cninet-ptp" "$ours_dir/cninet-host-local"; do
  [[ -x "$f" ]] || { echo "missing $f (build the cninet-ptp and cninet-host-local targets)" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }

node="cnbnode$$"
pod="cnbpod$$"
work="$(mktemp -d /tmp/cninet-bench.XXXXXX)"
cleanup() {
  ip netns delete "$pod" 2>/dev/null || true
  ip netns delete "$node" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$node"
ip netns add "$pod"
ip -n "$node" link set lo up

ranges='[[{"subnet":"10.77.0.0/24"}]]'
routes='[{"dst":"0.0.0.0/0"}]'
if [[ $dual -eq 1 ]]; then
  ranges='[[{"subnet":"10.77.0.0/24"}],[{"subnet":"fd00:77::/64"}]]'
  routes='[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]'
fi
conf() {  # conf TYPE IPAM_TYPE
  printf '{"cniVersion":"1.0.0","name":"bench","type":"%s","mtu":1400,"ipam":{"type":"%s","dataDir":"%s/ipam-%s","fsync":%s,"ranges":%s,"routes":%s}}' \
    "$1" "$2" "$work" "$1" "$fsync" "$ranges" "$routes"
}
conf ptp host-local >"$work/ref.json"
conf cninet-ptp "$our_ipam" >"$work/ours.json"

# The timing loop runs inside the node namespace (one bash process), so `ip netns exec` is not
# part of what is measured. $EPOCHREALTIME has microsecond resolution.
cat >"$work/loop.sh" <<'LOOP'
set -u
n="$1"; work="$2"; pod="$3"; ref="$4"; ours="$5"
export CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH="$ours:$ref"
pair() {  # pair BINARY CONF ID -> microseconds for ADD+DEL
  local s e
  s=$EPOCHREALTIME
  CNI_COMMAND=ADD CNI_CONTAINERID="$3" "$1" <"$2" >/dev/null || { echo "ADD failed: $1" >&2; exit 1; }
  CNI_COMMAND=DEL CNI_CONTAINERID="$3" "$1" <"$2" >/dev/null || { echo "DEL failed: $1" >&2; exit 1; }
  e=$EPOCHREALTIME
  echo $(( (${e/./} - ${s/./}) ))
}
for i in 1 2 3; do pair "$ref/ptp" "$work/ref.json" "warm$i" >/dev/null; pair "$ours/cninet-ptp" "$work/ours.json" "warm$i" >/dev/null; done
for ((i = 0; i < n; i++)); do
  echo "ref $(pair "$ref/ptp" "$work/ref.json" "c$i")"
  echo "ours $(pair "$ours/cninet-ptp" "$work/ours.json" "c$i")"
done
LOOP
ip netns exec "$node" bash "$work/loop.sh" "$iterations" "$work" "$pod" "$ref_dir" "$ours_dir" >"$work/samples"

# Nothing may be left behind: every DEL must have removed its veth.
leftover=$(ip -n "$node" -o link show type veth | wc -l)
[[ "$leftover" -eq 0 ]] || { echo "error: $leftover veth left in the node namespace" >&2; exit 1; }

awk -v dual="$dual" -v ours_ipam="$our_ipam" -v fsync="$fsync" '
  { v[$1, ++n[$1]] = $2; sum[$1] += $2 }
  function median(k,   i, j, t, a, m) {
    m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
    for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    mr = median("ref"); mo = median("ours")
    printf "config: ptp, mtu 1400, %s, host-local IPAM (fsync %s); %d ADD+DEL pairs each\n", dual ? "dual-stack" : "IPv4", fsync, n["ref"]
    printf "reference ptp + host-local     : median %7.2f ms  mean %7.2f ms\n", mr / 1000, sum["ref"] / n["ref"] / 1000
    printf "cninet-ptp + %-18s: median %7.2f ms  mean %7.2f ms\n", ours_ipam, mo / 1000, sum["ours"] / n["ours"] / 1000
    printf "ratio cninet/reference (median): %.2fx  (goal <= 0.40x)\n", mo / mr
  }' "$work/samples"
