#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs each libFuzzer target for a bounded time.
#
#   bash tests/fuzz/run_fuzz.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]
#
# BUILD_DIR is a clang build configured with -DPIPECONN_FUZZ=ON. Each target
# (frame, pickle, api; all by default) starts from its committed corpus
# (tests/fuzz/corpus/NAME, read only) and writes what it learns to
# BUILD_DIR/fuzz-work/NAME; a crash, leak or hang is saved as
# BUILD_DIR/fuzz-work/NAME-crash-..., and the script ends non-zero. Copy such
# a file into tests/fuzz/corpus/NAME/ (named regress-...) so the replay test
# keeps it. SECONDS_PER_TARGET defaults to 60.
set -euo pipefail

build=${1:?usage: run_fuzz.sh BUILD_DIR [SECONDS] [TARGET...]}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame pickle api)
src=$(cd "$(dirname "$0")" && pwd)

status=0
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "run_fuzz: $bin missing (configure with -DCMAKE_C_COMPILER=clang -DPIPECONN_FUZZ=ON)" >&2
    exit 2
  fi
  work=$build/fuzz-work/$t
  mkdir -p "$work"
  echo "== fuzz_$t for ${secs}s"
  # -timeout: one input may take at most 10 s (a hang is a finding);
  # -rss_limit_mb: the receiver's memory must stay bounded whatever the
  # headers say; -max_len: the inputs are small, the padding byte makes big
  # payloads.
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$work-" \
      "$work" "$src/corpus/$t" 2>"$work.log"; then
    status=1
    echo "fuzz_$t FAILED; see $work.log:" >&2
    grep -A1 -E "ERROR|check failed|SUMMARY|Test unit written" "$work.log" >&2 || tail -20 "$work.log" >&2
    # The input itself, so a failure on a machine that is gone afterwards
    # (CI) can be replayed: base64 -d > FILE, then run the target on FILE.
    for crash in "$work"-crash-* "$work"-timeout-* "$work"-leak-* "$work"-oom-*; do
      [ -f "$crash" ] || continue
      echo "-- $(basename "$crash") (base64):" >&2
      base64 -w 76 "$crash" >&2
    done
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "$work.log" || tail -3 "$work.log"
done
exit $status
