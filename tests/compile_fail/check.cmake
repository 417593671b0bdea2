# Runs the C++ compiler on one source that must NOT compile, and checks that
# the diagnostic says what it is meant to say.
#
#   cmake -DCOMPILER=<c++> -DSOURCE=<file.cpp> -DEXPECT=<regex>
#         [-DINCLUDES=<dir>|<dir>...] [-DDEFINES=<def>|<def>...]
#         [-DIMPLICIT_INCLUDES=<dir>|<dir>...] [-DFLAGS=<flag>|<flag>...]
#         -P check.cmake
#
# Passes only when the compiler exits non-zero AND its output matches EXPECT.
# Lists use '|' as separator because ';' does not survive add_test().

cmake_minimum_required(VERSION 3.25)

foreach(var COMPILER SOURCE EXPECT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${SOURCE}")
  message(FATAL_ERROR "check.cmake: source not found: ${SOURCE}")
endif()

macro(_dc_split out in)
  string(REPLACE "|" ";" ${out} "${in}")
endmacro()

_dc_split(_includes "${INCLUDES}")
_dc_split(_defines "${DEFINES}")
_dc_split(_implicit "${IMPLICIT_INCLUDES}")
_dc_split(_flags "${FLAGS}")

set(_args -std=c++20 -fsyntax-only ${_flags})
foreach(dir IN LISTS _includes)
  # Passing the compiler's own system directories as -I breaks #include_next.
  if(dir STREQUAL "" OR dir IN_LIST _implicit)
    continue()
  endif()
  list(APPEND _args "-I${dir}")
endforeach()
foreach(def IN LISTS _defines)
  if(NOT def STREQUAL "")
    list(APPEND _args "-D${def}")
  endif()
endforeach()

# Untranslated, plain-ASCII diagnostics so EXPECT can be matched reliably.
set(ENV{LC_ALL} C)
set(ENV{LANG} C)

execute_process(
  COMMAND "${COMPILER}" ${_args} "${SOURCE}"
  RESULT_VARIABLE _result
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _out)

string(JOIN " " _cmdline "${COMPILER}" ${_args} "${SOURCE}")
if(_result EQUAL 0)
  message(FATAL_ERROR
    "${SOURCE} compiled, but it must be rejected.\ncommand: ${_cmdline}\n${_out}")
endif()
if(NOT _out MATCHES "${EXPECT}")
  message(FATAL_ERROR
    "${SOURCE} was rejected (exit ${_result}), but the diagnostic does not match\n"
    "  expected: ${EXPECT}\ncommand: ${_cmdline}\n--- compiler output ---\n${_out}")
endif()
message(STATUS "${SOURCE}: rejected as expected (matched \"${EXPECT}\")")
