#!/bin/bash
# The cninet demo (the README's first command): a three-node cluster on one machine, built from
# cninet's components and driven by the reference agent.
#
#   external (192.168.200.100) ----+
#                                  |         switch namespace (bridge br0, the "underlay")
#   node-1 (192.168.200.11) eth0 --+-- node-2 (.12) eth0 --+-- node-3 (.13) eth0
#     cninet-agent, 2 pods            cninet-agent, 2 pods     cninet-agent, 2 pods
#
# Every node, pod, the switch and the external client are network namespaces; etcd listens on
# 127.0.0.1 only; the BPF maps are pinned in a private bpffs under the demo's work directory.
# One cninet-agent per node (--netns: its links, routes, tc programs and sysctls go into the
# node) registers the node, takes a podCIDR, writes the node's CNI conflist and programs the
# datapath. Pods are created with that conflist by cninet-cni (cninet-bridge + cninet-host-local,
# cninet-ebpf, cninet-agent-cni), services are written into etcd with cninetctl as an operator
# would, and real TCP shows: pod to pod across nodes over VXLAN, a ClusterIP answered by backends
# on the other nodes, and a NodePort reached from the external namespace. Everything is removed
# on exit (also on failure or Ctrl-C). The root network namespace is never changed.
#
# The cluster is dual-stack (clusterCIDR 10.244.0.0/16 + fd00:10:244::/56): every pod gets an
# IPv4 and an IPv6 address and every check runs once per family. IPv6 pod to pod crosses the
# nodes over the same VXLAN device (IPv6 inside, IPv4 underlay). The IPv6 ClusterIP and NodePort
# rows are served by the dual-stack datapath and count towards the exit status like the IPv4
# ones (CNINET_DEMO_REQUIRE_IPV6_SERVICES=0 shows them without counting them;
# --require-ipv6-services is accepted and is the default).
#
# Usage: demo.sh BUILD_DIR [--require-ipv6-services]
#        (as root; BUILD_DIR as configured by `cmake --preset dev`)
set -uo pipefail
BUILD=${1:?usage: demo.sh BUILD_DIR [--require-ipv6-services]}
REQUIRE_V6_SERVICES=${CNINET_DEMO_REQUIRE_IPV6_SERVICES:-1}
[ "${2:-}" = "--require-ipv6-services" ] && REQUIRE_V6_SERVICES=1
BUILD=$(cd "$BUILD" && pwd)
BIN=$BUILD/bin
PLUGINS=$BUILD/libexec/cni
TAG=$(printf '%x' $(( $$ % 65536 )))
WORK=$(mktemp -d /tmp/cninet-demo-XXXXXX)
SW=cnd-sw-$TAG
EXT=cnd-ext-$TAG
NODES=(1 2 3)
PODS=(1a 1b 2a 2b 3a 3b)
declare -A POD_IP POD_IP6 POD_NS
AGENT_PIDS=()
OTHER_PIDS=()
ETCD_PID=""
RESULTS=()
FAILED=0

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n'; bold "== $*"; }
info() { printf '   %s\n' "$*"; }
node_ns() { echo "cnd-n$1-$TAG"; }

cleanup() {
  trap - EXIT INT TERM
  printf '\n'
  bold "== cleanup"
  for p in "${AGENT_PIDS[@]}" "${OTHER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${AGENT_PIDS[@]}" "${OTHER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$ETCD_PID" ]; then kill "$ETCD_PID" 2>/dev/null; wait "$ETCD_PID" 2>/dev/null; fi
  for pod in "${PODS[@]}"; do ip netns delete "cnd-p$pod-$TAG" 2>/dev/null; done
  for n in "${NODES[@]}"; do ip netns delete "$(node_ns "$n")" 2>/dev/null; done
  ip netns delete "$EXT" 2>/dev/null
  ip netns delete "$SW" 2>/dev/null
  umount "$WORK/bpffs" 2>/dev/null
  rm -rf "$WORK"
  info "agents, servers and etcd stopped; namespaces, pinned maps and $WORK removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  printf '\n\033[31mdemo failed: %s\033[0m\n' "$*"
  exit 1
}

