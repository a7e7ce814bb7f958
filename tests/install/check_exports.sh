#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The exports test (ctest: exports): the shared library exports the public
# API and nothing else. Every defined dynamic symbol must start with pc_, none
# with pc__ (the prefix of internal functions), and the core API must be
# there.
#   check_exports.sh LIBRARY.so [NM]
set -euo pipefail

lib=${1:?usage: check_exports.sh LIBRARY.so [NM]}
nm=${2:-nm}
syms=$("$nm" -D --defined-only "$lib" | awk '{ print $NF }' | sort -u)
[ -n "$syms" ] || { echo "FAIL: $lib exports nothing"; exit 1; }

bad=$(grep -v '^pc_' <<<"$syms" || true)
internal=$(grep '^pc__' <<<"$syms" || true)
status=0
if [ -n "$bad" ]; then
  echo "FAIL: exported symbols outside the pc_ namespace:"
  sed 's/^/  /' <<<"$bad"
  status=1
fi
if [ -n "$internal" ]; then
  echo "FAIL: internal (pc__) symbols exported:"
  sed 's/^/  /' <<<"$internal"
  status=1
fi
for want in pc_version pc_strerror pc_errname pc_pipe pc_conn_from_fd \
  pc_send_bytes pc_recv_bytes pc_recv_bytes_into pc_poll pc_close; do
  if ! grep -qx "$want" <<<"$syms"; then
    echo "FAIL: $want is not exported"
    status=1
  fi
done
echo "$(wc -l <<<"$syms") symbols exported by $(basename "$lib")"
exit $status
