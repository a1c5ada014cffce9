#!/usr/bin/env bash
# Side-by-side ClusterIP load-balancing: (a) the cninet datapath attached in the node, (b)
# nftables DNAT in the style of kube-proxy's nftables mode (one verdict map over every
# VIP . proto . port), (c) iptables DNAT in the style of kube-proxy's iptables mode (one chain per
# service, probability jumps to one chain per endpoint), measured in one run for each service
# count on the same netns topology:
#
#   client pod (cli) --veth-- node (rules / cninet programs) --veth-- backend pod b1 (10.244.2.2)
#                                                             --veth-- backend pod b2 (10.244.3.2)
#
# Every service i (VIP 10.96.0.1+i, TCP 80) has the two backend pods (port 8080); one more
# service (10.96.255.254, TCP and UDP 5201) leads to an iperf3 server in b1.
# Metrics, per mode and service count (medians over the rounds):
#   cps      new TCP connections/s through ClusterIPs (cninet-bench-tcp: short connections to 64
#            VIPs spread evenly over the service list, connect + 16 B request + 64 B response +
#            RST close; several client threads)
#   tcp      iperf3 TCP throughput through a ClusterIP (one stream), Gbit/s
#   udp      iperf3 UDP 64-byte datagrams at full speed through a ClusterIP, received kpps
# and each figure as a ratio to cninet's in the same run. A fourth mode, "direct", connects to the
# backend pods' own addresses with no load balancer at all: the ceiling of this topology. Rounds
# interleave the modes (cninet, nftables, iptables, direct, cninet, ...) so drift on a shared
# machine hits all of them alike.
#
# usage: sudo bench/compare/compare.sh [-b BUILD_DIR] [-s "1 1000 10000"] [-r ROUNDS] [-d SECONDS]
#                                      [-t CLIENT_THREADS] [-o OUT_DIR] [-P]
#   -b  build directory with bench/compare/cninet-bench-{lb,tcp} (default: build)
#   -s  service counts (default "1 1000 10000")
#   -r  rounds per mode and count (default 5)
#   -d  seconds per measurement (default 4; the connection test adds a 1 s warm-up)
#   -t  client threads of the connection test (default 4)
#   -o  where compare.md, compare.dat and the PNG plots go (default bench/results)
#   -P  no plots (gnuplot not needed)
#
# Everything lives in four network namespaces this script creates (cli, node, b1, b2; unique
# names); rules are only ever loaded inside the node namespace. The namespaces, processes and the
# work directory are removed on every exit, Ctrl-C included. Needs root, iperf3, nft,
# iptables-nft, jq and (unless -P) gnuplot.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
sizes="1 1000 10000"
rounds=5
secs=4
threads=4
out="$repo/bench/results"
plots=1
while getopts "b:s:r:d:t:o:Ph" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    s) sizes="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    d) secs="$OPTARG" ;;
    t) threads="$OPTARG" ;;
    o) out="$OPTARG" ;;
    P) plots=0 ;;
    *) sed -n '2,36p' "$0"; exit 2 ;;
  esac
done
lb="$build/bench/compare/cninet-bench-lb"
tcp="$build/bench/compare/cninet-bench-tcp"
for f in "$lb" "$tcp"; do
  [[ -x "$f" ]] || { echo "missing $f (build the cninet-bench-lb and cninet-bench-tcp targets)" >&2; exit 1; }
