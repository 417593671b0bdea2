# Configures, builds and runs tests/install/consumer with distcache added by
# add_subdirectory from SOURCE_DIR (header-only and distcache::compiled).
#
#   cmake -DSOURCE_DIR=<distcache source> -DWORK_DIR=<scratch dir>
#         -DCONSUMER_DIR=<tests/install/consumer> [-DGENERATOR=<gen>]
#         [-DCXX_COMPILER=<c++>] [-DCXX_LAUNCHER=<launcher>] -P subdirectory.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var SOURCE_DIR WORK_DIR CONSUMER_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "subdirectory.cmake: -D${var}=... is required")
  endif()
endforeach()

function(_dc_run step)
  string(JOIN " " _cmdline ${ARGN})
  message(STATUS "[${step}] ${_cmdline}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "subdirectory_consumer: step '${step}' failed (${_result}): ${_cmdline}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(_configure "${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}"
  "-DDISTCACHE_SOURCE_DIR=${SOURCE_DIR}" -DCMAKE_BUILD_TYPE=Release)
if(GENERATOR)
  list(APPEND _configure -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
  list(APPEND _configure "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(CXX_LAUNCHER AND NOT CXX_LAUNCHER MATCHES "\\|")
  list(APPEND _configure "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_LAUNCHER}")
endif()
_dc_run(configure ${_configure})
_dc_run(build "${CMAKE_COMMAND}" --build "${WORK_DIR}")
# A parent project builds none of distcache's tests, examples or benchmarks.
if(EXISTS "${WORK_DIR}/distcache/tests" OR EXISTS "${WORK_DIR}/distcache/examples")
  message(FATAL_ERROR "subdirectory_consumer: distcache built its own tests or examples")
endif()
_dc_run("run consumer" "${WORK_DIR}/consumer")
_dc_run("run consumer_compiled" "${WORK_DIR}/consumer_compiled")
message(STATUS "subdirectory_consumer: both modes built and ran")
