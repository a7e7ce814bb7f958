/* SPDX-License-Identifier: MIT */
/* Interoperability with a real Python peer:
 * multiprocessing.connection.Connection on an inherited descriptor, over a
 * socketpair and over a pipe, both directions.
 *
 * PC_TEST_BIGMEM=1 (set by the `bigmem` ctest test) adds the message over
 * 2 GiB, which needs about 6 GiB of memory between the two processes. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PEER PC_TEST_SOURCE_DIR "/python/conn_peer.py"

static void pattern251(unsigned char *p, size_t n) {
  unsigned char v = 0;
  for (size_t i = 0; i < n; i++) {
    p[i] = v;
    v = v == 250 ? 0 : (unsigned char)(v + 1);
  }
}

static bool pattern251_ok(const unsigned char *p, size_t n) {
  unsigned char v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] != v)
      return false;
    v = v == 250 ? 0 : (unsigned char)(v + 1);
  }
  return true;
}

/* In a child before exec: make `fd` descriptor `target`, inheritable.
 * dup2(fd, fd) would keep close-on-exec, so go through a high number. */
static int place_fd(int fd, int target) {
  int tmp = fcntl(fd, F_DUPFD, 100);
  return tmp >= 0 && dup2(tmp, target) == target ? 0 : -1;
}

/* Starts python3 conn_peer.py with `fd` inherited as descriptor 3. */
static pid_t start_peer(int fd, char *const extra[]) {
  const char *py = pc_test_python();
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)(uintptr_t)py;
  argv[n++] = (char *)(uintptr_t)PEER;
  argv[n++] = PC_TEST_STR("3");
  for (int i = 0; extra[i] != NULL && n < 31; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (place_fd(fd, 3) != 0)
      _exit(120);
    execv(py, argv);
    _exit(121);
  }
  return pid;
}

static int setup(void **state) {
  (void)state;
  if (pc_test_python() == NULL) {
    print_message("python3 not found: Python peer tests skipped\n");
  }
  return 0;
}

static const size_t sizes[] = {0, 1, 16383, 16384, 16385, 1u << 20, 64u << 20};

static void echo_sizes(int flags) {
  pc_conn *mine, *theirs;
  if (pc_test_python() == NULL)
    skip();
  assert_rc(0, pc_pipe(&mine, &theirs, flags));
  pid_t pid =
      start_peer(pc_fileno(theirs), (char *[]){PC_TEST_STR("echo"), NULL});
  pc_close(theirs);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *msg = malloc(sizes[i] + 1);
    pattern251(msg, sizes[i]);
    assert_rc(0, pc_send_bytes(mine, msg, sizes[i]));
    void *got;
    size_t n;
    assert_rc(0, pc_recv_bytes(mine, &got, &n, PC_NOLIMIT));
    assert_int_equal(n, sizes[i]);
    assert_true(pattern251_ok(got, n));
    free(got);
    free(msg);
  }
  pc_close(mine);
  pc_test_wait_ok(pid, 120);
}

static void test_python_echoes_every_size_over_socketpair(void **state) {
  (void)state;
  echo_sizes(0);
}

