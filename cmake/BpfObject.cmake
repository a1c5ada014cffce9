# BPF objects compiled at build time and embedded through bpftool skeletons (the libbpf-bootstrap
# pattern): clang -g -O2 -target bpf -> bpftool gen object (links, drops DWARF) -> bpftool gen
# skeleton -> <build>/bpf/include/cninet_bpf/<name>.skel.h, carried by INTERFACE target
# cninet_bpf_<name>. Users of the library never ship a .o.
include_guard(GLOBAL)

find_program(CNINET_BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(CNINET_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

if(CMAKE_LIBRARY_ARCHITECTURE)
  set(CNINET_BPF_MULTIARCH_INCLUDE "/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}")
else()
  set(CNINET_BPF_MULTIARCH_INCLUDE "/usr/include/x86_64-linux-gnu")
endif()

# cninet_bpf_object(NAME n SOURCE file.bpf.c [INCLUDES dir ...])
function(cninet_bpf_object)
  cmake_parse_arguments(B "" "NAME;SOURCE" "INCLUDES" ${ARGN})
  get_filename_component(src "${B_SOURCE}" ABSOLUTE)
  set(outdir "${PROJECT_BINARY_DIR}/bpf")
  set(obj "${outdir}/${B_NAME}.bpf.o")
  set(linked "${outdir}/${B_NAME}.o")
  set(skel "${outdir}/include/cninet_bpf/${B_NAME}.skel.h")
  set(incs "")
  foreach(dir IN LISTS B_INCLUDES)
    list(APPEND incs "-I${dir}")
  endforeach()
  add_custom_command(OUTPUT "${obj}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${outdir}/include/cninet_bpf"
    COMMAND ${CNINET_BPF_CLANG} -g -O2 -target bpf -D__BPF__ -Wall -Werror
            -I${CNINET_BPF_MULTIARCH_INCLUDE} ${incs} -MD -MF "${obj}.d" -c "${src}" -o "${obj}"
    DEPENDS "${src}"
    DEPFILE "${obj}.d"
    COMMENT "BPF ${B_NAME}"
    VERBATIM)
  add_custom_command(OUTPUT "${skel}" "${linked}"
    COMMAND ${CNINET_BPFTOOL} gen object "${linked}" "${obj}"
    COMMAND sh -c "${CNINET_BPFTOOL} gen skeleton '${linked}' name ${B_NAME}_bpf > '${skel}.tmp' && mv '${skel}.tmp' '${skel}'"
    DEPENDS "${obj}"
    COMMENT "BPF skeleton ${B_NAME}"
    VERBATIM)
  add_custom_target(cninet_bpf_${B_NAME}_gen DEPENDS "${skel}")
  add_library(cninet_bpf_${B_NAME} INTERFACE)
  target_include_directories(cninet_bpf_${B_NAME} INTERFACE "$<BUILD_INTERFACE:${outdir}/include>")
  add_dependencies(cninet_bpf_${B_NAME} cninet_bpf_${B_NAME}_gen)
endfunction()
