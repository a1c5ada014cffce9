# Compiles the README's ```cpp block with -Wall -Wextra -Werror (script mode: -DCXX, -DREADME,
# -DINCLUDES, -DWORK_DIR).
file(READ ${README} readme)
string(FIND "${readme}" "```cpp\n" begin)
if(begin EQUAL -1)
  message(FATAL_ERROR "no ```cpp block in ${README}")
endif()
math(EXPR begin "${begin} + 7")
string(SUBSTRING "${readme}" ${begin} -1 rest)
string(FIND "${rest}" "```" end)
string(SUBSTRING "${rest}" 0 ${end} snippet)
set(source ${WORK_DIR}/readme_snippet.cc)
file(WRITE ${source} "${snippet}")
set(include_flags "")
foreach(dir IN LISTS INCLUDES)
  list(APPEND include_flags -I${dir})
endforeach()
execute_process(
  COMMAND ${CXX} -std=c++20 -Wall -Wextra -Werror -fsyntax-only ${include_flags} ${source}
  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the README example does not compile cleanly with -Wall -Wextra:\n${out}${err}")
endif()
