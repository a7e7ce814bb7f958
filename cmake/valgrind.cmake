# SPDX-License-Identifier: MIT
# PIPECONN_VALGRIND=ON: every ctest test whose command is an executable
# target of this build (the cmocka suites, the fuzz corpus replays) runs
# under valgrind memcheck, through the target property
# CROSSCOMPILING_EMULATOR, which add_test puts in front of the command
# (CMake < 3.29 always does; later versions keep doing it for projects that
# require 3.25, policy CMP0158). Tests run by a script (examples, install,
# bench_smoke) are not wrapped.
#
# Any error, and any block definitely, indirectly or possibly lost at the
# exit of any process -- forked children included, which valgrind always
# follows -- makes the test fail with exit code 99. Programs a test execs
# are followed too (--trace-children), except python3, the peer of the
# interoperability tests, which is not ours to check. Tests see
# PC_TEST_VALGRIND=1 and PC_TEST_SCALE (tests/helpers.h) to shrink their
# heaviest workloads.
if(PIPECONN_SANITIZER)
  message(FATAL_ERROR "PIPECONN_VALGRIND cannot be combined with "
    "PIPECONN_SANITIZER (the sanitizers replace malloc themselves)")
endif()
find_program(PIPECONN_VALGRIND_EXECUTABLE valgrind REQUIRED)
find_program(PIPECONN_ENV_EXECUTABLE env REQUIRED)
set(PIPECONN_VALGRIND_SCALE "0.1" CACHE STRING
  "PC_TEST_SCALE for tests under valgrind (0 < scale <= 1)")
set(PIPECONN_VALGRIND_OPTIONS "" CACHE STRING
  "Extra valgrind options (;-separated)")

set(CMAKE_CROSSCOMPILING_EMULATOR
  ${PIPECONN_ENV_EXECUTABLE}
  PC_TEST_VALGRIND=1 PC_TEST_SCALE=${PIPECONN_VALGRIND_SCALE}
  ${PIPECONN_VALGRIND_EXECUTABLE}
  --tool=memcheck --quiet --error-exitcode=99
  --leak-check=full --show-leak-kinds=definite,indirect,possible
  --errors-for-leak-kinds=definite,indirect,possible
  --trace-children=yes --trace-children-skip=*python*
  --num-callers=30
  ${PIPECONN_VALGRIND_OPTIONS})
message(STATUS "Tests run under ${PIPECONN_VALGRIND_EXECUTABLE} memcheck "
  "(PC_TEST_SCALE=${PIPECONN_VALGRIND_SCALE})")
