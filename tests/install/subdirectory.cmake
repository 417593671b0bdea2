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

set(_DC_SCRIPT subdirectory_consumer)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

file(REMOVE_RECURSE "${WORK_DIR}")
set(_configure "${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}"
  "-DDISTCACHE_SOURCE_DIR=${SOURCE_DIR}" -DCMAKE_BUILD_TYPE=Release)
_dc_toolchain_args(_configure)
_dc_run(configure ${_configure})
_dc_run(build "${CMAKE_COMMAND}" --build "${WORK_DIR}")
# A parent project builds none of distcache's tests, examples or benchmarks.
if(EXISTS "${WORK_DIR}/distcache/tests" OR EXISTS "${WORK_DIR}/distcache/examples")
  message(FATAL_ERROR "subdirectory_consumer: distcache built its own tests or examples")
endif()
_dc_run("run consumer" "${WORK_DIR}/consumer")
_dc_run("run consumer_compiled" "${WORK_DIR}/consumer_compiled")
message(STATUS "subdirectory_consumer: both modes built and ran")
