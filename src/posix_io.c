/* SPDX-License-Identifier: MIT */
/*
 * The I/O loops: every read, write and wait on a connection's descriptor.
 *
 * Blocking without a deadline is a plain blocking system call (one syscall
 * per operation, as a raw socketpair user would write it), for a read only
 * once its spin (pc_set_spin, below) has found nothing. With a deadline
 * the attempt is made non-blocking *per call* -- MSG_DONTWAIT on sockets,
 * RWF_NOWAIT on pipes -- and poll(2) waits for readiness. The descriptor's
 * O_NONBLOCK flag is never changed: it belongs to the open file, which other
 * processes (a Python parent, a forked child) may share.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------------ deadlines */

int64_t pc__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

pc__deadline pc__deadline_from_ms(int timeout_ms) {
  pc__deadline d = {0, false, false, 0};
  if (timeout_ms < 0) {
    d.forever = true;
  } else if (timeout_ms == 0) {
    d.nonblock = true;
    d.at_ns = pc__now_ns();
  } else {
    d.at_ns = pc__now_ns() + (int64_t)timeout_ms * 1000000;
  }
  return d;
}

int pc__deadline_poll_ms(const pc__deadline *d) {
  int ms = -1;
  if (d->nonblock) {
    ms = 0;
  } else if (!d->forever) {
    int64_t left = d->at_ns - pc__now_ns();
    if (left <= 0)
      ms = 0;
    else if (left / 1000000 >= INT_MAX)
      ms = INT_MAX;
    else
      ms = (int)((left + 999999) / 1000000); /* round up: never spin */
  }
  return ms;
}

struct timespec pc__deadline_abstime(const pc__deadline *d) {
  struct timespec ts;
  ts.tv_sec = (time_t)(d->at_ns / 1000000000);
  ts.tv_nsec = (long)(d->at_ns % 1000000000);
  return ts;
}

bool pc__deadline_expired(const pc__deadline *d) {
  return d->nonblock || (!d->forever && pc__now_ns() >= d->at_ns);
}

int pc__deadline_code(const pc__deadline *d) {
  return d->nonblock ? -EAGAIN : -ETIMEDOUT;
}

/* ------------------------------------------------------------ helpers */

enum pc__fdkind pc__io_fdkind(int fd) {
  struct stat st;
  enum pc__fdkind k = PC__FD_PIPE;
  if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
    k = PC__FD_SOCKET;
  return k;
}

int pc__io_wait(int fd, int wake, short events, const pc__deadline *d) {
  int rc;
  struct pollfd p[2] = {{.fd = fd, .events = events, .revents = 0},
                        {.fd = wake, .events = POLLIN, .revents = 0}};
  for (;;) {
    int ms = pc__deadline_poll_ms(d);
    rc = poll(p, wake >= 0 ? 2 : 1, ms);
    if (rc > 0) {
      if (wake >= 0 && p[1].revents != 0)
        rc = -ECANCELED; /* pc_close wants us out */
      else
        rc = (p[0].revents & POLLNVAL) ? -EBADF : 1;
      break;
    }
    if (rc == 0) {
      /* poll rounds to milliseconds; only give up once the deadline is
       * really behind us. */
      if (pc__deadline_expired(d))
        break;
      continue;
    }
    if (errno != EINTR) {
      rc = pc__errno_neg();
      break;
    }
  }
  return rc;
}

int pc__io_wait_readable(int fd, const pc__deadline *d) {
  return pc__io_wait(fd, -1, POLLIN, d);
}

/*
 * Writing to a pipe whose reader is gone raises SIGPIPE in the writing
 * thread. Sockets have MSG_NOSIGNAL; pipes do not. So, as libpq does, block
 * SIGPIPE in this thread around the write, and if the write failed with
 * EPIPE consume the signal it raised -- unless one was already pending
 * before (then it is somebody else's and stays). The process's dispositions
 * and handlers are never touched.
 */
typedef struct sigpipe_guard {
  sigset_t old;
  bool was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g) {
  sigset_t set, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &g->old);
  g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

/* raised: the write may have raised SIGPIPE -- it failed with EPIPE, or a
 * blocking write came back short because the reader went away mid-way
 * (then it returns a count, yet SIGPIPE was sent). Consuming with a zero
 * timeout is harmless when nothing is pending. */
