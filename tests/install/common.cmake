# Shared by run.cmake and subdirectory.cmake (included with include()).

# Runs a command as one named step; the script fails at the first failure.
function(_dc_run step)
  string(JOIN " " _cmdline ${ARGN})
  message(STATUS "[${step}] ${_cmdline}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "${_DC_SCRIPT}: step '${step}' failed (${_result}): ${_cmdline}")
  endif()
endfunction()

# Appends to the list `var` the generator, compiler and launcher given as
# GENERATOR, CXX_COMPILER and CXX_LAUNCHER. A single-program launcher
# (ccache) is passed on; a multi-word one is dropped because it cannot travel
# through one -D argument.
function(_dc_toolchain_args var)
  set(_args ${${var}})
  if(GENERATOR)
    list(APPEND _args -G "${GENERATOR}")
  endif()
  if(CXX_COMPILER)
    list(APPEND _args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  if(CXX_LAUNCHER AND NOT CXX_LAUNCHER MATCHES "\\|")
    list(APPEND _args "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_LAUNCHER}")
  endif()
  set(${var} ${_args} PARENT_SCOPE)
endfunction()
