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
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
out="$repo/bench/results"
while getopts "b:o:h" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    o) out="$OPTARG" ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
bin="$build/bench/nat_path/nat_path_bench"
[[ -x "$bin" ]] || { echo "missing $bin (build the nat_path_bench target)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "missing gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "needs root (BPF)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"

"$bin" --table_out="$out/nat_path.md" --plot_out="$out/nat_path.dat" \
  --benchmark_out="$out/nat_path.json" --benchmark_out_format=json "$@"

gnuplot -e "out='$out'" "$here/plot.gp"
echo "nat_path: wrote $out/nat_path.md, nat_path.json, nat_path.dat, nat_path_ns.png"