static void sigpipe_restore(sigpipe_guard *g, bool raised) {
  if (raised && !g->was_pending) {
    sigset_t set;
    struct timespec zero = {0, 0};
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Unsupported RWF_NOWAIT (old kernels): fall back to poll + a write of at
 * most PIPE_BUF bytes, which a blocking pipe accepts without waiting once
 * poll reported room. Remembered process-wide after the first EOPNOTSUPP. */
static int nowait_unsupported;

/* One write attempt. nonblock: must not wait. Returns bytes or -errno. */
static ssize_t write_once(int fd, enum pc__fdkind kind, const struct iovec *iov,
                          int iovcnt, bool nonblock) {
  ssize_t n;
  if (kind == PC__FD_SOCKET) {
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)(uintptr_t)iov;
    m.msg_iovlen = (size_t)iovcnt;
    n = sendmsg(fd, &m, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
    if (n < 0)
      n = pc__errno_neg();
  } else {
    sigpipe_guard g;
    sigpipe_block(&g);
    if (!nonblock) {
      n = writev(fd, iov, iovcnt);
    } else if (!__atomic_load_n(&nowait_unsupported, __ATOMIC_RELAXED)) {
      n = pwritev2(fd, iov, iovcnt, -1, RWF_NOWAIT);
    } else {
      /* Fallback path: at most PIPE_BUF bytes from the first entries. */
      struct iovec cut[2];
      int cnt = 0;
      size_t room = PIPE_BUF;
      for (int i = 0; i < iovcnt && i < 2 && room > 0; i++) {
        cut[cnt].iov_base = iov[i].iov_base;
        cut[cnt].iov_len = iov[i].iov_len < room ? iov[i].iov_len : room;
        room -= cut[cnt].iov_len;
        cnt++;
      }
      struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
      n = poll(&p, 1, 0);
      if (n > 0) {
        n = writev(fd, cut, cnt);
      } else if (n == 0) {
        errno = EAGAIN;
        n = -1;
      }
    }
    int e = n < 0 ? errno : 0;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
      total += iov[i].iov_len;
    sigpipe_restore(&g,
                    e == EPIPE || (!nonblock && n >= 0 && (size_t)n < total));
    if (n < 0) {
      if (e == EOPNOTSUPP && nonblock) {
        __atomic_store_n(&nowait_unsupported, 1, __ATOMIC_RELAXED);
        e = EINTR; /* retried through the fallback */
      }
      n = -(ssize_t)e;
    }
  }
  return n;
}

ssize_t pc__io_send_blocking(int fd, const struct iovec *iov, int iovcnt) {
  struct msghdr m = {.msg_iov = (struct iovec *)(uintptr_t)iov,
                     .msg_iovlen = (size_t)iovcnt};
  ssize_t n;
  do {
    n = sendmsg(fd, &m, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    static const pc__deadline forever = {0, true, false, 0};
    n = pc__errno_neg();
    /* Somebody set O_NONBLOCK on the open file: wait for room as usual. */
    if (n == -EAGAIN || n == -EWOULDBLOCK)
      n = pc__io_writev(fd, PC__FD_SOCKET, -1, iov, iovcnt, &forever);
  }
  return n;
}

ssize_t pc__io_writev(int fd, enum pc__fdkind kind, int wake,
                      const struct iovec *iov, int iovcnt,
                      const pc__deadline *d) {
  ssize_t n;
  /* With a wake descriptor even an unbounded wait happens in poll, where
   * pc_close can reach it. */
  bool nonblock = !d->forever || wake >= 0;
  if (iovcnt > IOV_MAX)
    iovcnt = IOV_MAX;
  for (;;) {
    n = write_once(fd, kind, iov, iovcnt, nonblock);
    if (n >= 0 || n == -EINTR) {
      if (n >= 0)
        break;
      continue;
    }
    if (n != -EAGAIN && n != -EWOULDBLOCK)
      break;
    /* Full (or somebody set O_NONBLOCK on the open file): wait for room. */
    int w = pc__io_wait(fd, wake, POLLOUT, d);
    if (w < 0) {
      n = w;
      break;
    }
    if (w == 0) {
      n = pc__deadline_code(d);
      break;
    }
  }
  return n;
}

static ssize_t read_once(int fd, enum pc__fdkind kind, const struct iovec *iov,
                         int iovcnt, bool nonblock) {
  ssize_t n;
  struct iovec *v = (struct iovec *)(uintptr_t)iov;
  if (!nonblock) {
    n = iovcnt == 1 ? read(fd, v[0].iov_base, v[0].iov_len)
                    : readv(fd, v, iovcnt);
  } else if (kind == PC__FD_SOCKET) {
    struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)iovcnt};
    n = recvmsg(fd, &m, MSG_DONTWAIT);
  } else if (!__atomic_load_n(&nowait_unsupported, __ATOMIC_RELAXED)) {
    n = preadv2(fd, v, iovcnt, -1, RWF_NOWAIT);
    if (n < 0 && errno == EOPNOTSUPP) {
      __atomic_store_n(&nowait_unsupported, 1, __ATOMIC_RELAXED);
      errno = EINTR;
    }
  } else {
    /* A blocking pipe read returns what is there once poll saw data. */
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    n = poll(&p, 1, 0);
    if (n > 0)
      n = readv(fd, v, iovcnt);
    else if (n == 0) {
      errno = EAGAIN;
      n = -1;
    }
  }
  return n < 0 ? pc__errno_neg() : n;
}

void (*pc__spin_hook)(void);

/*
 * Spinning before sleeping (pc_set_spin). A read that finds nothing would
 * put the thread to sleep, and the peer's next write would have to wake it:
 * on another CPU that is an inter-processor interrupt, which under a
 * hypervisor costs more than the whole exchange (measured on a 2-CPU VM: a
 * 64-byte round trip between two CPUs 34 us sleeping, 11 us when both
 * readers keep trying for up to 10 us, with half the CPU time). So a read
 * may keep trying for up to d->spin_ns first. Between tries it yields the
 * CPU, so that a peer on the same CPU, or anything else runnable there,
 * runs instead of waiting for the spin to end.
 * The spin never outlasts the deadline, and stops as soon as `wake` (a pipe
 * end's eventfd, see pc_close) fires. pc_wait spins the same way.
 */
bool pc__spin_round(const pc__deadline *d, int wake, int64_t *until) {
  bool again = false;
  int64_t now = pc__now_ns();
  if (*until == 0) {
    *until = now + d->spin_ns;
    if (!d->forever && d->at_ns < *until)
      *until = d->at_ns;
  }
  if (now < *until) {
    struct pollfd p = {.fd = wake, .events = POLLIN, .revents = 0};
    again = wake < 0 || poll(&p, 1, 0) == 0;
  }
  if (again) {
    void (*hook)(void) = pc__spin_hook;
    if (hook != NULL)
      hook();
    sched_yield();
  }
  return again;
}

ssize_t pc__io_readv(int fd, enum pc__fdkind kind, int wake,
                     const struct iovec *iov, int iovcnt,
                     const pc__deadline *d) {
  ssize_t n;
  bool spin = d->spin_ns > 0 && !d->nonblock;
  bool nonblock = !d->forever || wake >= 0 || spin;
  int64_t spin_until = 0;
  for (;;) {
    n = read_once(fd, kind, iov, iovcnt, nonblock);
    if (n >= 0)
      break;
    if (n == -EINTR)
      continue;
    if (n != -EAGAIN && n != -EWOULDBLOCK)
      break;
    if (spin && pc__spin_round(d, wake, &spin_until))
      continue;
    spin = false;
    if (d->forever && wake < 0 && nonblock) {
      /* Done spinning: sleep in the read itself. Should that read say
       * EAGAIN too (O_NONBLOCK set on the open file by someone), poll. */
      nonblock = false;
      continue;
    }
    int w = pc__io_wait(fd, wake, POLLIN, d);
    if (w < 0) {
      n = w;
      break;
    }
    if (w == 0) {
      n = pc__deadline_code(d);
      break;
    }
  }
  return n;
}

ssize_t pc__io_read(int fd, enum pc__fdkind kind, int wake, void *buf,
                    size_t cap, const pc__deadline *d) {
  struct iovec v = {buf, cap};
  return pc__io_readv(fd, kind, wake, &v, 1, d);
}

/* ------------------------------------------------------------ read targets */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older C headers lack it */
#endif

/* Set once madvise has said it does not know MADV_POPULATE_WRITE. */
static int populate_unsupported;

/*
 * A large payload is read into memory malloc has just handed out, often
 * fresh pages never touched: the kernel's copy then takes one page fault per
 * 4 KiB page, which under virtualisation costs 15-30 us each (measured: 16 MiB
 * touched page by page 60-75 ms, populated in one madvise 4-6 ms). When the
 * first page of the range is not resident, the whole range is populated in
 * one call. Only a hint: on any failure the read faults the pages in as
 * usual. The check itself (one mincore) is what a range that is already
 * resident costs. Returns true when it populated the range.
 */
bool pc__io_prefault(void *p, size_t len) {
  static long page;
  if (page == 0)
    page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
  uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  uintptr_t b = ((uintptr_t)p + len) & ~((uintptr_t)page - 1);
  unsigned char resident = 1;
  bool done = false;
  if (b > a && !__atomic_load_n(&populate_unsupported, __ATOMIC_RELAXED) &&
      mincore((void *)a, (size_t)page, &resident) == 0 && !(resident & 1)) {
    done = madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0;
    if (!done && errno == EINVAL)
      __atomic_store_n(&populate_unsupported, 1, __ATOMIC_RELAXED);
  }
  return done;
}

/*
 * A 16 MiB payload read into a malloc block lands on 4096 small pages, and
 * where glibc puts the block decides which: a heap block that reuses pages
 * just unmapped gets them scattered in physical memory, and under a
 * hypervisor (nested paging) both the kernel's copy into them and the
 * program's reads of them run measurably slower (the 16 MiB stream through
 * pc_recv_bytes at 0.90 of a raw socketpair, against 0.98 with this hint;
 * README). Huge pages take the layout out of the question. Applied only to
 * blocks the library allocates (never to a caller's buffer), of at least
 * two huge pages; the pages are still populated as data arrives.
 */
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#define HUGE_PAGE ((uintptr_t)2 << 20)

void pc__io_hugepage_hint(void *p, size_t len) {
  uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t b = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
  if (b > a)
    (void)madvise((void *)a, b - a, MADV_HUGEPAGE);
}
