#!/bin/sh
# Installs what cninet needs on Debian 12 (build, tests, demo, benchmarks), only if missing.
# Usage: scripts/deps.sh            (as root)
set -eu

PACKAGES="
  build-essential cmake ninja-build pkg-config ccache git clang clang-format clang-tidy
  libclang-rt-14-dev llvm
  libabsl-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libbpf-dev bpftool linux-libc-dev
  libnl-3-dev libnl-route-3-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  etcd-server etcd-client openssl prometheus-cpp-dev prometheus
  containernetworking-plugins iproute2 iputils-ping nftables iptables iperf3 procps psmisc util-linux
  busybox-static podman runc containerd
  gnuplot-nox doxygen python3 python3-jsonschema
"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "cninet: missing packages:$missing; run this script as root" >&2
    exit 1
  fi
  echo "cninet: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# bpffs is needed for pinned maps (mounted by systemd on most hosts; not in every container).
if ! mount | grep -q " /sys/fs/bpf type bpf"; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi

# The reference bandwidth plugin (a chain peer in the netlink tests) creates ifb devices inside the
# test's node namespace; loading the ifb module on demand would also make the kernel create ifb0
# and ifb1 in the root namespace. Load it first with none, so the root namespace stays untouched.
if [ ! -d /sys/module/ifb ]; then
  modprobe ifb numifbs=0 2>/dev/null || true
fi
