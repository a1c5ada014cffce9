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
# shellcheck source=../common/run_bench.sh
. "$here/../common/run_bench.sh"
bench_init policy "$here/results" 2,10 "$@"
"$bench_bin" --table_out="$bench_out/policy.md" --benchmark_out="$bench_out/policy.json" \
  --benchmark_out_format=json "${bench_args[@]}"
echo "policy: wrote $bench_out/policy.md and $bench_out/policy.json"
