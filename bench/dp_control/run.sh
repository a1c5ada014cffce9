#!/usr/bin/env bash
# Runs dp_control_bench and writes <out>/dp_control.md (the table bench/README.md shows) and
# <out>/dp_control.json. usage: sudo bench/dp_control/run.sh [-b BUILD_DIR] [-o OUT_DIR] [-- flags]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../common/run_bench.sh
. "$here/../common/run_bench.sh"
bench_init dp_control "$(cd "$here/../.." && pwd)/bench/results" 2,3 "$@"
"$bench_bin" --table_out="$bench_out/dp_control.md" --benchmark_out="$bench_out/dp_control.json" \
  --benchmark_out_format=json "${bench_args[@]}"
echo "dp_control: wrote $bench_out/dp_control.md, dp_control.json"
