#!/bin/sh
# SPDX-License-Identifier: MIT
# check_alloc_calls.sh LIBPIPECONN.a NM: the library allocates heap memory
# through malloc, calloc and realloc only, which test_alloc_fail wraps at
# link time. Any other allocating libc call would escape the sweep: this
# fails when the archive references one.
set -eu
lib=$1
nm=${2:-nm}
others='strdup strndup posix_memalign aligned_alloc memalign valloc pvalloc
reallocarray asprintf vasprintf open_memstream open_wmemstream getline getdelim
scandir tempnam wcsdup'
undefined=$("$nm" -u "$lib" | awk '{ print $NF }' | sed 's/@.*//' | sort -u)
for want in malloc free; do
  if ! printf '%s\n' "$undefined" | grep -qx "$want"; then
    echo "$lib does not reference $want: is this the library?" >&2
    exit 1
  fi
done
bad=0
for f in $others; do
  if printf '%s\n' "$undefined" | grep -qx "$f"; then
    echo "the library calls $f: test_alloc_fail cannot make it fail" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] && echo "allocations go through malloc/calloc/realloc only"
exit "$bad"