/* Over two pipes: C writes one, Python the other. */
static void python_sizes_over_pipes(const size_t *list, size_t count) {
  pc_conn *to_py_r, *to_py_w, *from_py_r, *from_py_w;
  if (pc_test_python() == NULL)
    skip();
  assert_rc(0, pc_pipe(&to_py_r, &to_py_w, PC_SIMPLEX));
  assert_rc(0, pc_pipe(&from_py_r, &from_py_w, PC_SIMPLEX));
  /* Python's recv_bytes asks os.read for the whole remaining length each
   * time and gets one pipe buffer's worth: with the default 64 KiB, a
   * 2 GiB message costs it 32768 huge allocations. 1 MiB pipes make the
   * big test ~16 times cheaper; the frames are the same. */
  fcntl(pc_fileno(to_py_w), F_SETPIPE_SZ, 1 << 20);
  fcntl(pc_fileno(from_py_w), F_SETPIPE_SZ, 1 << 20);
  char *args[32];
  char num[16][24];
  int n = 0;
  args[n++] = PC_TEST_STR("sizes");
  for (size_t i = 0; i < count && i < 16; i++) {
    snprintf(num[i], sizeof num[i], "%zu", list[i]);
    args[n++] = num[i];
  }
  args[n] = NULL;
  const char *py = pc_test_python();
  char *argv[40];
  int m = 0;
  argv[m++] = (char *)(uintptr_t)py;
  argv[m++] = PC_TEST_STR("-c");
  /* Python's Connection over two one-way pipes: read fd 3, write fd 4. */
  argv[m++] = PC_TEST_STR(
      "import sys, runpy; sys.argv = ['conn_peer.py', '3'] + sys.argv[1:];"
      "import multiprocessing.connection as mc;"
      "C = mc.Connection;"
      "r = C(3, writable=False); w = C(4, readable=False);"
      "g = runpy.run_path('" PEER "', run_name='peer');"
      "sizes = [int(s) for s in sys.argv[3:]];"
      "[w.send_bytes(g['pattern'](k)) for k in sizes];"
      "ok = all(r.recv_bytes() == g['pattern'](k) for k in sizes);"
      "sys.exit(0 if ok else 3)");
  for (int i = 0; i < n; i++)
    argv[m++] = args[i];
  argv[m] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int r = fcntl(pc_fileno(to_py_r), F_DUPFD, 200);
    int w = fcntl(pc_fileno(from_py_w), F_DUPFD, 200);
    if (place_fd(r, 3) != 0 || place_fd(w, 4) != 0)
      _exit(120);
    execv(py, argv);
    _exit(121);
  }
  pc_close(to_py_r);
  pc_close(from_py_w);
  /* Python sends first; receive everything, then send the same sizes. */
  for (size_t i = 0; i < count; i++) {
    void *got;
    size_t len;
    assert_rc(0, pc_recv_bytes(from_py_r, &got, &len, PC_NOLIMIT));
    assert_int_equal(len, list[i]);
    assert_true(pattern251_ok(got, len));
    free(got);
  }
  for (size_t i = 0; i < count; i++) {
    unsigned char *msg = malloc(list[i] + 1);
    assert_non_null(msg);
    pattern251(msg, list[i]);
    assert_rc(0, pc_send_bytes(to_py_w, msg, list[i]));
    free(msg);
  }
  pc_close(to_py_w);
  void *got;
  size_t len;
  assert_rc(PC_EOF, pc_recv_bytes(from_py_r, &got, &len, PC_NOLIMIT));
  pc_close(from_py_r);
  pc_test_wait_ok(pid, 600);
}

static void test_python_exchanges_every_size_over_pipes(void **state) {
  (void)state;
  python_sizes_over_pipes(sizes, sizeof sizes / sizeof sizes[0]);
}

static void test_python_sends_then_closes_gives_eof(void **state) {
  (void)state;
  pc_conn *mine, *theirs;
  if (pc_test_python() == NULL)
    skip();
  assert_rc(0, pc_pipe(&mine, &theirs, 0));
  pid_t pid = start_peer(pc_fileno(theirs), (char *[]){PC_TEST_STR("sizes"),
                                                       PC_TEST_STR("5"), NULL});
  pc_close(theirs);
  void *got;
  size_t n;
  assert_rc(0, pc_recv_bytes(mine, &got, &n, PC_NOLIMIT));
  assert_int_equal(n, 5);
  free(got);
  assert_rc(0, pc_send_bytes(mine, "\0\x01\x02\x03\x04", 5));
  pc_close(mine); /* Python sees EOFError after the message */
  pc_test_wait_ok(pid, 60);
}

static void test_python_exchanges_message_over_2_gib(void **state) {
  (void)state;
  const char *big = getenv("PC_TEST_BIGMEM");
  if (big == NULL || strcmp(big, "1") != 0) {
    print_message("PC_TEST_BIGMEM is not 1: the >2 GiB message runs in the "
                  "`bigmem` test (ctest -L bigmem)\n");
    skip();
  }
  const size_t list[] = {(2ull << 30) + 7};
  python_sizes_over_pipes(list, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_python_echoes_every_size_over_socketpair),
      cmocka_unit_test(test_python_exchanges_every_size_over_pipes),
      cmocka_unit_test(test_python_sends_then_closes_gives_eof),
      cmocka_unit_test(test_python_exchanges_message_over_2_gib),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