record() {  # record CHECK RESULT OK(0/1) [COUNTED(0/1), default 1]
  local counted=${4:-1}
  RESULTS+=("$1|$2|$3|$counted")
  [ "$3" = 1 ] || [ "$counted" = 0 ] || FAILED=1
}

# ---------------------------------------------------------------------------------------------
step "1. prerequisites"
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, BPF)"
for f in "$BIN/cninet-agent" "$BIN/cninetctl" "$BIN/cninet-cni" "$BIN/cninet-demo-tcp" \
         "$PLUGINS/cninet-bridge" "$PLUGINS/cninet-host-local" "$PLUGINS/cninet-ebpf" \
         "$PLUGINS/cninet-agent-cni"; do
  [ -x "$f" ] || die "$f is missing: build with 'cmake --preset dev && cmake --build --preset dev'"
done
command -v etcd >/dev/null || die "etcd is missing (apt-get install etcd-server)"
command -v etcdctl >/dev/null || die "etcdctl is missing (apt-get install etcd-client)"
info "binaries from $BUILD, work directory $WORK"

# ---------------------------------------------------------------------------------------------
step "2. the machines: a switch, three nodes and an external client (all network namespaces)"
ip netns add "$SW" && ip -n "$SW" link set lo up &&
  ip -n "$SW" link add br0 type bridge && ip -n "$SW" link set br0 up || die "switch"
for n in "${NODES[@]}"; do
  ns=$(node_ns "$n")
  ip netns add "$ns" && ip -n "$ns" link set lo up || die "node $n"
  ip -n "$SW" link add "p$n" type veth peer name eth0 netns "$ns" &&
    ip -n "$SW" link set "p$n" master br0 && ip -n "$SW" link set "p$n" up &&
    ip -n "$ns" addr add "192.168.200.1$n/24" dev eth0 &&
    ip -n "$ns" addr add "fd00:200::1$n/64" dev eth0 nodad && ip -n "$ns" link set eth0 up ||
    die "node $n uplink"
  info "node-$n   namespace $ns, eth0 192.168.200.1$n/24 fd00:200::1$n/64"
done
ip netns add "$EXT" && ip -n "$EXT" link set lo up &&
  ip -n "$SW" link add pext type veth peer name eth0 netns "$EXT" &&
  ip -n "$SW" link set pext master br0 && ip -n "$SW" link set pext up &&
  ip -n "$EXT" addr add 192.168.200.100/24 dev eth0 &&
  ip -n "$EXT" addr add fd00:200::100/64 dev eth0 nodad && ip -n "$EXT" link set eth0 up ||
  die "external"
info "external namespace $EXT, eth0 192.168.200.100/24 fd00:200::100/64"
mkdir -p "$WORK/bpffs" && mount -t bpf bpf "$WORK/bpffs" || die "mount a bpffs"
info "private bpffs for the pinned maps: $WORK/bpffs"

# ---------------------------------------------------------------------------------------------
step "3. etcd on 127.0.0.1 and the cluster configuration"
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 20000 ))
    ss -ltnH "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}
CPORT=$(free_port)
PPORT=$(free_port)
[ "$CPORT" != "$PPORT" ] || PPORT=$((CPORT + 1))
ETCD=http://127.0.0.1:$CPORT
etcd --name demo --data-dir "$WORK/etcd" \
  --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
  --initial-cluster "demo=http://127.0.0.1:$PPORT" >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1 ||
  die "etcd did not start (log: $(tail -3 "$WORK/etcd.log"))"
info "etcd $(etcd --version | head -1 | awk '{print $3}') serving on $ETCD (pid $ETCD_PID)"
CTL=("$BIN/cninetctl" --etcd "$ETCD")
"${CTL[@]}" put /cninet/v1/config/cluster \
  '{"clusterCIDR":"10.244.0.0/16","serviceCIDR":"10.96.0.0/12","clusterCIDRIPv6":"fd00:10:244::/56","serviceCIDRIPv6":"fd00:10:96::/112"}' \
  >/dev/null || die "cluster config"
