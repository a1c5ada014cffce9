#!/bin/sh
# Installs what is missing, builds cninet (dev preset) and runs the demo (the README's first
# command). Run as root: the demo builds network namespaces.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$(nproc)"
exec ./examples/demo/demo.sh build/dev
