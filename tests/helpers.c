/* SPDX-License-Identifier: MIT */
#include "helpers.h"

#include "../src/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <pthread.h>

/* valgrind's client requests, when its headers are installed (they come
 * with valgrind, which is what PIPECONN_VALGRIND needs anyway). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define PC_TEST_HAVE_VALGRIND_H 1
#endif
#endif

void pc_test_assert_rc(long expected, long actual, const char *expr,
                       const char *file, int line) {
  if (expected != actual) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: expected %ld (%s), got %ld (%s: %s)", expr,
             expected, pc_errname((int)expected), actual,
             pc_errname((int)actual), pc_strerror((int)actual));
    print_error("%s\n", msg);
    _fail(file, line);
  }
}

pid_t pc_test_fork(int (*fn)(void *arg), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(fn(arg));
  return pid;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pc_test_wait(pid_t pid, int timeout_s) {
  /* A pidfd turns "wait with a bound" into a poll, without sleeping.
   * valgrind 3.19 does not know pidfd_open (and warns at every call): there
   * the wait is unbounded, ctest's timeout being the bound. */
  int status = 0;
  int pfd =
      pc_test_valgrind() ? -1 : (int)syscall(434 /* SYS_pidfd_open */, pid, 0);
  int64_t end = now_ms() + (int64_t)timeout_s * 1000;
  if (pfd >= 0) {
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int r;
    do {
      int64_t left = end - now_ms();
      r = poll(&p, 1, left > 0 ? (int)left : 0);
    } while (r < 0 && errno == EINTR);
    close(pfd);
    if (r == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail_msg("child %d did not finish within %d s", (int)pid, timeout_s);
    }
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

void pc_test_wait_ok(pid_t pid, int timeout_s) {
  int st = pc_test_wait(pid, timeout_s);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    if (WIFEXITED(st))
      fail_msg("child exited with code %d", WEXITSTATUS(st));
    else
      fail_msg("child killed by signal %d", WTERMSIG(st));
  }
}

int pc_test_count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

bool pc_test_is_cloexec(int fd) {
  int f = fcntl(fd, F_GETFD);
  return f >= 0 && (f & FD_CLOEXEC);
}

const char *pc_test_python(void) {
  const char *p = PC_PYTHON3;
  if (p[0] == '\0' || access(p, X_OK) != 0)
    p = NULL;
  return p;
}

static uint32_t xorshift(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *s = x;
  return x;
}

void pc_test_pattern(void *buf, size_t len, uint32_t seed) {
  unsigned char *p = buf;
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char)(xorshift(&s) >> 24);
}

bool pc_test_pattern_ok(const void *buf, size_t len, uint32_t seed) {
  const unsigned char *p = buf;
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++)
    if (p[i] != (unsigned char)(xorshift(&s) >> 24))
      return false;
  return true;
}

void pc_test_sync_init(pc_test_sync *s) {
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  s->rd = fds[0];
  s->wr = fds[1];
}

void pc_test_sync_post(pc_test_sync *s) {
  char c = 1;
  while (write(s->wr, &c, 1) < 0 && errno == EINTR) {
  }
}

int pc_test_sync_wait(pc_test_sync *s, int timeout_ms) {
  struct pollfd p = {.fd = s->rd, .events = POLLIN};
  int64_t end = now_ms() + timeout_ms;
  for (;;) {
    int64_t left = end - now_ms();
    int r = poll(&p, 1, left > 0 ? (int)left : 0);
    if (r > 0) {
      char c;
      ssize_t n = read(s->rd, &c, 1);
      return n == 1 ? 0 : -1;
    }
    if (r == 0 || errno != EINTR)
      return -1;
  }
}

void pc_test_sync_close(pc_test_sync *s) {
  close(s->rd);
  close(s->wr);
}

static atomic_int spin_rounds;
static int spin_send_at;
static pc_conn *spin_peer;
static pc_test_sync *spin_started;

static void count_spin(void) {
  int k = atomic_fetch_add(&spin_rounds, 1) + 1;
  if (k == spin_send_at)
    (void)pc_send_bytes(spin_peer, "late", 4); /* another end: no lock */
  if (k == 1 && spin_started != NULL)
    pc_test_sync_post(spin_started);
}

void pc_test_spin_watch(pc_conn *peer, int send_at, pc_test_sync *started) {
  atomic_store(&spin_rounds, 0);
  spin_peer = peer;
  spin_send_at = send_at;
  spin_started = started;
  pc__spin_hook = count_spin;
}

int pc_test_spin_rounds(void) { return atomic_load(&spin_rounds); }

void pc_test_spin_unwatch(void) { pc__spin_hook = NULL; }

double pc_test_scale(void) {
  const char *s = getenv("PC_TEST_SCALE");
  double f = s != NULL ? strtod(s, NULL) : 1.0;
  return f > 0 && f <= 1 ? f : 1.0;
}

size_t pc_test_scaled(size_t n) {
  size_t r = (size_t)((double)n * pc_test_scale());
  return r > 0 ? r : 1;
}

size_t pc_test_scaled_min(size_t n, size_t min) {
  size_t r = pc_test_scaled(n);
  return r > min ? r : min;
}

bool pc_test_valgrind(void) {
#ifdef PC_TEST_HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND)
    return true;
#endif
  return getenv("PC_TEST_VALGRIND") != NULL;
}

/* In every child forked under valgrind (by pc_test_fork or by a test's own
 * fork()): no leak check at its exit, since the child's heap is a copy of
 * its parent's (see helpers.h). The parent's own exit is checked in full. */
#ifdef PC_TEST_HAVE_VALGRIND_H
static void child_after_fork(void) {
  if (RUNNING_ON_VALGRIND)
    VALGRIND_CLO_CHANGE("--leak-check=no");
}

__attribute__((constructor)) static void setup_valgrind_children(void) {
  if (RUNNING_ON_VALGRIND)
    pthread_atfork(NULL, NULL, child_after_fork);
}
#endif
