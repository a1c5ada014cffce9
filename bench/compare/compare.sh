#!/usr/bin/env bash
# Side-by-side ClusterIP load-balancing, measured in one run for each service count:
#   (a) cninet    the cninet datapath attached in the node (tc eBPF, from-pod hook)
#   (b) nftables  DNAT in the style of kube-proxy's nftables mode (one verdict map over every
#                 VIP . proto . port, a chain per service, a chain per endpoint)
#   (c) iptables  DNAT in the style of kube-proxy's iptables mode (KUBE-SERVICES with a rule per
#                 service, KUBE-SVC-* with probability jumps, KUBE-SEP-* with the DNAT), loaded
#                 with iptables-nft-restore
#   (d) direct    no load balancer: clients use the backend pods' addresses (the ceiling)
#   (e) socklb    cninet as in (a), plus socket-level load balancing serving the client pod's
#                 network namespace: cgroup v2 connect/sendmsg/... programs attached to a cgroup
#                 this script creates (/sys/fs/cgroup/unified/cninet-compare-<pid>), which every
#                 client process of this mode joins; connections leave addressed to a backend
#                 and the tc path only tracks them. Reported in a table of its own, against (a)
#                 and (d), so the columns of the main table stay as they were.
# on the same netns topology, built once per mode, side by side:
#
#   client pod (cli) --veth-- node (rules / cninet programs) --veth-- backend pod b1 (10.244.2.2)
#                                                             --veth-- backend pod b2 (10.244.3.2)
#
# Every service i (VIP 10.96.0.1+i, TCP 80) has the two backend pods (port 8080); one more
# service (10.96.255.254, TCP and UDP 5201) leads to an iperf3 server in b1.
# Metrics:
#   cps   new TCP connections/s through ClusterIPs (cninet-bench-tcp: short connections to 64 VIPs
#         spread evenly over the service list, connect + 16 B request + 64 B response + RST close)
#   conn  median duration of the connect() call alone, us (socket LB table only)
#   tcp   iperf3 TCP throughput through a ClusterIP (one stream), Gbit/s
#   udp   iperf3 UDP 64-byte datagrams at full speed through a ClusterIP, received kpps
#   load  seconds to load the N services (rules / maps)
# Because the machine is shared and its load swings within seconds, the four modes are measured
# in short interleaved slices: cycle after cycle, one slice of each mode (rotating which goes
# first). Each cell of the table is the median over the cycles (min-max in parentheses) and each
# ratio to cninet is the median of the per-cycle ratios, i.e. of measurements seconds apart.
#
# usage: sudo bench/compare/compare.sh [-b BUILD_DIR] [-s "1 1000 10000"] [-r CYCLES] [-d SECONDS]
#                                      [-t CLIENT_THREADS] [-o OUT_DIR] [-P]
#   -b  build directory with bench/compare/cninet-bench-{lb,tcp} (default: build)
#   -s  service counts (default "1 1000 10000")
#   -r  cycles per service count (default 16 for cps, half as many for each iperf3 test)
#   -d  seconds per slice (default 1; plus a 0.2 s warm-up per connection slice)
#   -t  client threads of the connection test (default 4)
#   -o  where compare.md, compare.dat and the PNG plots go (default bench/results)
#   -P  no plots (gnuplot not needed)
#
# Everything lives in network namespaces this script creates (cli, node, b1, b2 for each mode;
# unique names); rules are only ever loaded inside a node namespace. The socket-LB programs are
# only attached to the cgroup this script creates, and serve only the socklb client namespace.
# The namespaces, processes, the cgroup and the work directory are removed on every exit,
# Ctrl-C included. Needs root, iperf3, nft,
# iptables-nft, jq and (unless -P) gnuplot.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
sizes="1 1000 10000"
cycles=16
slice=1
threads=4
out="$repo/bench/results"
plots=1
while getopts "b:s:r:d:t:o:Ph" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    s) sizes="$OPTARG" ;;
    r) cycles="$OPTARG" ;;
    d) slice="$OPTARG" ;;
    t) threads="$OPTARG" ;;
    o) out="$OPTARG" ;;
    P) plots=0 ;;
    *) sed -n '2,40p' "$0"; exit 2 ;;
  esac
