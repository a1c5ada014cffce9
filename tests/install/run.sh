#!/bin/sh
# The install tests (ctest -L install): cninet installed into a prefix and used from outside the
# tree, as vendors, Conan and vcpkg use it. Every step works in WORK (a directory of the build
# tree that the `prefix` step creates and `cleanup` removes), so the steps can run in parallel.
#
# Usage: run.sh STEP BUILD_DIR SOURCE_DIR VERSION LIBDIR [args]   (LIBDIR: CMAKE_INSTALL_LIBDIR)
#   prefix                      install BUILD_DIR into WORK/prefix, check the layout
#   consumer NAME COMPONENT SOURCE
#                               CMake project using find_package(cninet COMPONENTS COMPONENT),
#                               its link line checked, its program run
#   pkgconfig                   the README plugin and a netlink program built with pkg-config
#   test-package [OPTION=True|False ...]
#                               conan/test_package (and a consumer per component) built against
#                               the recipe's package_info, as Conan's CMakeDeps would feed it
#   shared                      a shared-library build of cni, netlink and datapath (its own tree,
#                               BUILD_DIR/install-shared): SONAMEs, ldd of consumers
#   executables PLUGINDIR PLUGINS BINDIR TOOLS
#                               the prefix's executables are exactly PLUGINS (comma-separated) in
#                               PLUGINDIR and TOOLS in BINDIR, and its files name no example,
#                               test or benchmark
#   cleanup                     remove WORK
set -eu
STEP=$1
BUILD=$2
SRC=$3
VERSION=$4
LIBDIR=$5
shift 5
WORK=$BUILD/install-test
PREFIX=$WORK/prefix
GEN=${CNINET_CMAKE_GENERATOR:-Ninja}

fail() { echo "FAIL: $*" >&2; exit 1; }

# The README plugin through a real CNI invocation: VERSION and a chained ADD.
check_plugin() {
  bin=$1
  out=$(echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$bin")
  echo "$out" | grep -q '"supportedVersions"' || fail "bad VERSION output from $bin: $out"
  # CNI_NETNS_OVERRIDE: the test has no pod namespace; the plugin changes nothing.
  conf='{"cniVersion":"1.0.0","name":"n","type":"x","nameservers":["10.0.0.53"],
         "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}'
  out=$(echo "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/proc/self/ns/net CNI_IFNAME=eth0 \
        CNI_NETNS_OVERRIDE=1 CNI_PATH=/nonexistent "$bin")
  echo "$out" | grep -q '"nameservers":\["10.0.0.53"\]' || fail "bad ADD output from $bin: $out"
}

# Targets the consumer of one component must not see, and must see (static builds only for
# the pkg-config ones: a shared library already carries its private dependencies).
forbidden_for() {
  case $1 in
    cni) echo "cninet::ipam;cninet::netlink;cninet::datapath;cninet::agent;PkgConfig::CNINET_LIBNL;PkgConfig::CNINET_LIBBPF;protobuf::libprotobuf;gRPC::grpc++" ;;
    ipam) echo "cninet::netlink;cninet::datapath;cninet::agent;PkgConfig::CNINET_LIBNL;PkgConfig::CNINET_LIBBPF;protobuf::libprotobuf" ;;
    netlink) echo "cninet::ipam;cninet::datapath;cninet::agent;PkgConfig::CNINET_LIBBPF;protobuf::libprotobuf" ;;
    datapath) echo "cninet::ipam;cninet::netlink;cninet::agent;PkgConfig::CNINET_LIBNL;protobuf::libprotobuf" ;;
    *) echo "" ;;
  esac
}
required_for() {
  shared=$2
  case $1 in
    netlink) [ "$shared" = 1 ] && echo "cninet::cni" || echo "cninet::cni;PkgConfig::CNINET_LIBNL" ;;
    datapath) [ "$shared" = 1 ] && echo "cninet::cni" || echo "cninet::cni;PkgConfig::CNINET_LIBBPF" ;;
    agent) echo "cninet::cni;protobuf::libprotobuf" ;;
    *) echo "cninet::$1" ;;
  esac
}

