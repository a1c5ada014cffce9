#!/usr/bin/env bash
# Runs dp_control_bench and writes <out>/dp_control.md (the table bench/README.md shows) and
# <out>/dp_control.json. usage: sudo bench/dp_control/run.sh [-b BUILD_DIR] [-o OUT_DIR] [-- flags]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
out="$repo/bench/results"
while getopts "b:o:h" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    o) out="$OPTARG" ;;
    *) sed -n '2,3p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
bin="$build/bench/dp_control/dp_control_bench"
[[ -x "$bin" ]] || { echo "missing $bin (build the dp_control_bench target)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "needs root (BPF)" >&2; exit 1; }
mkdir -p "$out"
"$bin" --table_out="$out/dp_control.md" --benchmark_out="$out/dp_control.json" \
  --benchmark_out_format=json "$@"
echo "dp_control: wrote $out/dp_control.md, dp_control.json"
