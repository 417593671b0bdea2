# Install a configured distcache build tree into a fresh prefix, then build
# and run tests/install/consumer against it with find_package(distcache).
#
#   cmake -DBUILD_DIR=<distcache build> -DWORK_DIR=<scratch dir>
#         -DCONSUMER_DIR=<tests/install/consumer> [-DCONFIG=<cfg>]
#         [-DGENERATOR=<gen>] [-DCXX_COMPILER=<c++>] [-DCXX_LAUNCHER=<a>|<b>]
#         [-DSANITIZE=<distcache's DISTCACHE_SANITIZE>]
#         -P run.cmake

cmake_minimum_required(VERSION 3.25)

foreach(var BUILD_DIR WORK_DIR CONSUMER_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()

set(_prefix "${WORK_DIR}/prefix")
set(_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(_DC_SCRIPT install_consumer)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

set(_config_args)
if(CONFIG)
  set(_config_args --config "${CONFIG}")
endif()

_dc_run(install "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${_prefix}" ${_config_args})

if(NOT EXISTS "${_prefix}/include/distcache/distcache.hpp")
  message(FATAL_ERROR "install_consumer: ${_prefix}/include/distcache/distcache.hpp was not installed")
endif()

set(_configure "${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${_build}"
  "-DCMAKE_PREFIX_PATH=${_prefix}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
_dc_toolchain_args(_configure)
if(CONFIG)
  list(APPEND _configure "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
# A sanitizer build installs an instrumented libdistcache.a: a program that
# links it needs the sanitizer runtime, so the consumer is built the same way.
if(SANITIZE)
  list(APPEND _configure "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE}"
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()
_dc_run(configure ${_configure})
_dc_run(build "${CMAKE_COMMAND}" --build "${_build}" ${_config_args})

foreach(_name consumer consumer_compiled)
  set(_exe "${_build}/${_name}")
  if(CONFIG AND EXISTS "${_build}/${CONFIG}/${_name}")
    set(_exe "${_build}/${CONFIG}/${_name}")
  endif()
  _dc_run("run ${_name}" "${_exe}")
endforeach()
message(STATUS "install_consumer: installed package found; header-only and compiled consumers built and ran")

# The same program through pkg-config (header-only), when pkg-config exists.
find_program(_pkg_config pkg-config)
if(_pkg_config AND CXX_COMPILER)
  set(ENV{PKG_CONFIG_PATH} "${_prefix}/lib/pkgconfig:${_prefix}/lib64/pkgconfig")
  execute_process(COMMAND "${_pkg_config}" --cflags --libs distcache
    OUTPUT_VARIABLE _pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _pc_result)
  if(NOT _pc_result EQUAL 0)
    message(FATAL_ERROR "install_consumer: pkg-config does not find the installed distcache.pc")
  endif()
  separate_arguments(_pc_flags UNIX_COMMAND "${_pc_flags}")
  _dc_run(pkg-config-build "${CXX_COMPILER}" "${CONSUMER_DIR}/main.cpp" -o
    "${WORK_DIR}/consumer_pkgconfig" ${_pc_flags})
  _dc_run(pkg-config-run "${WORK_DIR}/consumer_pkgconfig")
  message(STATUS "install_consumer: pkg-config consumer built and ran")
endif()