# build_consumer PREFIX DIR COMPONENT SOURCE SHARED: configures and builds the consumer project.
build_consumer() {
  cmake -S "$SRC/tests/install/consumer" -B "$2" -G "$GEN" -DCMAKE_PREFIX_PATH="$1" \
    -DCNINET_EXPECTED_VERSION="$VERSION" -DCONSUMER_COMPONENT="$3" -DCONSUMER_SOURCE="$4" \
    -DCONSUMER_FORBIDDEN="$(forbidden_for "$3")" -DCONSUMER_REQUIRED="$(required_for "$3" "$5")" \
    >"$2.log" 2>&1 || { cat "$2.log"; fail "configuring the $3 consumer"; }
  cmake --build "$2" >>"$2.log" 2>&1 || { cat "$2.log"; fail "building the $3 consumer"; }
}

# The link command of a consumer (ninja prints the commands of a target; the last one links).
link_line() { ninja -C "$1" -t commands consumer | tail -n 1; }

# What a consumer of `component` must not be linked with, and what it must (a control, so the
# check is known to see libraries at all). Patterns for the link line and for ldd.
not_linked_for() {
  case $1 in
    cni|ipam) echo 'libbpf|-lbpf|libnl-|-lnl-|libprotobuf|libgrpc' ;;
    netlink) echo 'libbpf|-lbpf|libprotobuf' ;;
    datapath) echo 'libnl-|-lnl-|libprotobuf' ;;
    *) echo '^$' ;;
  esac
}
linked_for() {
  case $1 in
    netlink) echo 'libnl-3' ;;
    datapath) echo 'libbpf' ;;
    agent) echo 'libprotobuf' ;;
    *) echo 'absl' ;;
  esac
}

