#!/usr/bin/env bash
# Runs nat_path_bench (every case) and writes its results where bench/README.md shows them:
#   <out>/nat_path.md    the Markdown table (copied into bench/README.md)
#   <out>/nat_path.json  Google Benchmark's JSON (every counter of every case)
#   <out>/nat_path.dat   ns/packet by service count, and <out>/nat_path_ns.png (gnuplot)
# Progress (the case being set up and measured) is on stderr.
#
# usage: sudo bench/nat_path/run.sh [-b BUILD_DIR] [-o OUT_DIR] [-- extra nat_path_bench flags]
#   -b  a Release build directory with bench/nat_path/nat_path_bench (default: build)
#   -o  output directory (default: bench/results)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../common/run_bench.sh
. "$here/../common/run_bench.sh"
command -v gnuplot >/dev/null || { echo "missing gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
bench_init nat_path "$(cd "$here/../.." && pwd)/bench/results" 2,11 "$@"
"$bench_bin" --table_out="$bench_out/nat_path.md" --plot_out="$bench_out/nat_path.dat" \
  --benchmark_out="$bench_out/nat_path.json" --benchmark_out_format=json "${bench_args[@]}"

gnuplot -e "out='$bench_out'" "$here/plot.gp"
echo "nat_path: wrote $bench_out/nat_path.md, nat_path.json, nat_path.dat, nat_path_ns.png"
