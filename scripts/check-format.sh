#!/bin/sh
# Fails when a C/C++ source of the project is not clang-formatted (.clang-format).
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.h' '*.cc' '*.c' | grep -v '^third_party/' || true)
[ -z "$files" ] && exit 0
# shellcheck disable=SC2086
clang-format --dry-run -Werror $files
echo "clang-format: $(echo "$files" | wc -l) files clean"
