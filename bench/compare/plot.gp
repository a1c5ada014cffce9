# Plots of bench/compare/compare.sh from <out>/compare.dat; usage: gnuplot -e "out='DIR'" plot.gp
# (compare.sh calls it after a run).
set terminal pngcairo size 960,600 font "sans,11" noenhanced
dat = out . "/compare.dat"
set output out . "/compare_cps.png"
set title "New TCP connections/s through a ClusterIP (higher is better)"
set xlabel "services"
set ylabel "connections/s"
set logscale x
set xrange [0.5:*]
set yrange [0:*]
set grid
set key outside below box maxrows 3
plot dat using 1:2 with linespoints lw 2 pt 7 lc rgb "#b2182b" title "cninet (tc eBPF)", \
     "" using 1:3 with linespoints lw 2 pt 5 lc rgb "#2166ac" title "nftables (kube-proxy nftables mode)", \
     "" using 1:4 with linespoints lw 2 pt 9 lc rgb "#1b7837" title "iptables (kube-proxy iptables mode, iptables-nft)", \
     "" using 1:14 with linespoints lw 2 dt 3 pt 7 lc rgb "#e08214" title "cninet with socket LB (connect hook)", \
     "" using 1:11 with linespoints lw 1 dt 2 pt 1 lc rgb "#000000" title "direct to the backend pods (no load balancer)"
set output out . "/compare_throughput.png"
set title "iperf3 through a ClusterIP: TCP Gbit/s (solid, left axis), UDP 64 B kpps (dashed, right axis)"
set ylabel "TCP Gbit/s"
set y2label "UDP kpps received"
set y2tics
set y2range [0:*]
set ytics nomirror
plot dat using 1:5 with linespoints lw 2 pt 7 lc rgb "#b2182b" title "TCP cninet", \
     "" using 1:6 with linespoints lw 2 pt 5 lc rgb "#2166ac" title "TCP nftables", \
     "" using 1:7 with linespoints lw 2 pt 9 lc rgb "#1b7837" title "TCP iptables", \
     "" using 1:8 axes x1y2 with linespoints lw 2 dt 2 pt 7 lc rgb "#b2182b" title "UDP cninet", \
     "" using 1:9 axes x1y2 with linespoints lw 2 dt 2 pt 5 lc rgb "#2166ac" title "UDP nftables", \
     "" using 1:10 axes x1y2 with linespoints lw 2 dt 2 pt 9 lc rgb "#1b7837" title "UDP iptables"
