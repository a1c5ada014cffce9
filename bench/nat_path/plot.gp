# Plot of bench/nat_path/run.sh from <out>/nat_path.dat; usage: gnuplot -e "out='DIR'" plot.gp
set terminal pngcairo size 960,600 font "sans,11" noenhanced
dat = out . "/nat_path.dat"
set output out . "/nat_path_ns.png"
set title "cninet NAT path, ns per packet by service count (BPF_PROG_TEST_RUN; lower is better)"
set xlabel "services in the datapath"
set ylabel "ns / packet"
set logscale x
set xrange [0.5:200000]
set yrange [0:*]
set grid
set key outside below box maxrows 3
plot dat using 1:4 with linespoints lw 2 pt 7 lc rgb "#b2182b" title "new connection (CT miss, service, Maglev, CT create, DNAT)", \
     "" using 1:2 with linespoints lw 2 pt 5 lc rgb "#2166ac" title "established (CT hit + DNAT)", \
     "" using 1:3 with linespoints lw 2 pt 9 lc rgb "#1b7837" title "reply (CT hit + reverse NAT)", \
     "" using 1:5 with linespoints lw 2 pt 1 lc rgb "#000000" title "floor: empty tc program", \
     "" using 1:($5 * 10) with lines lw 1 dt 2 lc rgb "#b2182b" title "goal: new <= 10 x floor", \
     "" using 1:($5 * 4) with lines lw 1 dt 2 lc rgb "#2166ac" title "goal: established <= 4 x floor"
