/* SPDX-License-Identifier: MIT */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void fz_fail(const char *file, int line, const char *expr, const char *fmt,
             ...) {
  va_list ap;
  fprintf(stderr, "\n%s:%d: check failed: %s\n  ", file, line, expr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

const char *fz_name(long rc) { return rc < 0 ? pc_errname((int)rc) : "ok"; }

ssize_t fz_write_raw(int fd, bool is_socket, const void *p, size_t n,
                     bool nonblock) {
  ssize_t w;
  if (is_socket) {
    do {
      w = send(fd, p, n, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
    } while (w < 0 && errno == EINTR);
    return w < 0 ? -errno : w;
  }
  /* A pipe has no MSG_NOSIGNAL: block SIGPIPE in this thread, and consume
   * the one the write raised (unless one was pending already). A blocking
   * write that the reader's close cuts short returns a count, not EPIPE,
   * yet raises SIGPIPE: look at what is pending, not at errno. */
  sigset_t set, old, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  bool was_pending =
      sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  do {
    w = write(fd, p, n);
  } while (w < 0 && errno == EINTR);
  int e = w < 0 ? errno : 0;
  if (!was_pending && sigpending(&pending) == 0 &&
      sigismember(&pending, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return w < 0 ? -e : w;
}

bool fz_fd_is_closed(int fd) {
  return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

uint32_t fz_rand(uint32_t *state) {
  uint32_t x = *state != 0 ? *state : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

int fz_count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

static void on_sigpipe(int sig) {
  static const char msg[] = "\nSIGPIPE delivered to the process\n";
  (void)sig;
  ssize_t k = write(2, msg, sizeof msg - 1);
  (void)k;
  abort();
}

void fz_trap_sigpipe(void) {
  static bool done;
  if (!done) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    done = true;
  }
}