info "cluster config: clusterCIDR 10.244.0.0/16 + fd00:10:244::/56, serviceCIDR 10.96.0.0/12 + fd00:10:96::/112"
info "(defaults: /24 and /64 per node, VXLAN VNI 1 port 8472)"

# ---------------------------------------------------------------------------------------------
step "4. one cninet-agent per node"
for n in "${NODES[@]}"; do
  dir=$WORK/node-$n
  mkdir -p "$dir"
  "$BIN/cninet-agent" run --node "node-$n" --netns "/run/netns/$(node_ns "$n")" --uplink eth0 \
    --etcd "$ETCD" --state-dir "$dir" --socket "$dir/agent.sock" --cni-conf-dir "$dir/net.d" \
    --bpffs-root "$WORK/bpffs" >"$dir/agent.log" 2>&1 &
  AGENT_PIDS+=($!)
done
for n in "${NODES[@]}"; do
  if ! "$BIN/cninet-agent" health --socket "$WORK/node-$n/agent.sock" --wait 60 >/dev/null; then
    tail -20 "$WORK/node-$n/agent.log"
    die "the agent of node-$n did not become ready"
  fi
done
info "all three agents ready; the nodes as registered in etcd:"
"${CTL[@]}" get nodes | sed 's/^/     /'
for n in "${NODES[@]}"; do
  conf=$WORK/node-$n/net.d/10-cninet.conflist
  for t in cninet-bridge cninet-host-local cninet-ebpf cninet-agent-cni; do
    grep -q "\"$t\"" "$conf" || die "$conf lacks $t"
  done
  subnet=$(grep -o '"subnet": *"[^"]*"' "$conf" | sed 's/.*: *"//; s/"$//' | paste -sd' ')
  info "node-$n wrote its conflist: cninet-bridge (IPAM cninet-host-local, $subnet) -> cninet-ebpf -> cninet-agent-cni"
done