done
need=(ip iperf3 nft iptables-nft-restore jq awk)
[[ $plots -eq 1 ]] && need+=(gnuplot)
for c in "${need[@]}"; do
  command -v "$c" >/dev/null || { echo "missing command: $c" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"

id="$$"
cli="cnbc-cli-$id"
node="cnbc-node-$id"
b1="cnbc-b1-$id"
b2="cnbc-b2-$id"
work="$(mktemp -d /tmp/cninet-compare.XXXXXX)"
pids=()
lb_pid=""

log() { printf '[compare] %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$lb_pid" ]]; then kill -TERM "$lb_pid" 2>/dev/null || true; wait "$lb_pid" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$cli" "$b1" "$b2" "$node"; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ----------------------------------------------------------------------------------------------
# Topology (all links are created inside the namespaces; the root namespace is never touched).
for ns in "$cli" "$node" "$b1" "$b2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
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

for ns in "$b1" "$b2"; do
  ip netns exec "$ns" "$tcp" server --port 8080 --threads 2 &
  pids+=($!)
done
ip netns exec "$b1" iperf3 -s -p 5201 >/dev/null 2>&1 &
pids+=($!)
wait_listen() {  # wait_listen NS PORT
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  echo "nothing listens on $2 in $1" >&2
  return 1
}
wait_listen "$b1" 8080
wait_listen "$b2" 8080
wait_listen "$b1" 5201

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
    print "  ; }"
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
# Modes: setup_<mode> N / teardown_<mode>.
setup_cninet() {
  rm -f "$work/ready"
  ip netns exec "$node" "$lb" --services "$1" --vip-base 10.96.0.1 --port 80 \
    --backend 10.244.2.2:8080 --backend 10.244.3.2:8080 \
    --service "tcp:$IPERF_VIP:5201=10.244.2.2:5201" --service "udp:$IPERF_VIP:5201=10.244.2.2:5201" \
    --attach hc,hb1,hb2 --ready-file "$work/ready" 2>"$work/lb.log" &
  lb_pid=$!
  for _ in $(seq 1200); do
    [[ -s "$work/ready" ]] && return 0
    kill -0 "$lb_pid" 2>/dev/null || { cat "$work/lb.log" >&2; return 1; }
    sleep 0.1
  done
  echo "cninet-bench-lb did not get ready" >&2
  return 1
}
teardown_cninet() {
  kill -TERM "$lb_pid"
  wait "$lb_pid"
  lb_pid=""
  # The datapath must have translated the measured traffic (its counters, printed on exit).
  grep -Eq ' dnat=[0-9]+' "$work/lb.log" || { echo "cninet did not DNAT anything:" >&2; cat "$work/lb.log" >&2; return 1; }
  log "  $(cat "$work/lb.log")"
}
setup_nftables() {
  [[ -f "$work/nft-$1" ]] || gen_nft "$1" >"$work/nft-$1"
  ip netns exec "$node" nft -f "$work/nft-$1"
}
teardown_nftables() { ip netns exec "$node" nft flush ruleset; }
setup_iptables() {
  [[ -f "$work/ipt-$1" ]] || gen_iptables "$1" >"$work/ipt-$1"
  ip netns exec "$node" iptables-nft-restore <"$work/ipt-$1"
}
# iptables-nft keeps its rules in nft tables: flushing the ruleset removes them (and the conntrack
# hooks they required) completely.
teardown_iptables() { ip netns exec "$node" nft flush ruleset; }
# No load balancer: the clients use the backend pods' addresses (the ceiling of the topology).
setup_direct() { :; }
teardown_direct() { :; }

measure() {  # measure MODE N ROUND -> appends "N MODE ROUND cps tcp_gbps udp_kpps setup_s" to samples
  local mode="$1" n="$2" r="$3" t0 t1 line cps tcpj udpj tcpg udpk setup
  t0=$EPOCHREALTIME
  "setup_$mode" "$n"
  t1=$EPOCHREALTIME
  setup=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  local targets=(--vip-base 10.96.0.1 --services "$n" --port 80 --targets 64) ivip="$IPERF_VIP"
  if [[ $mode == direct ]]; then
    targets=(--addresses 10.244.2.2,10.244.3.2 --port 8080)
    ivip=10.244.2.2
  fi
  # Connectivity check first: a failure here is an error, not a zero.
  ip netns exec "$cli" "$tcp" client "${targets[@]}" --threads 1 --duration 0.3 --warmup 0 \
    >/dev/null || { echo "$mode, $n services: connections through the ClusterIPs fail" >&2; return 1; }
  line=$(ip netns exec "$cli" "$tcp" client "${targets[@]}" --threads "$threads" \
    --duration "$secs" --warmup 1)
  cps=$(sed -n 's/.* cps=\([0-9.]*\).*/\1/p' <<<"$line")
  tcpj=$(ip netns exec "$cli" iperf3 -c "$ivip" -p 5201 -t "$secs" -J)
  tcpg=$(jq -r '.end.sum_received.bits_per_second / 1e9' <<<"$tcpj")
  udpj=$(ip netns exec "$cli" iperf3 -c "$ivip" -p 5201 -u -b 0 -l 64 -t "$secs" -J)
  udpk=$(jq -r '(.end.sum.packets - .end.sum.lost_packets) / .end.sum.seconds / 1e3' <<<"$udpj")
  "teardown_$mode"
  log "$(printf '%-8s %6s services round %s: %8.0f conn/s  %6.2f Gbit/s TCP  %7.1f kpps UDP  (setup %s s; %s)' \
    "$mode" "$n" "$r" "$cps" "$tcpg" "$udpk" "$setup" "$line")"
  echo "$n $mode $r $cps $tcpg $udpk $setup" >>"$work/samples"
}

log "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); sizes: $sizes; $rounds round(s) of ${secs} s"
load_start=$(cut -d' ' -f1 /proc/loadavg)
: >"$work/samples"
for ((r = 1; r <= rounds; r++)); do
  for n in $sizes; do
    for mode in cninet nftables iptables direct; do
      measure "$mode" "$n" "$r"
    done
  done
done
load_end=$(cut -d' ' -f1 /proc/loadavg)

# ----------------------------------------------------------------------------------------------
# Table (medians over rounds; ratios to cninet in the same run) and plot data.
awk -v sizes="$sizes" -v rounds="$rounds" -v secs="$secs" -v threads="$threads" \
    -v kernel="$(uname -r)" -v cpus="$(nproc)" -v l0="$load_start" -v l1="$load_end" \
    -v dat="$out/compare.dat" -v when="$(date -u '+%Y-%m-%d %H:%M UTC')" '
  { k = $1 SUBSEP $2; c = ++cnt[k]; cps[k, c] = $4; tcp[k, c] = $5; udp[k, c] = $6; su[k, c] = $7 }
  function med(arr, k, m,   i, j, t, a) {
    for (i = 1; i <= m; i++) a[i] = arr[k, i]
    for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    LO = a[1]; HI = a[m]
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  # "median (min-max)" of the rounds, with format f for each number
  function cell(arr, k, m, f,   v) {
    v = med(arr, k, m)
    if (m == 1) return sprintf(f, v)
    return sprintf(f " (" f "-" f ")", v, LO, HI)
  }
  function verdict(ok) { return ok ? "met" : "MISSED" }
  END {
    ns = split(sizes, S, " ")
    printf "Measured %s on kernel %s, %d CPUs shared with the whole topology (client, node, servers) and with other work on the machine (load average %s at start, %s at end): treat differences under ~10 %% as noise. Each cell: median of %d round(s) of %d s (min-max in parentheses); ratios are of the medians; connection test with %d client threads.\n\n", when, kernel, cpus, l0, l1, rounds, secs, threads
    print "| services | metric | cninet | nftables | iptables | direct (no NAT) | nftables / cninet | iptables / cninet | direct / cninet |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    print "# services cps_cninet cps_nftables cps_iptables tcp_cninet tcp_nftables tcp_iptables udp_cninet udp_nftables udp_iptables cps_direct tcp_direct udp_direct" > dat
    for (s = 1; s <= ns; s++) {
      n = S[s]
      for (mi = 1; mi <= 4; mi++) {
        mode = (mi == 1) ? "cninet" : (mi == 2) ? "nftables" : (mi == 3) ? "iptables" : "direct"
        k = n SUBSEP mode; m = cnt[k]
        C[mode] = med(cps, k, m); T[mode] = med(tcp, k, m); U[mode] = med(udp, k, m); P[mode] = med(su, k, m)
        CC[mode] = cell(cps, k, m, "%.0f"); TT[mode] = cell(tcp, k, m, "%.2f"); UU[mode] = cell(udp, k, m, "%.1f"); PP[mode] = cell(su, k, m, "%.2f")
      }
      printf "| %d | new TCP connections/s | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", n, CC["cninet"], CC["nftables"], CC["iptables"], CC["direct"], C["nftables"] / C["cninet"], C["iptables"] / C["cninet"], C["direct"] / C["cninet"]
      printf "| %d | iperf3 TCP, Gbit/s | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", n, TT["cninet"], TT["nftables"], TT["iptables"], TT["direct"], T["nftables"] / T["cninet"], T["iptables"] / T["cninet"], T["direct"] / T["cninet"]
      printf "| %d | iperf3 UDP 64 B, kpps received | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", n, UU["cninet"], UU["nftables"], UU["iptables"], UU["direct"], U["nftables"] / U["cninet"], U["iptables"] / U["cninet"], U["direct"] / U["cninet"]
      printf "| %d | load the %d services (rules / maps), s | %s | %s | %s | - | %.2f | %.2f | - |\n", n, n, PP["cninet"], PP["nftables"], PP["iptables"], P["nftables"] / (P["cninet"] > 0 ? P["cninet"] : 0.01), P["iptables"] / (P["cninet"] > 0 ? P["cninet"] : 0.01)
      printf "%d %.0f %.0f %.0f %.3f %.3f %.3f %.1f %.1f %.1f %.0f %.3f %.1f\n", n, C["cninet"], C["nftables"], C["iptables"], T["cninet"], T["nftables"], T["iptables"], U["cninet"], U["nftables"], U["iptables"], C["direct"], T["direct"], U["direct"] > dat
      cc[n] = C["cninet"]; cn[n] = C["nftables"]; ci[n] = C["iptables"]; cd[n] = C["direct"]
    }
    print ""
    if ((10000 in cc) && ci[10000] > 0)
      printf "- Goal: cninet >= 3x the connection rate of iptables at 10k services: %.2fx (%s); with no load balancer at all (direct) the same topology reaches %.2fx of iptables.\n", cc[10000] / ci[10000], verdict(cc[10000] >= 3 * ci[10000]), cd[10000] / ci[10000]
    if ((1 in cc) && cn[1] > 0)
      printf "- Goal: cninet at least on par with nftables at 1 service (connection rate): %.2fx (%s, counting ratios >= 0.95 as on par).\n", cc[1] / cn[1], verdict(cc[1] >= 0.95 * cn[1])
  }' "$work/samples" >"$out/compare.md"

if [[ $plots -eq 1 ]]; then
  gnuplot -e "out='$out'" "$here/plot.gp"
fi
cat "$out/compare.md"
echo "compare: wrote $out/compare.md (cps vs cninet ratios above)"