case $STEP in
  prefix)
    rm -rf "$WORK"
    mkdir -p "$WORK"
    cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
      { cat "$WORK/install.log"; fail "cmake --install"; }
    for f in $LIBDIR/cmake/cninet/cninetConfig.cmake $LIBDIR/cmake/cninet/cninetConfigVersion.cmake \
             $LIBDIR/cmake/cninet/cninet-umbrella-targets.cmake $LIBDIR/pkgconfig/cninet.pc \
             include/cninet/cni/plugin.h include/cninet/base/version_config.h; do
      test -f "$PREFIX/$f" || fail "$f not installed"
    done
    for c in "$@"; do
      test -f "$PREFIX/$LIBDIR/cmake/cninet/cninet-$c-targets.cmake" || fail "no export of $c"
      test -f "$PREFIX/$LIBDIR/pkgconfig/cninet-$c.pc" || fail "no cninet-$c.pc"
      ls "$PREFIX"/$LIBDIR/libcninet_"$c".* >/dev/null 2>&1 || fail "no library for $c"
      test -d "$PREFIX/include/cninet/$c" || fail "no headers for $c"
    done
    grep -q "^Version: $VERSION\$" "$PREFIX/$LIBDIR/pkgconfig/cninet-cni.pc" || fail "cninet-cni.pc version"
    # Nothing of the build tree may leak into the installed package.
    if grep -rl "$BUILD\|$SRC" "$PREFIX/$LIBDIR/cmake" "$PREFIX/$LIBDIR/pkgconfig"; then
      fail "installed package files refer to the build or source tree"
    fi
    echo "installed into $PREFIX: components $*"
    ;;

  executables)
    plugindir=$1
    bindir=$3
    expected=$( (echo "$2" | tr ',' '\n' | sed "s|^|$plugindir/|"
                 echo "$4" | tr ',' '\n' | sed "s|^|$bindir/|") | grep -v '/$' | sort)
    actual=$(cd "$PREFIX" && find . -type f -perm -u+x ! -name '*.so*' | sed 's|^\./||' | sort)
    echo "installed executables:"
    echo "$actual" | sed 's/^/  /'
    if [ "$actual" != "$expected" ]; then
      echo "expected:"; echo "$expected" | sed 's/^/  /'
      fail "the installed executables are not exactly the plugins and tools"
    fi
    for p in $(echo "$2" | tr ',' ' '); do
      case $p in cninet-host-local|cninet-ptp|cninet-bridge|cninet-static) ;;
                 cninet-ebpf|cninet-agent-cni) ;;
                 *) fail "unexpected plugin $p" ;; esac
    done
    # No teaching example, test or benchmark under any name, executable or not.
    leaked=$(cd "$PREFIX" && find . \( -name 'cninet-debug' -o -name 'cninet-dns' -o -name 'cninet-demo*' \
              -o -name 'cninet-guide-*' -o -name 'cninet-chain-example' -o -name '*_test' \
              -o -name '*_bench' -o -name '*fuzz*' \) -print)
    [ -z "$leaked" ] || fail "examples, tests or benchmarks installed: $leaked"
    echo "$(echo "$actual" | wc -l) executables: the plugins and the tools, nothing else"
    ;;

  consumer)
    name=$1
    component=$2
    source=$3
    dir=$WORK/consumer-$name
    build_consumer "$PREFIX" "$dir" "$component" "$source" 0
    line=$(link_line "$dir")
    if echo "$line" | grep -Eq "$(not_linked_for "$component")"; then
      echo "$line"
      fail "the $component consumer's link line has libraries it does not need"
    fi
    echo "$line" | grep -Eq "$(linked_for "$component")" ||
      fail "the $component consumer's link line lacks $(linked_for "$component"): $line"
    case $source in
      */examples/minimal/main.cc) check_plugin "$dir/consumer" ;;
      *) "$dir/consumer" || fail "the $component consumer failed" ;;
    esac
    echo "find_package(cninet COMPONENTS $component) consumer $name: OK (link line checked)"
    ;;

  pkgconfig)
    export PKG_CONFIG_PATH="$PREFIX/$LIBDIR/pkgconfig"
    pkg-config --exists cninet-cni || fail "pkg-config cannot find cninet-cni"
    test "$(pkg-config --modversion cninet)" = "$VERSION" || fail "cninet.pc version"
    # shellcheck disable=SC2046
    c++ -std=c++20 -o "$WORK/pc-plugin" "$SRC/examples/minimal/main.cc" \
      $(pkg-config --cflags --libs --static cninet-cni)
    check_plugin "$WORK/pc-plugin"
    echo "pkg-config cninet-cni consumer: OK"
    if pkg-config --exists cninet-netlink; then
      libs=$(pkg-config --libs --static cninet-netlink)
      echo "$libs" | grep -q -- '-lnl-3' || fail "cninet-netlink.pc does not bring libnl: $libs"
      # shellcheck disable=SC2046
      c++ -std=c++20 -o "$WORK/pc-netlink" "$SRC/tests/install/consumer/netlink.cc" \
        $(pkg-config --cflags --libs --static cninet-netlink)
      "$WORK/pc-netlink" || fail "the pkg-config netlink consumer failed"
      echo "pkg-config cninet-netlink consumer: OK"
    fi
    # The static datapath links with the plain `pkg-config --libs` (no --static): its .pc lists
    # libbpf in Requires, as the archive needs it.
    if pkg-config --exists cninet-datapath && ls "$PREFIX/$LIBDIR"/libcninet_datapath.a >/dev/null 2>&1; then
      # shellcheck disable=SC2046
      c++ -std=c++20 -o "$WORK/pc-datapath" "$SRC/tests/install/consumer/datapath.cc" \
        $(pkg-config --cflags --libs cninet-datapath) ||
        fail "the static cninet-datapath does not link with pkg-config --libs (without --static)"
      "$WORK/pc-datapath" || fail "the pkg-config datapath consumer failed"
      echo "pkg-config cninet-datapath consumer (no --static): OK"
    fi
    ;;

  test-package)
    # What `conan create` does with conan/test_package, with stand-ins where Conan is needed
    # (Conan cannot be installed here):
    # - the package: real. WORK/prefix is `cmake --install` of this build, which is what the
    #   recipe's package() produces (CMake(self).install()).
    # - CMakeDeps: stand-in. tests/install/conan_deps.py runs the recipe's package_info() (the
    #   real recipe, with check-packaging.py's stand-in `conan` module) and writes
    #   generators/cninet-config.cmake from it: the targets, libraries and requirements the
    #   RECIPE declares. cninet's own cninetConfig.cmake is not on the search path, so a wrong
    #   cmake_target_name, lib name or a missing requires fails the configure or the link below.
    # - CMakeToolchain: stand-in. generators/conan_toolchain.cmake sets what Conan's would
    #   (build type, C++ standard, CMAKE_PREFIX_PATH = the generators folder).
    # - the third-party Conan packages (abseil, nlohmann_json, libnl, libbpf, protobuf, grpc):
    #   stand-in, this machine's Debian packages.
    # - the recipe's test(): real, `test_package --self-test`.
    # Args: the recipe options this build corresponds to (with_ipam=True ...).
    # Beyond what `conan create` runs: the consumer of every other packaged component is built
    # against the same generated config and run, so each component's package_info is linked.
    dir=$WORK/test_package
    rm -rf "$dir"
    mkdir -p "$dir/generators"
    shared=False
    if ls "$PREFIX/$LIBDIR"/libcninet_cni.so* >/dev/null 2>&1; then shared=True; fi
    python3 "$SRC/tests/install/conan_deps.py" "$SRC" "$PREFIX" "$LIBDIR" "$dir/generators" \
      "shared=$shared" "$@" >"$dir.log" 2>&1 ||
      { cat "$dir.log"; fail "conan_deps.py (the recipe's package_info)"; }
    cat "$dir.log"
    cat >"$dir/generators/conan_toolchain.cmake" <<EOF