# ---------------------------------------------------------------------------------------------
step "5. two pods per node, created with each node's conflist by cninet-cni"
for pod in "${PODS[@]}"; do
  n=${pod:0:1}
  ns=cnd-p$pod-$TAG
  ip netns add "$ns" || die "pod namespace"
  POD_NS[$pod]=$ns
  out=$(NETCONFPATH=$WORK/node-$n/net.d CNI_PATH=$PLUGINS:/usr/lib/cni \
        CNI_CACHE_DIR=$WORK/node-$n/cni-cache \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-$pod" \
        ip netns exec "$(node_ns "$n")" "$BIN/cninet-cni" add cninet "/run/netns/$ns") ||
    die "cninet-cni add pod-$pod: $out"
  ip=$(echo "$out" | grep -o '"address": *"[0-9.]*' | head -1 | grep -o '[0-9.]*$')
  [ -n "$ip" ] || die "no address for pod-$pod in: $out"
  POD_IP[$pod]=$ip
  ip6=$(echo "$out" | grep -o '"address": *"[0-9a-f:]*:[0-9a-f:]*/' | head -1 | sed 's/.*"//; s/\/$//')
  [ -n "$ip6" ] || die "no IPv6 address for pod-$pod in: $out"
  POD_IP6[$pod]=$ip6
  ip netns exec "$ns" "$BIN/cninet-demo-tcp" serve 8080 "pod-$pod" >/dev/null 2>&1 &
  OTHER_PIDS+=($!)
  info "pod-$pod on node-$n: $ip $ip6 (TCP server on :8080 answering \"pod-$pod <client address>\")"
done
for n in "${NODES[@]}"; do  # wait until every agent has both of its pods in the datapath
  for _ in $(seq 100); do
    c=$("$BIN/cninet-agent" status --socket "$WORK/node-$n/agent.sock" --json 2>/dev/null |
        grep -o '"programmed":true' | wc -l)
    [ "$c" -ge 2 ] && break
    sleep 0.1
  done
done

# ---------------------------------------------------------------------------------------------
step "6. dual-stack services, written into etcd as an operator would (cninetctl)"
# Endpoints list both addresses of each backend pod, each with its family (as EndpointSlices).
ep() {
  printf '{"ip":"%s","ipFamily":"IPV4","port":8080,"node":"node-%s","pod":"default/pod-%s"},' \
    "${POD_IP[$1]}" "${1:0:1}" "$1"
  printf '{"ip":"%s","ipFamily":"IPV6","port":8080,"node":"node-%s","pod":"default/pod-%s"}' \
    "${POD_IP6[$1]}" "${1:0:1}" "$1"
}
"${CTL[@]}" service set default/web --cluster-ip 10.96.0.10,fd00:10:96::10 \
  --ip-family-policy RequireDualStack --ports 80 >/dev/null &&
"${CTL[@]}" put /cninet/v1/endpoints/default/web \
  "{\"ports\":[{\"backends\":[$(ep 2a),$(ep 3a)]}]}" >/dev/null || die "service web"
info "web:    ClusterIPs 10.96.0.10, fd00:10:96::10 port 80 -> pod-2a (node-2), pod-3a (node-3) :8080"
"${CTL[@]}" service set default/web-np --cluster-ip 10.96.0.11,fd00:10:96::11 \
  --ip-family-policy RequireDualStack --ports 80:30080 >/dev/null &&
"${CTL[@]}" put /cninet/v1/endpoints/default/web-np \
  "{\"ports\":[{\"backends\":[$(ep 2b),$(ep 3b)]}]}" >/dev/null || die "service web-np"
info "web-np: NodePort 30080 on every node (both families) -> pod-2b (node-2), pod-3b (node-3) :8080"
if [ "$REQUIRE_V6_SERVICES" != 1 ]; then
  info "the IPv6 service rows are shown but not counted (CNINET_DEMO_REQUIRE_IPV6_SERVICES=0)"
fi
for n in "${NODES[@]}"; do
  for _ in $(seq 100); do
    "$BIN/cninet-agent" status --socket "$WORK/node-$n/agent.sock" --services 10 2>/dev/null |
      grep -q "nodePort:30080" && break
    sleep 0.1
  done
done
"${CTL[@]}" get services | sed 's/^/     /'

ask() { ip netns exec "$1" "$BIN/cninet-demo-tcp" ask "$2" "$3" 3; }

# ---------------------------------------------------------------------------------------------
step "7. pod to pod across nodes (VXLAN): every pod connects to every pod on the other nodes"
pod_to_pod() {  # pod_to_pod FAMILY(4|6)
  local fam=$1 ok=0 total=0 src dst line reply addr
  for src in "${PODS[@]}"; do
    line="IPv$fam pod-$src ->"
    for dst in "${PODS[@]}"; do
      [ "${src:0:1}" != "${dst:0:1}" ] || continue
      total=$((total + 1))
      if [ "$fam" = 4 ]; then addr=${POD_IP[$dst]}; else addr=${POD_IP6[$dst]}; fi
      reply=$(ask "${POD_NS[$src]}" "$addr" 8080)
      if [ "${reply%% *}" = "pod-$dst" ]; then ok=$((ok + 1)); line="$line pod-$dst:ok"; else line="$line pod-$dst:FAIL"; fi
    done
    info "$line"
  done
  record "pod to pod across nodes over VXLAN (IPv$fam)" "$ok/$total connections" \
    "$([ "$ok" = "$total" ] && echo 1 || echo 0)"
}
pod_to_pod 4
pod_to_pod 6
tx=$(ip netns exec "$(node_ns 1)" cat /sys/class/net/cninet-vxlan/statistics/tx_packets)
info "node-1's routes to the other podCIDRs (added by its agent; IPv6 via the peers' VTEP link-local addresses):"
ip -n "$(node_ns 1)" -4 route show proto 73 | sed 's/^/     /'
ip -n "$(node_ns 1)" -6 route show proto 73 | sed 's/^/     /'
info "node-1's VXLAN device sent $tx packets"

# ---------------------------------------------------------------------------------------------
step "8. ClusterIP port 80 from pod-1a (node-1): answered by the backends on node-2 and node-3"
cluster_ip() {  # cluster_ip FAMILY(4|6) ADDRESS COUNTED
  local fam=$1 vip=$2 counted=$3 ok=0 i reply who
  declare -A seen=()
  for i in $(seq 20); do
    reply=$(ask "${POD_NS[1a]}" "$vip" 80)
    who=${reply%% *}
    case $who in pod-2a|pod-3a) ok=$((ok + 1)); seen[$who]=$(( ${seen[$who]:-0} + 1 )) ;; esac
    [ "$i" = 1 ] && [ "$ok" = 0 ] && break  # not served at all: do not wait 20 times
  done
  info "IPv$fam $vip: pod-2a answered ${seen[pod-2a]:-0}, pod-3a answered ${seen[pod-3a]:-0} of 20 new connections"
  local good=0
  [ "$ok" = 20 ] && [ "${seen[pod-2a]:-0}" -gt 0 ] && [ "${seen[pod-3a]:-0}" -gt 0 ] && good=1
  record "ClusterIP answered by backends on 2 other nodes (IPv$fam)" \
    "$ok/20 (pod-2a ${seen[pod-2a]:-0}, pod-3a ${seen[pod-3a]:-0})" "$good" "$counted"
}
cluster_ip 4 10.96.0.10 1
cluster_ip 6 fd00:10:96::10 "$REQUIRE_V6_SERVICES"

