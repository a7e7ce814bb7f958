#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs one example program and checks what it prints (ctest: example_*).
#
#   check_examples.sh CASE BIN_DIR SOURCE_DIR [PYTHON3]
#
# BIN_DIR holds the example executables, SOURCE_DIR is the project's source
# tree (for examples/consumer.py and tests/examples/*.out), PYTHON3 the
# interpreter for the Python consumer (empty or missing: that case is
# skipped with exit code 77).
#
# Every case must exit with 0 and write nothing to stderr. Deterministic
# output is compared exactly with tests/examples/CASE.out. Where processes
# interleave freely, the lines are compared as a set (process ids replaced
# by PID) and the order that IS guaranteed is checked on its own: each
# writer's items in the order it put them, each sender's in the order it
# sent them.
set -u

case_name=${1:?case}
bin=${2:?bin dir}
src=${3:?source dir}
python=${4:-}
expected_dir="$src/tests/examples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAIL [$case_name]: $*"
  echo "--- stdout:"
  cat "$work/out"
  echo "--- stderr:"
  cat "$work/err"
  exit 1
}

# run PROGRAM ARGS...: runs it with stdout and stderr captured; fails the
# check on a non-zero exit or any stderr output.
run() {
  echo "running: $*"
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "exit code $rc"
  [ ! -s "$work/err" ] || fail "wrote to stderr"
}

# exact FILE: stdout equals tests/examples/FILE.
exact() {
  diff -u "$expected_dir/$1" "$work/out" >"$work/diff" ||
    fail "output differs from $1:
$(cat "$work/diff")"
}

# same_lines FILE: stdout, with process ids replaced by PID, holds exactly
# the lines of tests/examples/FILE, in any order.
same_lines() {
  sed -E 's/Process\([0-9]+\)/Process(PID)/' "$work/out" | LC_ALL=C sort >"$work/got"
  LC_ALL=C sort "$expected_dir/$1" >"$work/want"
  diff -u "$work/want" "$work/got" >"$work/diff" ||
    fail "lines differ from $1 (compared sorted):
$(cat "$work/diff")"
}

# in_order REGEX WORD...: the lines matching REGEX, in output order, carry
# these words (the first url_N of each line) in this order.
in_order() {
  local regex=$1
  shift
  local got want
  got=$(grep -E -- "$regex" "$work/out" | grep -oE 'url_[0-9]+' | tr '\n' ' ')
  want="$* "
  [ "$got" = "$want" ] || fail "lines matching '$regex' come as '$got', expected '$want'"
}

# pids REGEX: the distinct process ids on lines matching REGEX.
pids() {
  grep -E -- "$1" "$work/out" | sed -E 's/^Process\(([0-9]+)\).*/\1/' | sort -u
}

case "$case_name" in
duplex_greeting | producer_consumer | shared_consumers | sender_talker | hello_child)
  run "$bin/$case_name"
  exact "$case_name.out"
  ;;
queue_urls)
  run "$bin/queue_urls"
  same_lines queue_urls.out
  # One writer put url_1..3, the other url_4..6: each writer's puts and the
  # reader's gets of them keep that order.
  in_order '^Put url_[123] ' url_1 url_2 url_3
  in_order '^Put url_[456] ' url_4 url_5 url_6
  in_order '^Get url_[123] ' url_1 url_2 url_3
  in_order '^Get url_[456] ' url_4 url_5 url_6
  first_get=$(grep -n '^Get ' "$work/out" | head -n1 | cut -d: -f1)
  reading=$(grep -n 'is reading' "$work/out" | cut -d: -f1)
  [ "$reading" -lt "$first_get" ] || fail "a get was printed before 'is reading'"
  [ "$(grep -oE '^Process\([0-9]+\)' "$work/out" | sort -u | wc -l)" -eq 3 ] ||
    fail "expected three distinct processes"
  ;;
queue_urls_pipe)
  run "$bin/queue_urls" --pipe
  same_lines queue_urls_pipe.out
  in_order ' send: ' url_0 url_1 url_2 url_3 url_4 url_5 url_6 url_7 url_8 url_9
  in_order ' rev: ' url_0 url_1 url_2 url_3 url_4 url_5 url_6 url_7 url_8 url_9
  sender=$(pids ' send: ')
  receiver=$(pids ' rev: ')
  [ "$(echo "$sender" | wc -l)" -eq 1 ] || fail "send lines from several processes"
  [ "$(echo "$receiver" | wc -l)" -eq 1 ] || fail "rev lines from several processes"
  [ "$sender" != "$receiver" ] || fail "sender and receiver are the same process"
  ;;
queue_action)
  run "$bin/queue_action"
  exact queue_action.out
  ;;
queue_action_big)
  run "$bin/queue_action" --big
  exact queue_action_big.out
  ;;
queue_action_pipe)
  run "$bin/queue_action" --pipe
  exact queue_action.out
  ;;
queue_action_pipe_big)
  run "$bin/queue_action" --pipe --big
  exact queue_action_big.out
  ;;
producer_c_consumer)
  # The default consumer is the C program next to the producer; naming it
  # explicitly runs it through /bin/sh, the other path.
  run "$bin/producer"
  exact producer.out
  run "$bin/producer" --consumer "$bin/consumer"
  exact producer.out
  run "$bin/producer" --count 0
  printf '%s\n' 'producer: streaming 0 messages' \
    'consumer: end of stream after 0 messages, sum of squares 0' \
    'producer: consumer exited with status 0' >"$work/zero"
  diff -u "$work/zero" "$work/out" >"$work/diff" || fail "--count 0: $(cat "$work/diff")"
  ;;
producer_python_consumer)
  if [ -z "$python" ] || ! command -v "$python" >/dev/null 2>&1; then
    echo "SKIP: python3 not found: the C producer -> Python consumer interop check needs it"
    exit 77
  fi
  run "$bin/producer" --consumer "'$python' '$src/examples/consumer.py'"
  exact producer.out
  ;;
*)
  echo "unknown case: $case_name"
  exit 2
  ;;
esac
echo "ok [$case_name]"
exit 0
