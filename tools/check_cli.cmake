# SPDX-License-Identifier: MIT
# Checks the `weft` command's exit statuses and where its output goes.
# Run as: cmake -DWEFT=<path to weft> -P check_cli.cmake
if(NOT WEFT)
  message(FATAL_ERROR "pass -DWEFT=<path to the weft executable>")
endif()

# expect(<exit status> <stdout regex> <stderr regex> <args>...): "" matches
# only empty output.
function(expect want_rc want_out want_err)
  execute_process(COMMAND ${WEFT} ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(what "weft ${ARGN}")
  if(NOT rc STREQUAL want_rc)
    message(FATAL_ERROR "${what}: exit status ${rc}, expected ${want_rc}\n"
      "stdout: ${out}\nstderr: ${err}")
  endif()
  foreach(stream out err)
    set(want "${want_${stream}}")
    set(got "${${stream}}")
    if((want STREQUAL "" AND NOT got STREQUAL "") OR
       (NOT want STREQUAL "" AND NOT got MATCHES "${want}"))
      message(FATAL_ERROR "${what}: std${stream} does not match '${want}':\n"
        "${got}")
    endif()
  endforeach()
endfunction()

expect(2 "" "unknown command.*usage: weft" no-such-command)
expect(2 "" "usage: weft")
expect(2 "" "usage: weft" cpus extra-argument)
expect(2 "" "no example named 'nope'.*usage: weft" demo nope)
expect(2 "" "usage: weft trace-view" trace-view)
expect(1 "" "cannot read" trace-view /nonexistent/trace.json out.html)
expect(0 "usage: weft.*demo.*trace-view.*race_condition" "" help)
expect(0 "^weft [0-9]+\\.[0-9]+\\.[0-9]+\n$" "" version)
expect(0 "^[1-9][0-9]*\n$" "" cpus)
message(STATUS "weft command line: all checks passed")
