#!/usr/bin/env bash
# Copies the latest result tables (bench/results/<name>.md, written by the benchmark scripts) into
# bench/README.md, between the lines "<!-- BEGIN results/<name>.md -->" and
# "<!-- END results/<name>.md -->". usage: bench/update_readme.sh [RESULTS_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
results="${1:-$here/results}"
readme="$here/README.md"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
awk -v dir="$results" '
  /^<!-- BEGIN results\/.*\.md -->$/ {
    print
    name = $0; sub(/^<!-- BEGIN results\//, "", name); sub(/ -->$/, "", name)
    file = dir "/" name
    while ((getline line < file) > 0) print line
    close(file)
    skipping = 1
    next
  }
  /^<!-- END results\/.*\.md -->$/ { skipping = 0 }
  !skipping { print }
' "$readme" >"$tmp"
cat "$tmp" >"$readme"
echo "updated $readme from $results"
