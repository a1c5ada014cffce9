#!/usr/bin/env bash
# Times ADD+DEL of cninet-host-local against the reference host-local (/usr/lib/cni/host-local)
# on the same configuration, in the same run, and prints the ratio (goal: <= 0.5x).
#
# usage: sudo bench/ipam/compare_host_local.sh [-b BUILD_DIR] [-n PAIRS] [-r ROUNDS] [-l LIVE]
#   -b  build directory holding plugins/cninet-host-local (default: build)
#   -n  ADD+DEL pairs per plugin per round (default 50)
#   -r  rounds (default 5); every round runs each variant once, in a rotating order, so load on
#       a shared machine hits all of them alike; the per-variant median over rounds is reported
#   -l  leases held by other containers while timing (default 32, a busy node); each variant
#       has its own dataDir with the same occupancy
#
# Variants: the reference plugin; ours as configured by default (lease file and directory
# fsync'ed); ours with "fsync": false (same atomic writes, no power-loss durability, which the
# reference never has). The exec floor (/bin/true run the same way) is printed for context.
# Everything runs inside a "node" network namespace this script creates, with CNI_NETNS a "pod"
# namespace; both and the data directories are removed on exit. Needs root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
pairs=50
rounds=5
live=32
while getopts "b:n:r:l:h" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    n) pairs="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    l) live="$OPTARG" ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done
ref=/usr/lib/cni/host-local
ours="$build/libexec/cni/cninet-host-local"
for f in "$ref" "$ours"; do
  [[ -x "$f" ]] || { echo "missing $f (build the cninet-host-local target)" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }

node="cnihlnode$$"
pod="cnihlpod$$"
work="$(mktemp -d /tmp/cninet-ipam-bench.XXXXXX)"
cleanup() {
  ip netns delete "$pod" 2>/dev/null || true
  ip netns delete "$node" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$node"
ip netns add "$pod"

conf() {  # conf VARIANT EXTRA
  printf '{"cniVersion":"1.0.0","name":"bench","type":"mock","ipam":{"type":"host-local","dataDir":"%s/%s",%s"ranges":[[{"subnet":"10.77.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}]}}' \
    "$work" "$1" "$2"
}
conf ref "" >"$work/ref.json"
conf ours "" >"$work/ours.json"
conf nosync '"fsync":false,' >"$work/nosync.json"
cp "$work/ours.json" "$work/floor.json"

# worker PLUGIN CONF PREFIX COUNT: COUNT ADD+DEL pairs; prints the elapsed microseconds.
worker() {
  local plugin=$1 conf=$2 prefix=$3 n=$4 i start end
  export CNI_NETNS="/run/netns/$POD" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni
  start=${EPOCHREALTIME/./}
  for ((i = 0; i < n; i++)); do
    CNI_COMMAND=ADD CNI_CONTAINERID="$prefix$i" "$plugin" <"$conf" >/dev/null ||
      { echo "ADD failed: $plugin $prefix$i" >&2; return 1; }
    CNI_COMMAND=DEL CNI_CONTAINERID="$prefix$i" "$plugin" <"$conf" >/dev/null ||
      { echo "DEL failed: $plugin $prefix$i" >&2; return 1; }
  done
  end=${EPOCHREALTIME/./}
  echo $((end - start))
}
# fill PLUGIN CONF COUNT: COUNT ADDs that stay (other pods of the node).
fill() {
  local plugin=$1 conf=$2 n=$3 i
  export CNI_NETNS="/run/netns/$POD" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_COMMAND=ADD
  for ((i = 0; i < n; i++)); do
    CNI_CONTAINERID="live$i" "$plugin" <"$conf" >/dev/null || { echo "fill failed: $plugin" >&2; return 1; }
  done
}
in_node() { ip netns exec "$node" env POD="$pod" bash -c "$(declare -f worker fill); $*"; }

declare -A plugin=([ref]="$ref" [ours]="$ours" [nosync]="$ours" [floor]=/bin/true)
variants=(ref ours nosync floor)
for v in ref ours nosync; do
  in_node fill "${plugin[$v]}" "$work/$v.json" "$live"
  in_node worker "${plugin[$v]}" "$work/$v.json" "warm$v" 3 >/dev/null  # warm-up
done

declare -A samples
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#variants[@]}; k++)); do
    v=${variants[$(((k + r) % ${#variants[@]}))]}
    us=$(in_node worker "${plugin[$v]}" "$work/$v.json" "r${r}$v" "$pairs")
    samples[$v]+="$us "
  done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
declare -A per_pair
for v in "${variants[@]}"; do
  m=$(echo "${samples[$v]}" | median)
  per_pair[$v]=$(awk -v m="$m" -v n="$pairs" 'BEGIN {printf "%.3f", m / n / 1000}')
done

# No lease may leak: each network holds exactly its $live long-lived leases.
for v in ref ours nosync; do
  left=$(find "$work/$v/bench" -maxdepth 1 -type f ! -name lock ! -name 'last_reserved_ip.*' ! -name '.*' | wc -l)
  [[ "$left" -eq "$live" ]] || { echo "variant $v leaked leases: $left files, expected $live" >&2; exit 1; }
done

ratio() { awk -v a="${per_pair[$1]}" -v b="${per_pair[ref]}" 'BEGIN {printf "%.2fx", a / b}'; }
# The same ratio for the time spent above the exec floor (what the plugins themselves cost).
net_ratio() {
  awk -v a="${per_pair[$1]}" -v b="${per_pair[ref]}" -v f="${per_pair[floor]}" \
    'BEGIN {if (b - f <= 0) print "n/a"; else printf "%.2fx", (a - f) / (b - f)}'
}
echo "ADD+DEL wall time per pair, median of $rounds rounds x $pairs pairs, $live live leases, same run:"
printf '  %-38s %8s ms\n' "exec floor (/bin/true, same stdin/env)" "${per_pair[floor]}"
printf '  %-38s %8s ms  %s\n' "reference host-local" "${per_pair[ref]}" "1.00x"
printf '  %-38s %8s ms  %s  (above floor %s)\n' "cninet-host-local (default, fsync)" "${per_pair[ours]}" \
  "$(ratio ours)" "$(net_ratio ours)"
printf '  %-38s %8s ms  %s  (above floor %s)\n' "cninet-host-local (\"fsync\": false)" "${per_pair[nosync]}" \
  "$(ratio nosync)" "$(net_ratio nosync)"
echo "ratio=$(ratio ours) ratio_nofsync=$(ratio nosync) net_ratio=$(net_ratio ours)" \
  "net_ratio_nofsync=$(net_ratio nosync) (goal <= 0.50x)"