# ---------------------------------------------------------------------------------------------
step "9. NodePort 30080 from the external namespace (backends on the other nodes)"
node_port() {  # node_port FAMILY(4|6) COUNTED
  local fam=$1 counted=$2 ok=0 total=0 n i line reply addr
  for n in "${NODES[@]}"; do
    if [ "$fam" = 4 ]; then addr=192.168.200.1$n; else addr=fd00:200::1$n; fi
    line="$addr:30080 ->"
    for i in $(seq 4); do
      total=$((total + 1))
      reply=$(ask "$EXT" "$addr" 30080)
      case ${reply%% *} in pod-2b|pod-3b) ok=$((ok + 1)); line="$line ${reply% *}";; *) line="$line FAIL";; esac
    done
    info "$line"
  done
  record "NodePort from the external namespace (IPv$fam)" "$ok/$total connections" \
    "$([ "$ok" = "$total" ] && echo 1 || echo 0)" "$counted"
}
node_port 4 1
info "(a backend on another node sees the connecting node as its client: SNAT, so replies return)"
node_port 6 "$REQUIRE_V6_SERVICES"

# ---------------------------------------------------------------------------------------------
step "10. what node-1's agent reports (cninet-agent status)"
"$BIN/cninet-agent" status --socket "$WORK/node-1/agent.sock" | sed 's/^/   /'

# ---------------------------------------------------------------------------------------------
step "result"
printf '   %-58s %-36s %s\n' "CHECK" "RESULT" ""
for r in "${RESULTS[@]}"; do
  IFS='|' read -r name res good counted <<<"$r"
  if [ "$good" = 1 ]; then
    mark=$'\033[32mok\033[0m'
  elif [ "$counted" = 1 ]; then
    mark=$'\033[31mFAILED\033[0m'
  else
    mark=$'\033[33mFAILED (not counted: CNINET_DEMO_REQUIRE_IPV6_SERVICES=0)\033[0m'
  fi
  printf '   %-58s %-36s %s\n' "$name" "$res" "$mark"
done
[ "$FAILED" = 0 ] || die "some checks failed (agent logs were in $WORK/node-*/agent.log)"
bold "demo finished: everything worked"
