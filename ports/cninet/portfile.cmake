# vcpkg overlay port for cninet: `vcpkg install cninet --overlay-ports=<checkout>/ports`.
# The source is the checkout this port lives in.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    ipam     CNINET_WITH_IPAM
    netlink  CNINET_WITH_NETLINK
    datapath CNINET_WITH_DATAPATH
    agent    CNINET_WITH_AGENT
    etcd     CNINET_WITH_ETCD
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DCNINET_BUILD_TESTS=OFF
    -DCNINET_BUILD_EXAMPLES=OFF
    -DCNINET_BUILD_PLUGINS=OFF
    -DCNINET_BUILD_TOOLS=OFF
    -DCNINET_BUILD_BENCH=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME cninet CONFIG_PATH lib/cmake/cninet)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
