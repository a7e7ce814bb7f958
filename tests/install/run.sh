#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The install test (ctest: install): installs the current build into a
# prefix inside the build directory, checks what was installed, then builds
# tests/install/main.c against it four ways -- CMake package and pkg-config,
# shared and static -- and runs each program.
#
# Environment (tests/CMakeLists.txt sets it):
#   PC_BUILD_DIR   the build tree to install
#   PC_WORK_DIR    scratch directory (recreated)
#   PC_CMAKE       cmake executable;  PC_GENERATOR  its generator
#   PC_CC          C compiler;        PC_SAN_FLAGS  sanitizer flags, or empty
#   PC_LIBDIR      CMAKE_INSTALL_LIBDIR (relative);  PC_INCLUDEDIR likewise
#   PC_SHARED      ON when the shared library was built
#   PC_VERSION     the project version
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${PC_BUILD_DIR:?}" "${PC_WORK_DIR:?}" "${PC_CMAKE:?}" "${PC_CC:?}"
: "${PC_LIBDIR:?}" "${PC_INCLUDEDIR:?}" "${PC_VERSION:?}"
gen=${PC_GENERATOR:-Unix Makefiles}
san=${PC_SAN_FLAGS:-}
shared=${PC_SHARED:-ON}
major=${PC_VERSION%%.*}
expected="pipeconn ${PC_VERSION}: received 'hello from an installed libpipeconn' (35 bytes)"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

rm -rf "$PC_WORK_DIR"
mkdir -p "$PC_WORK_DIR"
prefix=$PC_WORK_DIR/prefix
libdir=$prefix/$PC_LIBDIR

step "cmake --install into $prefix"
"$PC_CMAKE" --install "$PC_BUILD_DIR" --prefix "$prefix" >"$PC_WORK_DIR/install.log" ||
  { cat "$PC_WORK_DIR/install.log"; fail "cmake --install"; }

step "installed files"
for f in "$PC_INCLUDEDIR/pipeconn.h" "$PC_INCLUDEDIR/pipeconn/conn.h" \
  "$PC_INCLUDEDIR/pipeconn/errors.h" "$PC_INCLUDEDIR/pipeconn/version.h" \
  "$PC_LIBDIR/libpipeconn.a" \
  "$PC_LIBDIR/cmake/pipeconn/pipeconnConfig.cmake" \
  "$PC_LIBDIR/cmake/pipeconn/pipeconnConfigVersion.cmake" \
  "$PC_LIBDIR/cmake/pipeconn/pipeconnTargets.cmake" \
  "$PC_LIBDIR/pkgconfig/pipeconn.pc"; do
  [ -f "$prefix/$f" ] || fail "$f was not installed"
done
[ ! -e "$prefix/$PC_INCLUDEDIR/internal.h" ] || fail "a private header was installed"
if [ "$shared" = ON ]; then
  [ -L "$libdir/libpipeconn.so" ] || fail "libpipeconn.so (development link) missing"
  [ -L "$libdir/libpipeconn.so.$major" ] || fail "libpipeconn.so.$major missing"
  [ -f "$libdir/libpipeconn.so.$PC_VERSION" ] || fail "libpipeconn.so.$PC_VERSION missing"
  soname=$(readelf -d "$libdir/libpipeconn.so.$PC_VERSION" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
  [ "$soname" = "libpipeconn.so.$major" ] || fail "SONAME is '$soname', expected libpipeconn.so.$major"
  echo "SONAME $soname"
fi

# needs_shared BINARY: whether BINARY loads libpipeconn.so at run time.
needs_shared() {
  readelf -d "$1" | grep -q 'NEEDED.*libpipeconn\.so'
}

# check_run BINARY LINKAGE: runs BINARY, checks its output and linkage.
check_run() {
  local bin=$1 linkage=$2 out
  if [ "$linkage" = shared ]; then
    needs_shared "$bin" || fail "$bin does not load libpipeconn.so"
  else
    ! needs_shared "$bin" || fail "$bin loads libpipeconn.so, expected static linking"
  fi
  out=$("$bin") || fail "$bin exited with $?"
  [ "$out" = "$expected" ] || fail "$bin printed '$out', expected '$expected'"
  echo "$out"
}

variants=(static)
if [ "$shared" = ON ]; then
  variants=(shared static)
else
  echo "shared library not built (BUILD_SHARED_LIBS=OFF): shared variants skipped"
fi

for v in "${variants[@]}"; do
  step "CMake package, $v"
  b=$PC_WORK_DIR/cmake-$v
  static=OFF
  [ "$v" = static ] && static=ON
  "$PC_CMAKE" -S "$here" -B "$b" -G "$gen" -DCMAKE_C_COMPILER="$PC_CC" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    -DPC_CONSUMER_STATIC=$static -DPC_EXPECT_VERSION="$PC_VERSION" \
    >"$b.log" 2>&1 || { cat "$b.log"; fail "configuring the consumer ($v)"; }
  found=$(sed -n 's/^pipeconn_DIR:PATH=//p' "$b/CMakeCache.txt")
  [ "$found" -ef "$libdir/cmake/pipeconn" ] ||
    fail "find_package used '$found', not the installed package"
  "$PC_CMAKE" --build "$b" >>"$b.log" 2>&1 || { cat "$b.log"; fail "building the consumer ($v)"; }
  check_run "$b/consumer" "$v"
done

export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pcver=$(pkg-config --modversion pipeconn) || fail "pkg-config does not find pipeconn.pc"
[ "$pcver" = "$PC_VERSION" ] || fail "pipeconn.pc says version $pcver"
pcinc=$(pkg-config --variable=includedir pipeconn)
[ "$pcinc" -ef "$prefix/$PC_INCLUDEDIR" ] || fail "pipeconn.pc includedir '$pcinc' is not in the prefix"

# Word splitting of the pkg-config output and $san is intended below.
# shellcheck disable=SC2046,SC2086
for v in "${variants[@]}"; do
  step "pkg-config, $v"
  bin=$PC_WORK_DIR/pkgconfig-$v
  if [ "$v" = shared ]; then
    "$PC_CC" $san -std=c11 -Wall -Wextra -Werror "$here/main.c" -o "$bin" \
      $(pkg-config --cflags pipeconn) $(pkg-config --libs pipeconn) \
      -Wl,-rpath,"$libdir" || fail "compiling with pkg-config ($v)"
  else
    # pkg-config --static lists the private dependencies too; -Bstatic makes
    # the linker take libpipeconn.a although libpipeconn.so sits beside it.
    "$PC_CC" $san -std=c11 -Wall -Wextra -Werror "$here/main.c" -o "$bin" \
      $(pkg-config --static --cflags pipeconn) \
      -Wl,-Bstatic $(pkg-config --static --libs pipeconn) -Wl,-Bdynamic ||
      fail "compiling with pkg-config ($v)"
  fi
  check_run "$bin" "$v"
done

echo "install test passed: ${#variants[@]} CMake and ${#variants[@]} pkg-config builds"
