/* SPDX-License-Identifier: MIT */
/* What the test executables share. Include after <setjmp.h> etc. via this
 * header only: it pulls in cmocka in the order cmocka requires. */
#ifndef PC_TEST_HELPERS_H
#define PC_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pipeconn.h"

/* A string literal where an API wants `char *` (argv, iovec): the strict
 * warnings make literals const. */
#define PC_TEST_STR(s) ((char *)(uintptr_t)(s))

/* Assert a library return code and print both names on mismatch. */
#define assert_rc(expected, actual)                                            \
  pc_test_assert_rc((long)(expected), (long)(actual), #actual, __FILE__,       \
                    __LINE__)
void pc_test_assert_rc(long expected, long actual, const char *expr,
                       const char *file, int line);

/* Fork a child that runs fn(arg) and _exit()s with its return value. The
 * child never calls cmocka asserts. Returns the pid (asserts on failure). */
pid_t pc_test_fork(int (*fn)(void *arg), void *arg);

/* Wait for pid with a bound (seconds); on timeout the child is killed and the
 * test fails. Returns the raw wait status. */
int pc_test_wait(pid_t pid, int timeout_s);

/* Wait for pid and assert it exited with code 0. */
void pc_test_wait_ok(pid_t pid, int timeout_s);

/* Number of open descriptors of this process (via /proc/self/fd). */
int pc_test_count_fds(void);

/* Whether fd has FD_CLOEXEC. */
bool pc_test_is_cloexec(int fd);

/* Path of python3 for peer tests, or NULL when absent (the test then calls
 * skip() after printing why). */
const char *pc_test_python(void);

/* Fill buf with a deterministic pattern derived from seed. */
void pc_test_pattern(void *buf, size_t len, uint32_t seed);
/* Whether buf holds the pattern for seed. */
bool pc_test_pattern_ok(const void *buf, size_t len, uint32_t seed);

/* A one-byte synchronisation pipe between parent and child, so steps are
 * ordered without sleeps: pc_test_sync_post writes a byte, pc_test_sync_wait
 * reads one (bounded by timeout_ms; returns 0 or -1). */
typedef struct pc_test_sync {
  int rd, wr;
} pc_test_sync;
void pc_test_sync_init(pc_test_sync *s);
void pc_test_sync_post(pc_test_sync *s);
int pc_test_sync_wait(pc_test_sync *s, int timeout_ms);
void pc_test_sync_close(pc_test_sync *s);

/* Watching the library's spin before it sleeps (pc_set_spin), through its
 * test hook: pc_test_spin_watch counts the rounds from now on; on round
 * send_at (0: never) it sends the 4-byte message "late" on peer, as a peer
 * answering mid-spin would, and on the first round it posts `started`
 * (unless NULL). pc_test_spin_rounds reads the count; pc_test_spin_unwatch
 * removes the hook. */
void pc_test_spin_watch(pc_conn *peer, int send_at, pc_test_sync *started);
int pc_test_spin_rounds(void);
void pc_test_spin_unwatch(void);

/* Heavy tests and slow builds. PIPECONN_VALGRIND runs every test executable
 * with PC_TEST_VALGRIND=1 and PC_TEST_SCALE=0.1 in its environment (see
 * cmake/valgrind.cmake); anyone may set PC_TEST_SCALE (0 < scale <= 1) by
 * hand too. A test with a heavy workload (big messages, many iterations)
 * sizes it with pc_test_scaled() instead of skipping it, so every code path
 * still runs. pc_test_scale returns the factor (1 when unset or invalid);
 * pc_test_scaled(n) returns n times it, at least 1; pc_test_scaled_min(n,
 * min) the same, at least min (counts named in test names are those of scale
 * 1). pc_test_valgrind tells whether the test runs under valgrind (where,
 * e.g., RSS figures and timings mean little). In a child forked under
 * valgrind the leak check at exit is switched off: the child holds a copy of
 * every block of its parent, which it neither made nor owns; its memory
 * errors are still reported. */
double pc_test_scale(void);
size_t pc_test_scaled(size_t n);
size_t pc_test_scaled_min(size_t n, size_t min);
bool pc_test_valgrind(void);

#endif