set(CMAKE_BUILD_TYPE Release CACHE STRING "")
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_FIND_PACKAGE_PREFER_CONFIG ON)
list(PREPEND CMAKE_PREFIX_PATH "$dir/generators")
EOF
    cmake -S "$SRC/conan/test_package" -B "$dir/build" -G "$GEN" \
      -DCMAKE_TOOLCHAIN_FILE="$dir/generators/conan_toolchain.cmake" >>"$dir.log" 2>&1 ||
      { cat "$dir.log"; fail "configuring conan/test_package"; }
    # It must have used the recipe's view of the package, not cninet's own config.
    grep -qx "cninet_DIR:PATH=$dir/generators" "$dir/build/CMakeCache.txt" ||
      fail "conan/test_package did not use the generated config: $(grep cninet_DIR "$dir/build/CMakeCache.txt")"
    cmake --build "$dir/build" >>"$dir.log" 2>&1 || { cat "$dir.log"; fail "building conan/test_package"; }
    line=$(ninja -C "$dir/build" -t commands test_package | tail -n 1)
    if echo "$line" | grep -Eq "$(not_linked_for cni)"; then
      echo "$line"
      fail "the recipe links the cni test_package with libraries cni does not need"
    fi
    "$dir/build/test_package" --self-test || fail "test_package --self-test"
    for c in ipam netlink datapath agent; do
      echo " $* " | grep -q " with_$c=True " || continue
      cdir=$dir/consumer-$c
      cmake -S "$SRC/tests/install/consumer" -B "$cdir" -G "$GEN" \
        -DCMAKE_TOOLCHAIN_FILE="$dir/generators/conan_toolchain.cmake" \
        -DCNINET_EXPECTED_VERSION="$VERSION" -DCONSUMER_COMPONENT="$c" -DCONSUMER_CONAN=ON \
        -DCONSUMER_SOURCE="$SRC/tests/install/consumer/$c.cc" >"$cdir.log" 2>&1 ||
        { cat "$cdir.log"; fail "configuring the $c consumer against the recipe's package_info"; }
      cmake --build "$cdir" >>"$cdir.log" 2>&1 ||
        { cat "$cdir.log"; fail "building the $c consumer against the recipe's package_info"; }
      line=$(link_line "$cdir")
      if echo "$line" | grep -Eq "$(not_linked_for "$c")"; then
        echo "$line"
        fail "the recipe links the $c consumer with libraries $c does not need"
      fi
      "$cdir/consumer" || fail "the $c consumer built from the recipe's package_info failed"
      echo "$c consumer built from the recipe's package_info: OK"
    done
    echo "conan/test_package built from the recipe's package_info (CMakeDeps stand-in): OK"
    ;;

  shared)
    # A second build of the library alone (cni, netlink, datapath), shared, in its own tree
    # (kept between runs, so a rerun only rebuilds what changed): SONAMEs from project(VERSION),
    # and ldd proves a COMPONENTS cni consumer loads neither libnl nor libbpf, while the netlink
    # and datapath consumers do load theirs (so the check does see them).
    dir=$BUILD/install-shared
    major_minor=$(echo "$VERSION" | cut -d. -f1,2)
    mkdir -p "$dir"
    rm -rf "$dir/prefix" "$dir"/consumer-*
    cmake -S "$SRC" -B "$dir/build" -G "$GEN" -DBUILD_SHARED_LIBS=ON \
      -DCNINET_BUILD_TESTS=OFF -DCNINET_BUILD_EXAMPLES=OFF -DCNINET_BUILD_PLUGINS=OFF -DCNINET_BUILD_TOOLS=OFF -DCNINET_BUILD_BENCH=OFF \
      -DCNINET_WITH_IPAM=OFF -DCNINET_WITH_AGENT=OFF \
      >"$dir/build.log" 2>&1 || { cat "$dir/build.log"; fail "configuring the shared build"; }
    cmake --build "$dir/build" >>"$dir/build.log" 2>&1 || { cat "$dir/build.log"; fail "shared build"; }
    cmake --install "$dir/build" --prefix "$dir/prefix" >>"$dir/build.log" 2>&1 || fail "shared install"
    for c in cni netlink datapath; do
      lib=$dir/prefix/$LIBDIR/libcninet_$c.so
      test -f "$lib.$VERSION" || fail "no $lib.$VERSION"
      soname=$(readelf -d "$lib.$VERSION" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
      test "$soname" = "libcninet_$c.so.$major_minor" || fail "SONAME of $c is '$soname'"
    done
    build_consumer "$dir/prefix" "$dir/consumer-cni" cni "$SRC/examples/minimal/main.cc" 1
    build_consumer "$dir/prefix" "$dir/consumer-netlink" netlink "$SRC/tests/install/consumer/netlink.cc" 1
    build_consumer "$dir/prefix" "$dir/consumer-datapath" datapath "$SRC/tests/install/consumer/datapath.cc" 1
    cni_libs=$(ldd "$dir/consumer-cni/consumer")
    echo "$cni_libs" | grep -q "libcninet_cni.so.$major_minor => $dir/prefix/$LIBDIR/" ||
      fail "the cni consumer does not load the installed libcninet_cni: $cni_libs"
    if echo "$cni_libs" | grep -E 'libnl|libbpf|libcninet_(netlink|datapath)'; then
      fail "the COMPONENTS cni consumer loads libraries of other components"
    fi
    ldd "$dir/consumer-netlink/consumer" | grep -q 'libnl-3' || fail "no libnl in ldd of the netlink consumer"
    ldd "$dir/consumer-datapath/consumer" | grep -q 'libbpf' || fail "no libbpf in ldd of the datapath consumer"
    check_plugin "$dir/consumer-cni/consumer"
    "$dir/consumer-netlink/consumer" || fail "the shared netlink consumer failed"
    "$dir/consumer-datapath/consumer" || fail "the shared datapath consumer failed"
    echo "shared build: SONAMEs libcninet_*.so.$major_minor; the cni consumer loads no libnl/libbpf: OK"
    ;;

  cleanup)
    rm -rf "$WORK"
    ;;

  *) fail "unknown step $STEP" ;;
esac
