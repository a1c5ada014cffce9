#!/usr/bin/env bash
# Runs policy_bench (1, 100 and 10k rules; allow, deny and established packets) and writes:
#   <out>/policy.md    the Markdown table (bench/policy/README.md shows it)
#   <out>/policy.json  Google Benchmark's JSON (every counter of every case)
# Progress (the case being set up) is on stderr.
#
# usage: sudo bench/policy/run.sh [-b BUILD_DIR] [-o OUT_DIR] [-- extra policy_bench flags]
#   -b  a Release build directory with bench/policy/policy_bench (default: build)
#   -o  output directory (default: bench/policy/results)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build"
out="$here/results"
while getopts "b:o:h" opt; do
  case "$opt" in
    b) build="$(cd "$OPTARG" && pwd)" ;;
    o) out="$OPTARG" ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
bin="$build/bench/policy/policy_bench"
[[ -x "$bin" ]] || { echo "missing $bin (build the policy_bench target)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "needs root (BPF)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
"$bin" --table_out="$out/policy.md" --benchmark_out="$out/policy.json" \
  --benchmark_out_format=json "$@"
echo "policy: wrote $out/policy.md and $out/policy.json"
