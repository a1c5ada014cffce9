#!/bin/sh
# Installs what is missing, builds cninet and runs every test (the README's second command and
# what CI runs through .ci/run). Run as root: most suites build network namespaces and load BPF.
#
# Stages: deps, format check, dev build + ctest (unit, bpf, e2e, install, and the churn soak of
# tests/soak for CNINET_SOAK_SECONDS, default 60), clang fuzzers (CNINET_FUZZ_SECONDS each,
# default 30), ASan+UBSan build + unit tests.
# Set CNINET_STAGES to a subset, e.g. CNINET_STAGES="dev" for a quick run.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGES=${CNINET_STAGES:-"format dev fuzz asan"}
JOBS=${CNINET_JOBS:-$(nproc)}
export CNINET_FUZZ_SECONDS=${CNINET_FUZZ_SECONDS:-30}
export CNINET_SOAK_SECONDS=${CNINET_SOAK_SECONDS:-60}
export CTEST_OUTPUT_ON_FAILURE=1

./scripts/deps.sh || exit 1
if [ "$(id -u)" -ne 0 ]; then
  echo "cninet: the test suite needs root (network namespaces, links, BPF)" >&2
  exit 1
fi

failed=""
stage() { echo; echo "==== cninet: $1 ($(date +%H:%M:%S)) ===="; }
start=$(date +%s)

for s in $STAGES; do
  case $s in
    format)
      stage "clang-format check"
      ./scripts/check-format.sh || failed="$failed format"
      ;;
    dev)
      stage "dev build (Debug, -Werror)"
      cmake --preset dev >/dev/null && cmake --build --preset dev -j "$JOBS" || { failed="$failed dev-build"; continue; }
      stage "dev tests"
      ctest --preset dev -j "$JOBS" || failed="$failed dev-tests"
      ;;
    fuzz)
      stage "fuzzers (clang, libFuzzer, ${CNINET_FUZZ_SECONDS}s each)"
      cmake --preset fuzz -DCNINET_FUZZ_SECONDS="$CNINET_FUZZ_SECONDS" >/dev/null &&
        cmake --build --preset fuzz -j "$JOBS" || { failed="$failed fuzz-build"; continue; }
      ctest --preset fuzz -j "$JOBS" || failed="$failed fuzz"
      ;;
    asan)
      stage "ASan + UBSan build, unit tests"
      cmake --preset asan -DCNINET_BUILD_PLUGINS=OFF -DCNINET_BUILD_TOOLS=OFF -DCNINET_BUILD_EXAMPLES=OFF -DCNINET_BUILD_BENCH=OFF \
        -DCNINET_TEST_KINDS=unit -DCNINET_CHECK_HEADERS=OFF >/dev/null &&
        cmake --build --preset asan -j "$JOBS" || { failed="$failed asan-build"; continue; }
      ctest --preset asan -j "$JOBS" -L unit || failed="$failed asan"
      ;;
    *) echo "unknown stage $s" >&2; failed="$failed $s" ;;
  esac
done

echo
echo "==== cninet: finished in $(( $(date +%s) - start ))s ===="
if [ -n "$failed" ]; then
  echo "FAILED stages:$failed"
  exit 1
fi
echo "all stages passed"
