# Helpers shared by every CMakeLists.txt of the project: components, plugins, tests.

set(CNINET_PLUGIN_DIR "${CMAKE_BINARY_DIR}/libexec/cni" CACHE INTERNAL
    "Where CNI plugins are built (as installed: one CNI_PATH entry for the whole build)")
set(CNINET_TOOL_DIR "${CMAKE_BINARY_DIR}/bin" CACHE INTERNAL "Where tools are built")
set(CNINET_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/cninet")
set(CNINET_INSTALL_PLUGINDIR "${CMAKE_INSTALL_LIBEXECDIR}/cni" CACHE STRING
    "Where the CNI plugins of plugins/ are installed (a CNI bin directory; Debian's reference plugins live in /usr/lib/cni)")

if(CNINET_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Warnings for our own targets (never for dependencies).
function(cninet_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wnon-virtual-dtor
      -Wno-missing-field-initializers>
    $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-Wshadow=local>  # GCC-only spelling; clang rejects it.
    $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra>)
  if(CNINET_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  # GCC's flow analysis is unreliable under -fsanitize (its manual says so): with ASan at -O2 it
  # reports maybe-uninitialized inside libstdc++'s own std::regex and std::function. Those stay
  # checked in the dev and release builds.
  if(CNINET_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  endif()
endfunction()

# cninet_add_component(NAME n SOURCES ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...]
#                      [COMPONENT_DEPS ...] [FIND_DEPS "pkg args" ...]
#                      [PKG_DEPS PREFIX=mod1,mod2 ...] [PC_REQUIRES ...] [PC_REQUIRES_PRIVATE ...])
# Creates library cninet_<n> (alias and export name cninet::<n>), installs it in its own export
# set and records what cninetConfig.cmake must find for consumers of that component.
function(cninet_add_component)
  cmake_parse_arguments(C "" "NAME"
    "SOURCES;PUBLIC_LIBS;PRIVATE_LIBS;COMPONENT_DEPS;FIND_DEPS;PKG_DEPS;PC_REQUIRES;PC_REQUIRES_PRIVATE"
    ${ARGN})
  set(target cninet_${C_NAME})
  add_library(${target} ${C_SOURCES})
  add_library(cninet::${C_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES
    EXPORT_NAME ${C_NAME}
    OUTPUT_NAME cninet_${C_NAME}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  # Shared builds: a component finds the components it links (installed next to it) wherever
  # the prefix is, so a consumer needs only the prefix's lib directory for its direct links.
  if(BUILD_SHARED_LIBS AND NOT DEFINED CMAKE_INSTALL_RPATH)
    set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN")
  endif()
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(${target} PUBLIC cxx_std_20)
  foreach(dep IN LISTS C_COMPONENT_DEPS)
    target_link_libraries(${target} PUBLIC cninet::${dep})
  endforeach()
  target_link_libraries(${target} PUBLIC ${C_PUBLIC_LIBS} PRIVATE ${C_PRIVATE_LIBS})
  cninet_target_warnings(${target})
  install(TARGETS ${target} EXPORT cninet-${C_NAME}-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/cninet/${C_NAME}
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cninet)
  install(EXPORT cninet-${C_NAME}-targets NAMESPACE cninet::
    FILE cninet-${C_NAME}-targets.cmake DESTINATION ${CNINET_INSTALL_CMAKEDIR})

  # Record the component for the package config and the .pc files.
  set_property(GLOBAL APPEND PROPERTY CNINET_COMPONENTS ${C_NAME})
  set_property(GLOBAL PROPERTY CNINET_COMPONENT_DEPS_${C_NAME} "${C_COMPONENT_DEPS}")
  set_property(GLOBAL PROPERTY CNINET_FIND_DEPS_${C_NAME} "${C_FIND_DEPS}")
  set_property(GLOBAL PROPERTY CNINET_PKG_DEPS_${C_NAME} "${C_PKG_DEPS}")
  # pkg-config dependencies linked PRIVATE: consumers of a shared build need not find them.
  set(private_pkg "")
  foreach(pkg IN LISTS C_PKG_DEPS)
    string(REGEX REPLACE "=.*" "" prefix "${pkg}")
    if("PkgConfig::${prefix}" IN_LIST C_PRIVATE_LIBS)
      list(APPEND private_pkg ${prefix})
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY CNINET_PRIVATE_PKG_DEPS_${C_NAME} "${private_pkg}")
  # CMake packages whose targets are linked PRIVATE only (e.g. "gRPC CONFIG" -> gRPC::grpc++):
  # consumers of a shared build need not find them either.
  set(private_find "")
  foreach(dep IN LISTS C_FIND_DEPS)
    string(REGEX REPLACE " .*" "" pkg "${dep}")
    string(TOLOWER "${pkg}::" ns)
    set(in_private FALSE)
    set(in_public FALSE)
    foreach(lib IN LISTS C_PRIVATE_LIBS)
      string(TOLOWER "${lib}" lib)
      string(FIND "${lib}" "${ns}" pos)
      if(pos EQUAL 0)
        set(in_private TRUE)
      endif()
    endforeach()
    foreach(lib IN LISTS C_PUBLIC_LIBS)
      string(TOLOWER "${lib}" lib)
      string(FIND "${lib}" "${ns}" pos)
      if(pos EQUAL 0)
        set(in_public TRUE)
      endif()
    endforeach()
    if(in_private AND NOT in_public)
      list(APPEND private_find "${pkg}")
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY CNINET_PRIVATE_FIND_DEPS_${C_NAME} "${private_find}")
  set(pc_requires "${C_PC_REQUIRES}")
  foreach(dep IN LISTS C_COMPONENT_DEPS)
    list(APPEND pc_requires cninet-${dep})
  endforeach()
  set_property(GLOBAL PROPERTY CNINET_PC_REQUIRES_${C_NAME} "${pc_requires}")
  set_property(GLOBAL PROPERTY CNINET_PC_REQUIRES_PRIVATE_${C_NAME} "${C_PC_REQUIRES_PRIVATE}")
endfunction()

# The umbrella target cninet::cninet: every component that was built.
function(cninet_add_umbrella)
  get_property(components GLOBAL PROPERTY CNINET_COMPONENTS)
  add_library(cninet INTERFACE)
  add_library(cninet::cninet ALIAS cninet)
  set_target_properties(cninet PROPERTIES EXPORT_NAME cninet)
  foreach(c IN LISTS components)
    target_link_libraries(cninet INTERFACE cninet::${c})
  endforeach()
  install(TARGETS cninet EXPORT cninet-umbrella-targets)
  install(EXPORT cninet-umbrella-targets NAMESPACE cninet::
    FILE cninet-umbrella-targets.cmake DESTINATION ${CNINET_INSTALL_CMAKEDIR})
endfunction()

# add_subdirectory() for every child of `dir` that has a CMakeLists.txt, in name order.
function(cninet_add_subdirectories dir)
  file(GLOB children LIST_DIRECTORIES true "${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*")
  list(SORT children)
  foreach(child IN LISTS children)
    if(IS_DIRECTORY "${child}" AND EXISTS "${child}/CMakeLists.txt")
      add_subdirectory("${child}")
    endif()
  endforeach()
endfunction()

# In a CMakeLists.txt of plugins/ or tools/: skips the rest of the directory unless the node agent
# (cninet::agent with its node parts, CNINET_AGENT_NODE) is part of the build. A macro, so its
# return() leaves the calling directory.
macro(cninet_require_agent_node)
  get_property(_cninet_agent_node GLOBAL PROPERTY CNINET_AGENT_NODE)
  if(NOT TARGET cninet::agent OR NOT _cninet_agent_node)
    return()
  endif()
endmacro()

# cninet_add_plugin(NAME cninet-x SOURCES ... LIBS ...): a CNI plugin people deploy (plugins/),
# built into ${CNINET_PLUGIN_DIR} so one CNI_PATH entry finds every plugin of the build, and
# installed into ${CNINET_INSTALL_PLUGINDIR}.
function(cninet_add_plugin)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${P_NAME} ${P_SOURCES})
  target_link_libraries(${P_NAME} PRIVATE ${P_LIBS})
  set_target_properties(${P_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CNINET_PLUGIN_DIR})
  cninet_target_warnings(${P_NAME})
  install(TARGETS ${P_NAME} RUNTIME DESTINATION ${CNINET_INSTALL_PLUGINDIR})
  set_property(GLOBAL APPEND PROPERTY CNINET_INSTALLED_PLUGINS ${P_NAME})
endfunction()

# cninet_add_tool(NAME cninet-x SOURCES ... LIBS ...): an operator's executable (tools/), built
# into ${CNINET_TOOL_DIR} and installed into bin/.
function(cninet_add_tool)
  cmake_parse_arguments(P "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${P_NAME} ${P_SOURCES})
  target_link_libraries(${P_NAME} PRIVATE ${P_LIBS})
  set_target_properties(${P_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CNINET_TOOL_DIR})
  cninet_target_warnings(${P_NAME})
  install(TARGETS ${P_NAME} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  set_property(GLOBAL APPEND PROPERTY CNINET_INSTALLED_TOOLS ${P_NAME})
endfunction()

# cninet_add_example(NAME x SOURCES ... LIBS ... [PLUGIN]): teaching code (examples/), built
# beside the plugins (PLUGIN) or the tools so tests can run it, never installed.
function(cninet_add_example)
  cmake_parse_arguments(P "PLUGIN" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${P_NAME} ${P_SOURCES})
  target_link_libraries(${P_NAME} PRIVATE ${P_LIBS})
  if(P_PLUGIN)
    set_target_properties(${P_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CNINET_PLUGIN_DIR})
  else()
    set_target_properties(${P_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CNINET_TOOL_DIR})
  endif()
  cninet_target_warnings(${P_NAME})
endfunction()

# cninet_add_gtest(NAME t SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT s] [RUN_SERIAL]
#                  [RESOURCE_LOCK name...])
# A GoogleTest binary whose tests are discovered one by one for ctest. Tests that need root or a
# kernel feature check for it themselves and FAIL with the reason; nothing is skipped silently.
# RESOURCE_LOCK: host resources the tests share with other tests (e.g. host_var_lib_cni, a fixed
# host path a peer runtime uses), so ctest -j never runs two of them at once.
function(cninet_add_gtest)
  cmake_parse_arguments(T "RUN_SERIAL" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;RESOURCE_LOCK" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} cninet_testing GTest::gmock GTest::gtest_main)
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  cninet_target_warnings(${T_NAME})
  set(props LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
  if(T_RUN_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  if(T_RESOURCE_LOCK)
    list(JOIN T_RESOURCE_LOCK "\\;" locks)
    list(APPEND props RESOURCE_LOCK "${locks}")
  endif()
  gtest_discover_tests(${T_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES ${props})
endfunction()

# Writes cninetConfig.cmake, its version file and the pkg-config files.
function(cninet_install_package)
  include(CMakePackageConfigHelpers)
  get_property(components GLOBAL PROPERTY CNINET_COMPONENTS)
  set(table "")
  foreach(c IN LISTS components)
    get_property(cdeps GLOBAL PROPERTY CNINET_COMPONENT_DEPS_${c})
    get_property(fdeps GLOBAL PROPERTY CNINET_FIND_DEPS_${c})
    get_property(pdeps GLOBAL PROPERTY CNINET_PKG_DEPS_${c})
    string(APPEND table "set(_cninet_component_deps_${c} \"${cdeps}\")\n")
    string(APPEND table "set(_cninet_find_deps_${c} \"${fdeps}\")\n")
    string(APPEND table "set(_cninet_pkg_deps_${c} \"${pdeps}\")\n")
    get_property(private_pkg GLOBAL PROPERTY CNINET_PRIVATE_PKG_DEPS_${c})
    string(APPEND table "set(_cninet_private_pkg_deps_${c} \"${private_pkg}\")\n")
    get_property(private_find GLOBAL PROPERTY CNINET_PRIVATE_FIND_DEPS_${c})
    string(APPEND table "set(_cninet_private_find_deps_${c} \"${private_find}\")\n")
  endforeach()
  set(CNINET_AVAILABLE_COMPONENTS "${components}")
  if(BUILD_SHARED_LIBS)
    set(CNINET_SHARED TRUE)
  else()
    set(CNINET_SHARED FALSE)
  endif()
  set(CNINET_COMPONENT_TABLE "${table}")
  configure_package_config_file(
    ${PROJECT_SOURCE_DIR}/cmake/cninetConfig.cmake.in
    ${PROJECT_BINARY_DIR}/cninetConfig.cmake
    INSTALL_DESTINATION ${CNINET_INSTALL_CMAKEDIR})
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/cninetConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/cninetConfig.cmake ${PROJECT_BINARY_DIR}/cninetConfigVersion.cmake
    DESTINATION ${CNINET_INSTALL_CMAKEDIR})

  # pkg-config: one .pc per component plus cninet.pc requiring all of them; relocatable.
  file(RELATIVE_PATH PC_PREFIX_REL "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  set(all_requires "")
  foreach(c IN LISTS components)
    get_property(req GLOBAL PROPERTY CNINET_PC_REQUIRES_${c})
    get_property(req_private GLOBAL PROPERTY CNINET_PC_REQUIRES_PRIVATE_${c})
    if(NOT BUILD_SHARED_LIBS)
      # A static archive carries none of its dependencies: the plain `pkg-config --libs` (without
      # --static) must bring them, so the private ones (libbpf, libnl) go into Requires.
      list(APPEND req ${req_private})
      set(req_private "")
    endif()
    list(JOIN req " " PC_REQUIRES)
    list(JOIN req_private " " PC_REQUIRES_PRIVATE)
    set(PC_NAME cninet-${c})
    set(PC_DESCRIPTION "cninet ${c} component")
    set(PC_LIBS "-lcninet_${c}")
    configure_file(${PROJECT_SOURCE_DIR}/cmake/cninet.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/cninet-${c}.pc @ONLY)
    install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/cninet-${c}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
    list(APPEND all_requires cninet-${c})
  endforeach()
  list(JOIN all_requires " " PC_REQUIRES)
  set(PC_REQUIRES_PRIVATE "")
  set(PC_NAME cninet)
  set(PC_DESCRIPTION "${PROJECT_DESCRIPTION}")
  set(PC_LIBS "")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/cninet.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/cninet.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/cninet.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()
