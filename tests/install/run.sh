#!/bin/sh
# Installs the build tree into a temporary prefix, then builds the README plugin example outside
# the tree twice - with find_package(cninet CONFIG COMPONENTS cni) and with pkg-config - and runs
# both binaries through a real CNI invocation (VERSION and a chained ADD).
# Usage: run.sh BUILD_DIR SOURCE_DIR
set -eu
BUILD=$1
SRC=$2
TMP=$(mktemp -d /tmp/cninet-install-XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
PREFIX=$TMP/prefix

cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
test -f "$PREFIX/lib/cmake/cninet/cninetConfig.cmake"
test -f "$PREFIX/lib/cmake/cninet/cninetConfigVersion.cmake"
test -f "$PREFIX/lib/pkgconfig/cninet-cni.pc"
test -f "$PREFIX/include/cninet/cni/plugin.h"

check_plugin() {
  bin=$1
  out=$(echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$bin")
  echo "$out" | grep -q '"supportedVersions"' || { echo "bad VERSION output from $bin: $out"; exit 1; }
  # A chained ADD (CNI_NETNS_OVERRIDE: the test has no pod namespace; nothing is changed).
  conf='{"cniVersion":"1.0.0","name":"n","type":"x","nameservers":["10.0.0.53"],
         "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}'
  out=$(echo "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/proc/self/ns/net CNI_IFNAME=eth0 \
        CNI_NETNS_OVERRIDE=1 CNI_PATH=/nonexistent "$bin")
  echo "$out" | grep -q '"nameservers":\["10.0.0.53"\]' || { echo "bad ADD output from $bin: $out"; exit 1; }
}

# 1. CMake package.
cmake -S "$SRC/tests/install/consumer" -B "$TMP/cmake-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCNINET_EXAMPLE_SOURCE="$SRC/examples/minimal/main.cc" >/dev/null
cmake --build "$TMP/cmake-build" >/dev/null
check_plugin "$TMP/cmake-build/consumer-plugin"
echo "find_package(cninet COMPONENTS cni) consumer: OK"

# 2. pkg-config.
PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --exists cninet-cni
# shellcheck disable=SC2046
c++ -std=c++20 -o "$TMP/pc-plugin" "$SRC/examples/minimal/main.cc" \
  $(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs --static cninet-cni)
check_plugin "$TMP/pc-plugin"
echo "pkg-config cninet-cni consumer: OK"