done
lb="$build/bench/compare/cninet-bench-lb"
tcp="$build/bench/compare/cninet-bench-tcp"
for f in "$lb" "$tcp"; do
  [[ -x "$f" ]] || { echo "missing $f (build the cninet-bench-lb and cninet-bench-tcp targets)" >&2; exit 1; }
done
need=(ip ss iperf3 nft iptables-nft-restore jq awk)
[[ $plots -eq 1 ]] && need+=(gnuplot)
for c in "${need[@]}"; do
  command -v "$c" >/dev/null || { echo "missing command: $c" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
icycles=$(((cycles + 1) / 2))

modes=(cninet socklb nftables iptables direct)
id="$$"
ns() { echo "cnbc-$1-$2-$id"; }  # ns MODE ROLE
work="$(mktemp -d /tmp/cninet-compare.XXXXXX)"
pids=()
declare -A lb_pids=()
cgroup_root=/sys/fs/cgroup/unified
cgroup="$cgroup_root/cninet-compare-$id"

log() { printf '[compare] %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${lb_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for m in "${modes[@]}"; do
    for role in cli b1 b2 node; do ip netns delete "$(ns "$m" "$role")" 2>/dev/null || true; done
  done
  # The cgroup: its client processes are gone (killed above or finished); the socket-LB links
  # went with cninet-bench-lb. A cgroup still holding a process is emptied to its parent.
  if [[ -d "$cgroup" ]]; then
    for _ in $(seq 50); do rmdir "$cgroup" 2>/dev/null && break; sleep 0.1; done
    if [[ -d "$cgroup" ]]; then
      while read -r p; do echo "$p" >"$cgroup_root/cgroup.procs" 2>/dev/null || true; done <"$cgroup/cgroup.procs"
      rmdir "$cgroup" 2>/dev/null || echo "could not remove $cgroup" >&2
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
[[ $(stat -fc %T "$cgroup_root" 2>/dev/null) == cgroup2fs ]] ||
  { echo "socklb mode needs the cgroup v2 hierarchy at $cgroup_root" >&2; exit 1; }
mkdir "$cgroup"

# Runs a command in the client pod of MODE (socklb: inside the socket-LB cgroup, joined before
# `ip netns exec`, which remounts /sys; every socket the command opens is then translated).
cli() {  # cli MODE CMD...
  local m="$1"
  shift
  if [[ $m == socklb ]]; then
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cgroup" ip netns exec "$(ns "$m" cli)" "$@"
  else
    ip netns exec "$(ns "$m" cli)" "$@"
  fi
}

# ----------------------------------------------------------------------------------------------
# Topologies, one per mode, identical (all links are created inside the namespaces; the root
# namespace is never touched).
wait_listen() {  # wait_listen NS PORT
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  echo "nothing listens on $2 in $1" >&2
  return 1
}
build_topology() {  # build_topology MODE
  local m="$1" cli node b1 b2
  cli=$(ns "$m" cli); node=$(ns "$m" node); b1=$(ns "$m" b1); b2=$(ns "$m" b2)
  for n in "$cli" "$node" "$b1" "$b2"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
  link() {  # link NS HOST_IF NODE_ADDR POD_ADDR
    ip -n "$node" link add "$2" type veth peer name eth0 netns "$1"
    ip -n "$node" addr add "$3/24" dev "$2"
    ip -n "$node" link set "$2" up
    ip -n "$1" addr add "$4/24" dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" route add default via "$3"
  }
  link "$cli" hc 10.244.1.1 10.244.1.2
  link "$b1" hb1 10.244.2.1 10.244.2.2
  link "$b2" hb2 10.244.3.1 10.244.3.2
  ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  for b in "$b1" "$b2"; do
    ip netns exec "$b" "$tcp" server --port 8080 --threads 2 &
    pids+=($!)
  done
  ip netns exec "$b1" iperf3 -s -p 5201 >/dev/null 2>&1 &
  pids+=($!)
  wait_listen "$b1" 8080
  wait_listen "$b2" 8080
  wait_listen "$b1" 5201
}
for m in "${modes[@]}"; do build_topology "$m"; done

IPERF_VIP=10.96.255.254

# ----------------------------------------------------------------------------------------------
# Rule sets. Service i: VIP 10.96.0.1 + i.
gen_nft() {  # gen_nft N > file   (kube-proxy nftables mode: table, verdict map, chains)
  awk -v n="$1" -v vip="$IPERF_VIP" 'function ip(i,  x) { x = i + 1; return sprintf("10.96.%d.%d", int(x / 256), x % 256) }
  BEGIN {
    print "table ip cninet-bench-kube-proxy {"
    print "  chain mark-for-masquerade { mark set mark or 0x4000 ; }"
    print "  chain masquerading { mark and 0x4000 == 0 return; mark set mark xor 0x4000; masquerade fully-random ; }"
    print "  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services ; }"
    print "  chain nat-output { type nat hook output priority -100; policy accept; jump services ; }"
    print "  chain nat-postrouting { type nat hook postrouting priority srcnat; policy accept; jump masquerading ; }"
    for (i = 0; i < n; i++) {
      printf "  chain service-%d { ip daddr %s tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade; numgen random mod 2 vmap { 0 : goto endpoint-%d-a, 1 : goto endpoint-%d-b }; }\n", i, ip(i), i, i
      printf "  chain endpoint-%d-a { ip saddr 10.244.2.2 jump mark-for-masquerade; meta l4proto tcp dnat to 10.244.2.2:8080 ; }\n", i
      printf "  chain endpoint-%d-b { ip saddr 10.244.3.2 jump mark-for-masquerade; meta l4proto tcp dnat to 10.244.3.2:8080 ; }\n", i
    }
    print "  chain service-iperf-tcp { numgen random mod 1 vmap { 0 : goto endpoint-iperf-tcp }; }"
    print "  chain endpoint-iperf-tcp { meta l4proto tcp dnat to 10.244.2.2:5201 ; }"
    print "  chain service-iperf-udp { numgen random mod 1 vmap { 0 : goto endpoint-iperf-udp }; }"
    print "  chain endpoint-iperf-udp { meta l4proto udp dnat to 10.244.2.2:5201 ; }"
    print "  map service-ips {"
    print "    type ipv4_addr . inet_proto . inet_service : verdict"
    printf "    elements = { "
    for (i = 0; i < n; i++) printf "%s . tcp . 80 : goto service-%d, ", ip(i), i
    printf "%s . tcp . 5201 : goto service-iperf-tcp, %s . udp . 5201 : goto service-iperf-udp }\n", vip, vip
    print "  }"
    print "  chain services { ip daddr . meta l4proto . th dport vmap @service-ips ; }"
    print "}"
  }'
}
gen_iptables() {  # gen_iptables N > file   (kube-proxy iptables mode, nat table)
  awk -v n="$1" -v vip="$IPERF_VIP" 'function ip(i,  x) { x = i + 1; return sprintf("10.96.%d.%d", int(x / 256), x % 256) }
  BEGIN {
    print "*nat"
    print ":PREROUTING ACCEPT [0:0]"; print ":INPUT ACCEPT [0:0]"; print ":OUTPUT ACCEPT [0:0]"; print ":POSTROUTING ACCEPT [0:0]"
    print ":KUBE-SERVICES - [0:0]"; print ":KUBE-NODEPORTS - [0:0]"; print ":KUBE-POSTROUTING - [0:0]"; print ":KUBE-MARK-MASQ - [0:0]"
    for (i = 0; i < n; i++) printf ":KUBE-SVC-%06d - [0:0]\n:KUBE-SEP-%06dA - [0:0]\n:KUBE-SEP-%06dB - [0:0]\n", i, i, i
    print ":KUBE-SVC-IPERFTCP - [0:0]"; print ":KUBE-SVC-IPERFUDP - [0:0]"
    print "-A PREROUTING -j KUBE-SERVICES"
    print "-A OUTPUT -j KUBE-SERVICES"
    print "-A POSTROUTING -j KUBE-POSTROUTING"
    print "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"
    print "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
    print "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0"
    print "-A KUBE-POSTROUTING -j MASQUERADE --random-fully"
    for (i = 0; i < n; i++) {
      printf "-A KUBE-SERVICES -d %s/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-%06d\n", ip(i), i
      printf "-A KUBE-SVC-%06d ! -s 10.244.0.0/16 -d %s/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n", i, ip(i)
      printf "-A KUBE-SVC-%06d -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-%06dA\n", i, i
      printf "-A KUBE-SVC-%06d -j KUBE-SEP-%06dB\n", i, i
      printf "-A KUBE-SEP-%06dA -s 10.244.2.2/32 -j KUBE-MARK-MASQ\n-A KUBE-SEP-%06dA -p tcp -m tcp -j DNAT --to-destination 10.244.2.2:8080\n", i, i
      printf "-A KUBE-SEP-%06dB -s 10.244.3.2/32 -j KUBE-MARK-MASQ\n-A KUBE-SEP-%06dB -p tcp -m tcp -j DNAT --to-destination 10.244.3.2:8080\n", i, i
    }
    printf "-A KUBE-SERVICES -d %s/32 -p tcp -m tcp --dport 5201 -j KUBE-SVC-IPERFTCP\n", vip
    printf "-A KUBE-SERVICES -d %s/32 -p udp -m udp --dport 5201 -j KUBE-SVC-IPERFUDP\n", vip
    print "-A KUBE-SVC-IPERFTCP -p tcp -m tcp -j DNAT --to-destination 10.244.2.2:5201"
    print "-A KUBE-SVC-IPERFUDP -p udp -m udp -j DNAT --to-destination 10.244.2.2:5201"
    print "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    print "COMMIT"
  }'
}

# ----------------------------------------------------------------------------------------------
# Modes: setup_<mode> N (in its own node namespace) / teardown_<mode>.
start_lb() {  # start_lb MODE N [EXTRA FLAGS...]
  local m="$1" n="$2"
  shift 2
  rm -f "$work/ready.$m"
  ip netns exec "$(ns "$m" node)" "$lb" --services "$n" --vip-base 10.96.0.1 --port 80 \
    --backend 10.244.2.2:8080 --backend 10.244.3.2:8080 \
    --service "tcp:$IPERF_VIP:5201=10.244.2.2:5201" --service "udp:$IPERF_VIP:5201=10.244.2.2:5201" \
    --attach hc,hb1,hb2 --ready-file "$work/ready.$m" "$@" 2>"$work/lb.$m.log" &
  lb_pids[$m]=$!
  for _ in $(seq 1200); do
    [[ -s "$work/ready.$m" ]] && return 0
    kill -0 "${lb_pids[$m]}" 2>/dev/null || { cat "$work/lb.$m.log" >&2; return 1; }
    sleep 0.1
  done
  echo "cninet-bench-lb ($m) did not get ready" >&2
  return 1
}
stop_lb() {  # stop_lb MODE: stops its cninet-bench-lb, which prints the datapath's counters
  kill -TERM "${lb_pids[$1]}"
  wait "${lb_pids[$1]}"
  unset "lb_pids[$1]"
  log "  $(cat "$work/lb.$1.log")"
}
setup_cninet() { start_lb cninet "$1"; }
teardown_cninet() {
  stop_lb cninet
  # The datapath must have translated the measured traffic (its counters, printed on exit).
  grep -Eq ' dnat=[0-9]+' "$work/lb.cninet.log" || { echo "cninet did not DNAT anything:" >&2; cat "$work/lb.cninet.log" >&2; return 1; }
}
# Socket LB serves the client pod's namespace only, from the cgroup this script created.
# (`ip netns exec` remounts /sys: the helper reaches the cgroup through this script's root.)
setup_socklb() {
  start_lb socklb "$1" --socket-lb-cgroup "/proc/$$/root$cgroup" \
    --socket-lb-netns "/run/netns/$(ns socklb cli)"
}
teardown_socklb() {
  stop_lb socklb
  # Socket LB must have translated the connections, and the tc path DNATed none of them.
  grep -Eq ' event_sock_connect=[0-9]+' "$work/lb.socklb.log" ||
    { echo "socket LB translated nothing:" >&2; cat "$work/lb.socklb.log" >&2; return 1; }
  if grep -Eq ' dnat=[0-9]+' "$work/lb.socklb.log"; then
    echo "socklb: the tc path DNATed packets (socket LB missed them):" >&2; cat "$work/lb.socklb.log" >&2; return 1
  fi
}
setup_nftables() {
  gen_nft "$1" >"$work/nft"
  ip netns exec "$(ns nftables node)" nft -f "$work/nft"
}
teardown_nftables() { ip netns exec "$(ns nftables node)" nft flush ruleset; }
setup_iptables() {
  gen_iptables "$1" >"$work/ipt"
  ip netns exec "$(ns iptables node)" iptables-nft-restore <"$work/ipt"
}
# iptables-nft keeps its rules in nft tables: flushing the ruleset removes them completely.
teardown_iptables() { ip netns exec "$(ns iptables node)" nft flush ruleset; }
setup_direct() { :; }
teardown_direct() { :; }

# Client arguments and iperf3 server address of MODE for N services.
targets() {  # targets MODE N
  if [[ $1 == direct ]]; then echo "--addresses 10.244.2.2,10.244.3.2 --port 8080"
  else echo "--vip-base 10.96.0.1 --services $2 --port 80 --targets 64"; fi
}
iperf_addr() { if [[ $1 == direct ]]; then echo 10.244.2.2; else echo "$IPERF_VIP"; fi; }

# One slice of MODE: appends "N MODE METRIC CYCLE VALUE" to the samples.
slice_cps() {  # slice_cps MODE N CYCLE
  local line
  # shellcheck disable=SC2046
  line=$(cli "$1" "$tcp" client $(targets "$1" "$2") --threads "$threads" \
    --duration "$slice" --warmup 0.2)
  {
    echo "$2 $1 cps $3 $(sed -n 's/.* cps=\([0-9.]*\).*/\1/p' <<<"$line")"
    echo "$2 $1 conn $3 $(sed -n 's/.* connect_p50_us=\([0-9.]*\).*/\1/p' <<<"$line")"
    echo "$2 $1 errors $3 $(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")"
  } >>"$work/samples"
}
slice_iperf() {  # slice_iperf MODE N CYCLE tcp|udp
  local j v
  if [[ $4 == tcp ]]; then
    j=$(cli "$1" iperf3 -c "$(iperf_addr "$1")" -p 5201 -t "$slice" -J)
    v=$(jq -r '.end.sum_received.bits_per_second / 1e9' <<<"$j")
  else
    j=$(cli "$1" iperf3 -c "$(iperf_addr "$1")" -p 5201 -u -b 0 -l 64 -t "$slice" -J)
    v=$(jq -r '(.end.sum.packets - .end.sum.lost_packets) / .end.sum.seconds / 1e3' <<<"$j")
  fi
  echo "$2 $1 $4 $3 $v" >>"$work/samples"
}
# Runs FN for every mode, cycle after cycle, rotating which mode goes first.
interleave() {  # interleave FN N CYCLES [ARG]
  local fn="$1" n="$2" c k i
  for ((c = 1; c <= $3; c++)); do
    for ((k = 0; k < ${#modes[@]}; k++)); do
      i=$(((k + c - 1) % ${#modes[@]}))
      "$fn" "${modes[$i]}" "$n" "$c" "${4:-}"
    done
  done
}

log "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); sizes: $sizes; $cycles cycles of ${slice} s slices"
load_start=$(cut -d' ' -f1 /proc/loadavg)
: >"$work/samples"
for n in $sizes; do
  for m in "${modes[@]}"; do
    t0=$EPOCHREALTIME
    "setup_$m" "$n"
    t1=$EPOCHREALTIME
    [[ $m == direct ]] || echo "$n $m load 1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" >>"$work/samples"
    # Connectivity check: a failure here is an error, not a zero.
    # shellcheck disable=SC2046
    cli "$m" "$tcp" client $(targets "$m" "$n") --threads 1 --duration 0.3 \
      --warmup 0 >/dev/null || { echo "$m, $n services: connections through the ClusterIPs fail" >&2; exit 1; }
    log "$m: $n services loaded in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
  done
  log "$n services: $cycles connection-rate cycles"
  interleave slice_cps "$n" "$cycles"
  log "$n services: $icycles iperf3 TCP and UDP cycles"
  interleave slice_iperf "$n" "$icycles" tcp
  interleave slice_iperf "$n" "$icycles" udp
  for m in "${modes[@]}"; do "teardown_$m"; done
  awk -v n="$n" '$1 == n && $3 == "cps" { s[$2] += $5; c[$2]++ }
    END { for (m in s) printf "[compare] %s services: %-8s %8.0f conn/s (mean of %d slices)\n", n, m, s[m] / c[m], c[m] }' \
    "$work/samples" >&2
done
load_end=$(cut -d' ' -f1 /proc/loadavg)
errors=$(awk '$3 == "errors" { e[$2] += $5 } END { printf "cninet %d, nftables %d, iptables %d, direct %d, socklb %d", e["cninet"], e["nftables"], e["iptables"], e["direct"], e["socklb"] }' "$work/samples")
log "failed connections over the whole run: $errors"

# ----------------------------------------------------------------------------------------------
# Table (medians over cycles; ratios = medians of per-cycle ratios to cninet) and plot data.
awk -v sizes="$sizes" -v cycles="$cycles" -v icycles="$icycles" -v slice="$slice" \
    -v threads="$threads" -v kernel="$(uname -r)" -v cpus="$(nproc)" -v l0="$load_start" \
    -v l1="$load_end" -v errors="$errors" -v dat="$out/compare.dat" \
    -v when="$(date -u '+%Y-%m-%d %H:%M UTC')" '
  { v[$1, $2, $3, $4] = $5; key[$1, $2, $3] = 1; if ($4 > maxc[$1, $3]) maxc[$1, $3] = $4 }
  function sort(a, m,   i, j, t) {
    for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  }
  function median(a, m) { sort(a, m); return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  # median value of MODE/METRIC at N with min-max, formatted with f
  function cell(n, mode, metric, f,   a, m, c, med) {
    m = 0
    for (c = 1; c <= maxc[n, metric]; c++) if ((n, mode, metric, c) in v) a[++m] = v[n, mode, metric, c]
    if (m == 0) return "-"
    med = median(a, m)
    MED[mode, metric] = med
    return (m == 1) ? sprintf(f, med) : sprintf(f " (" f "-" f ")", med, a[1], a[m])
  }
  # median over cycles of MODE/cninet for METRIC at N
  function ratio(n, mode, metric) { return ratio_to(n, mode, "cninet", metric) }
  # median over cycles of MODE/BASE for METRIC at N (R[mode, metric] keeps it when BASE is cninet)
  function ratio_to(n, mode, base, metric,   a, m, c, r) {
    m = 0
    for (c = 1; c <= maxc[n, metric]; c++)
      if (((n, mode, metric, c) in v) && ((n, base, metric, c) in v) && v[n, base, metric, c] > 0)
        a[++m] = v[n, mode, metric, c] / v[n, base, metric, c]
    if (m == 0) return "-"
    r = median(a, m)
    if (base == "cninet") R[mode, metric] = r
    return sprintf("%.2f", r)
  }
  # a row of the socket-LB table: socklb next to the packet path and direct
  function srow(n, metric, label, f,   cs, cc, cd) {
    cs = cell(n, "socklb", metric, f); cc = cell(n, "cninet", metric, f); cd = cell(n, "direct", metric, f)
    return sprintf("| %d | %s | %s | %s | %s | %s | %s |\n", n, label, cs, cc, cd, ratio_to(n, "socklb", "cninet", metric), ratio_to(n, "socklb", "direct", metric))
  }
  function row(n, metric, label, f,   cc, cn, ci, cd) {
    cc = cell(n, "cninet", metric, f); cn = cell(n, "nftables", metric, f); ci = cell(n, "iptables", metric, f); cd = cell(n, "direct", metric, f)
    printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, label, cc, cn, ci, cd, ratio(n, "nftables", metric), ratio(n, "iptables", metric), ratio(n, "direct", metric)
  }
  function verdict(ok) { return ok ? "met" : "MISSED" }
  END {
    ns = split(sizes, S, " ")
    printf "Measured %s on kernel %s, %d CPUs shared by the five topologies (client, node, servers) and with other work on the machine (load average %s at start, %s at end). Each cell: median over %d cycles of interleaved %s s slices (min-max in parentheses); each ratio: median of the per-cycle ratios to cninet. Connection test: %d client threads; failed connections in the whole run: %s.\n\n", when, kernel, cpus, l0, l1, cycles, slice, threads, errors
    print "| services | metric | cninet | nftables | iptables | direct (no NAT) | nftables / cninet | iptables / cninet | direct / cninet |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    print "# services cps_cninet cps_nftables cps_iptables tcp_cninet tcp_nftables tcp_iptables udp_cninet udp_nftables udp_iptables cps_direct tcp_direct udp_direct cps_socklb tcp_socklb udp_socklb" > dat
    sl = ""
    for (s = 1; s <= ns; s++) {
      n = S[s]
      row(n, "cps", "new TCP connections/s", "%.0f")
      for (mo in MED) CPS[mo] = MED[mo]
      cc[n] = MED["cninet", "cps"]; ri[n] = R["iptables", "cps"]; rn[n] = R["nftables", "cps"]; rd[n] = R["direct", "cps"]
      c1 = MED["cninet", "cps"]; c2 = MED["nftables", "cps"]; c3 = MED["iptables", "cps"]; c4 = MED["direct", "cps"]
      row(n, "tcp", "iperf3 TCP, Gbit/s", "%.2f")
      t1 = MED["cninet", "tcp"]; t2 = MED["nftables", "tcp"]; t3 = MED["iptables", "tcp"]; t4 = MED["direct", "tcp"]
      row(n, "udp", "iperf3 UDP 64 B, kpps received", "%.1f")
      u1 = MED["cninet", "udp"]; u2 = MED["nftables", "udp"]; u3 = MED["iptables", "udp"]; u4 = MED["direct", "udp"]
      printf "| %d | load the %d services (rules / maps), s | %s | %s | %s | - | | | |\n", n, n, cell(n, "cninet", "load", "%.2f"), cell(n, "nftables", "load", "%.2f"), cell(n, "iptables", "load", "%.2f")
      sl = sl srow(n, "cps", "new TCP connections/s", "%.0f") srow(n, "conn", "connect() call, median us", "%.1f")
      s1 = MED["socklb", "cps"]
      sl = sl srow(n, "tcp", "iperf3 TCP, Gbit/s", "%.2f")
      s2 = MED["socklb", "tcp"]
      sl = sl srow(n, "udp", "iperf3 UDP 64 B, kpps received", "%.1f")
      s3 = MED["socklb", "udp"]
      printf "%d %.0f %.0f %.0f %.3f %.3f %.3f %.1f %.1f %.1f %.0f %.3f %.1f %.0f %.3f %.1f\n", n, c1, c2, c3, t1, t2, t3, u1, u2, u3, c4, t4, u4, s1, s2, s3 > dat
    }
    print ""
    if ((10000 in ri) && ri[10000] > 0)
      printf "- Goal: cninet >= 3x the connection rate of iptables at 10k services: %.2fx (%s). Without any load balancer (direct) the same topology reaches %.2fx of iptables.\n", 1 / ri[10000], verdict(1 / ri[10000] >= 3), rd[10000] / ri[10000]
    if ((1 in rn) && rn[1] > 0)
      printf "- Goal: cninet at least on par with nftables at 1 service (connection rate): %.2fx (%s, counting >= 0.95 as on par).\n", 1 / rn[1], verdict(1 / rn[1] >= 0.95)
    print ""
    print "**Socket LB** (mode socklb: the same cninet datapath plus the socket-LB programs on a cgroup of the client process, serving the client pod'"'"'s namespace; connections leave already addressed to a backend). Same cycles, interleaved with the modes above; ratios are medians of per-cycle ratios. The connect() row is the call alone (SYN / SYN-ACK round trip plus the connect hook), lower is better.\n"
    print "| services | metric | socklb | cninet (packet path) | direct (no NAT) | socklb / cninet | socklb / direct |"
    print "|---:|---|---:|---:|---:|---:|---:|"
    printf "%s", sl
  }' "$work/samples" >"$out/compare.md"

if [[ $plots -eq 1 ]]; then
  gnuplot -e "out='$out'" "$here/plot.gp"
fi
cat "$out/compare.md"
echo "compare: wrote $out/compare.md (cps vs cninet ratios above)"
