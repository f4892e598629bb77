# ctest Layers.<L>: proves the build keeps layer L to its dependencies.
# For every folder M of src/, preprocesses `#include "M/<a header>"` with L's
# include path (what bo_L's sources compile with): it must succeed exactly
# when M is L or one of L's dependencies, and otherwise fail with "No such
# file" naming the header. So an upward include cannot compile, and this
# test fails if someone gives a layer the whole src/ back.
#   -DCXX= -DSRC= -DBUILD= -DLAYER= -DREACH=<L and its dependencies, ;-list> -DALL=<every layer>
cmake_minimum_required(VERSION 3.25)
set(work ${BUILD}/layers-check/${LAYER})
file(MAKE_DIRECTORY ${work})
set(flags -E -o /dev/null -x c++ -std=c++23 -I${BUILD}/generated)
foreach(dep IN LISTS REACH)
  list(APPEND flags -I${BUILD}/layers/${dep})
endforeach()
set(failures "")
foreach(other IN LISTS ALL)
  file(GLOB headers RELATIVE ${SRC} ${SRC}/${other}/*.h)
  list(SORT headers)
  list(GET headers 0 header)
  set(probe ${work}/${other}.cpp)
  file(WRITE ${probe} "#include \"${header}\"\n")
  execute_process(COMMAND ${CXX} ${flags} ${probe} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  list(FIND REACH ${other} reachable)
  if(reachable GREATER -1)
    if(NOT rc EQUAL 0)
      string(APPEND failures "${LAYER} depends on ${other}, yet ${header} does not preprocess:\n${out}\n")
    endif()
  elseif(rc EQUAL 0)
    string(APPEND failures "${LAYER} does not depend on ${other}, yet it can include ${header}\n")
  elseif(NOT out MATCHES "${header}: No such file")
    string(APPEND failures "${header} from ${LAYER} failed, but not as a missing file:\n${out}\n")
  else()
    message(STATUS "${LAYER} cannot include ${header}: refused")
  endif()
endforeach()
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
