# cmake -DDOXYGEN=... -DSOURCE_DIR=... -DOUTPUT_DIR=... -P doxygen.cmake
# Runs Doxygen with docs/Doxyfile from the source root (output in OUTPUT_DIR) and fails on any
# warning: an undocumented public declaration, a broken reference, an unknown command.
if(NOT DOXYGEN)
  message(FATAL_ERROR "doxygen is not installed (scripts/deps.sh installs it)")
endif()
file(REMOVE_RECURSE "${OUTPUT_DIR}")
file(MAKE_DIRECTORY "${OUTPUT_DIR}")
file(READ "${SOURCE_DIR}/docs/Doxyfile" config)
string(APPEND config "\nOUTPUT_DIRECTORY = ${OUTPUT_DIR}\nWARN_LOGFILE = ${OUTPUT_DIR}/warnings.log\n")
file(WRITE "${OUTPUT_DIR}/Doxyfile" "${config}")
execute_process(COMMAND "${DOXYGEN}" "${OUTPUT_DIR}/Doxyfile"
  WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(warnings "")
if(EXISTS "${OUTPUT_DIR}/warnings.log")
  file(READ "${OUTPUT_DIR}/warnings.log" warnings)
endif()
if(NOT rc EQUAL 0 OR NOT warnings STREQUAL "")
  message(FATAL_ERROR "doxygen failed (exit ${rc}):\n${warnings}${err}")
endif()
if(NOT EXISTS "${OUTPUT_DIR}/html/index.html")
  message(FATAL_ERROR "doxygen wrote no ${OUTPUT_DIR}/html/index.html")
endif()
message(STATUS "doxygen: no warnings; API reference in ${OUTPUT_DIR}/html/index.html")
