/* SPDX-License-Identifier: MIT */
/*
 * The Connection: framing state machines for both directions.
 *
 * Receive side. Bytes are read ahead into `rb` (128 KiB), so a stream of
 * small messages costs a fraction of a read(2) each. A payload over 32 KiB
 * bypasses `rb`: it is read straight into its final buffer (the caller's, or
 * the malloc'd block pc_recv_bytes hands over), so big messages are copied
 * once, by the kernel; in a stream of them the header and the start of the
 * payload arrive in one readv (rx_spec). The receive state (header parsed or
 * not, payload bytes held) lives in the connection, which is what lets a
 * receive that times out resume later without losing or duplicating
 * anything.
 *
 * Send side. Header and payload leave in one writev/sendmsg. If a deadline
 * strikes after part of a frame went out, the rest is copied into `tx_rest`
 * and the send reports success: the peer must never see half a frame followed
 * by another one. Every later send first finishes `tx_rest`.
 *
 * Each direction has its own mutex, so a sender and a receiver on one duplex
 * end never wait for each other.
 */
#include <limits.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Read-ahead buffer size, and the largest payload that goes through it.
 * rb is larger than it needs for read-ahead so that a wrong guess (rx_spec)
 * of a 64 KiB payload can be taken back into it. */
#define RB_SIZE (128u * 1024u)
#define RB_PAYLOAD_MAX (32u * 1024u)
/* A payload larger than this is allocated in steps as its bytes arrive
 * (memory follows data, not headers); smaller ones are allocated at once.
 * Large malloc blocks are mmap'd, so untouched pages cost nothing. */
#define UPFRONT_MAX (64u * 1024u * 1024u)
/* How far ahead of the data a large payload's pages are populated at once
 * (pc__io_prefault): the most memory a peer's header makes us touch before
 * the bytes to fill it arrive. */
#define PREFAULT_WINDOW (2u * 1024u * 1024u)
/* Smaller payloads are not worth the check (one mincore per message): their
 * blocks come from malloc's reused heap, already resident. */
#define PREFAULT_MIN (512u * 1024u)
/* Payload blocks the library allocates from this size up are offered
 * transparent huge pages (pc__io_hugepage_hint). */
#define HUGE_HINT_MIN (4u * 1024u * 1024u)
/* Messages per system call in pc_send_batch (two iovecs each). */
#define BATCH_CHUNK 512

/* ================================================================ basics */

/* Bumped in every child after fork() (see adopt_after_fork). */
static _Atomic unsigned fork_gen;
/* A connection's generation while one thread adopts it (never a real one:
 * the counter would need 4 billion forks to reach it). */
#define GEN_ADOPTING UINT_MAX
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { atomic_fetch_add(&fork_gen, 1); }

static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

int pc__conn_new(int fd, int flags, pc_conn **out) {
  int rc = 0;
  pc_conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  atomic_init(&c->fd, fd);
  c->kind = pc__io_fdkind(fd);
  c->simplex = (flags & PC_SIMPLEX) != 0;
  atomic_init(&c->readable, (flags & PC_READABLE) != 0);
  atomic_init(&c->writable, (flags & PC_WRITABLE) != 0);
  atomic_init(&c->closed, false);
  atomic_init(&c->timeout_ms, -1);
  atomic_init(&c->spin_us, PC_SPIN_DEFAULT);
  atomic_init(&c->users, 0);
  pthread_once(&atfork_once, register_atfork);
  atomic_init(&c->fork_gen, atomic_load(&fork_gen));
  atomic_init(&c->wake_fd, -1);
  pthread_mutex_init(&c->tx_mu, NULL);
  pthread_mutex_init(&c->rx_mu, NULL);
  *out = c;
out:
  return rc;
}

int pc__conn_check_open(const pc_conn *c) {
  return atomic_load(&((pc_conn *)(uintptr_t)c)->closed) ? PC_ECLOSED : 0;
}

int pc__conn_wake(pc_conn *c, const pc__deadline *d) {
  int w = -1;
  if (c->kind == PC__FD_PIPE && !d->nonblock) {
    w = atomic_load(&c->wake_fd);
    if (w < 0) {
      int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      int expected = -1;
      if (e >= 0 &&
          !atomic_compare_exchange_strong(&c->wake_fd, &expected, e)) {
        close(e); /* another thread made one first */
        e = expected;
      }
      /* Without one (out of descriptors) the wait is a plain blocking call
       * that pc_close cannot interrupt. */
      w = e;
    }
    /* pc_close sets `closing` then looks for the eventfd; we made the
     * eventfd then look at `closing`: one of us sees the other. */
    if (w >= 0 && (atomic_load(&c->users) & PC__CLOSING)) {
      uint64_t one = 1;
      ssize_t k = write(w, &one, sizeof one);
      (void)k; /* a full counter is readable anyway */
    }
  }
  return w;
}

/* A forked child inherits the parent's count of calls in progress (threads
 * that do not exist here) and the parent's eventfd: the first call or close
 * in a new process forgets both, so pc_close neither waits for ghosts nor
 * wakes the parent's threads. The generation changes in a pthread_atfork
 * child handler: one counter, no list of connections. */
void (*pc__adopt_hook)(int point);

static void adopt_slow(pc_conn *c, unsigned now, unsigned was) {
  void (*hook)(int) = pc__adopt_hook;
  bool told = false;
  /* One thread adopts; the others wait until it has published the new
   * generation, so none can count itself in before the reset. */
  while (was != now) {
    if (was == GEN_ADOPTING) {
      if (hook != NULL && !told)
        hook(PC__AHOOK_WAITING);
      told = true;
      sched_yield();
      was = atomic_load(&c->fork_gen);
    } else if (atomic_compare_exchange_weak(&c->fork_gen, &was, GEN_ADOPTING)) {
      if (hook != NULL)
        hook(PC__AHOOK_ADOPTING);
      atomic_fetch_and(&c->users, PC__CLOSING);
      int w = atomic_exchange(&c->wake_fd, -1);
      if (w >= 0)
        close(w); /* our copy only: the parent keeps its own */
      atomic_store(&c->fork_gen, now);
      was = now;
    }
  }
}

/* Called first by every entry point: two loads when nothing forked. */
static inline void adopt_after_fork(pc_conn *c) {
  unsigned now = atomic_load_explicit(&fork_gen, memory_order_acquire);
  unsigned was = atomic_load_explicit(&c->fork_gen, memory_order_acquire);
  if (was != now)
    adopt_slow(c, now, was);
}

/* Every call that may block counts itself in `users`, so pc_close can wake
 * it and wait for it to leave before freeing the connection. */
static int enter(pc_conn *c) {
  int rc = 0;
  if (c != NULL) {
    adopt_after_fork(c);
    uint32_t old = atomic_fetch_add(&c->users, 1);
    if (old & PC__CLOSING) {
      /* Turned away. The count goes back down; the address is only used
       * for the wake-up, never read once we are out. */
      if (atomic_fetch_sub(&c->users, 1) == (PC__CLOSING | 1))
        pc__futex_wake(&c->users, INT_MAX);
      rc = PC_ECLOSED;
    }
  }
  return rc;
}

static ssize_t leave(pc_conn *c, ssize_t rc) {
  if (c != NULL) {
    uint32_t old = atomic_fetch_sub(&c->users, 1);
    /* From here on c may be freed by pc_close: use only `old`. */
    if (old & PC__CLOSING) {
      if (rc < 0)
        rc = PC_ECLOSED; /* interrupted by pc_close, whatever it looked like */
      if (old == (PC__CLOSING | 1))
        pc__futex_wake(&c->users, INT_MAX);
    }
  }
  return rc;
}

static int check_recv(pc_conn *c) {
  int rc = 0;
  if (c == NULL)
    rc = -EINVAL;
  else if (atomic_load(&c->closed))
    rc = PC_ECLOSED;
  else if (!atomic_load(&c->readable))
    rc = PC_EWRITEONLY;
  return rc;
}

static int check_send(pc_conn *c) {
  int rc = 0;
  if (c == NULL)
    rc = -EINVAL;
  else if (atomic_load(&c->closed))
    rc = PC_ECLOSED;
  else if (!atomic_load(&c->writable))
    rc = PC_EREADONLY;
  return rc;
}

#if defined(__SANITIZE_THREAD__)
#define PC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PC__TSAN 1
#endif
#endif

/* Waits for mu until the deadline. ThreadSanitizer (gcc 12, clang 14) does
 * not intercept pthread_mutex_clocklock: it would miss every lock taken that
 * way and report the unlock as an error. Under TSan the wait goes through
 * pthread_mutex_timedlock on CLOCK_REALTIME instead (a clock step during the
 * wait can then stretch it; only in that build). */
static int clocklock(pthread_mutex_t *mu, const pc__deadline *d) {
  struct timespec ts;
#ifdef PC__TSAN
  int64_t left = d->at_ns - pc__now_ns();
  clock_gettime(CLOCK_REALTIME, &ts);
  left = (left < 0 ? 0 : left) + (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  ts.tv_sec = (time_t)(left / 1000000000);
  ts.tv_nsec = (long)(left % 1000000000);
  return pthread_mutex_timedlock(mu, &ts);
#else
  ts = pc__deadline_abstime(d);
  return pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, &ts);
#endif
}

/* Takes a direction's mutex within the deadline (the timeout covers the
 * wait for other threads too). */
static int lock_within(pthread_mutex_t *mu, const pc__deadline *d) {
  int e;
  if (d->forever) {
    e = pthread_mutex_lock(mu);
  } else if (d->nonblock) {
    e = pthread_mutex_trylock(mu);
    if (e == EBUSY)
      e = EAGAIN;
  } else {
    e = clocklock(mu, d);
  }
  return e == 0 ? 0 : -e;
}

/* A receive's reads spin (pc_set_spin); sends never do, as their wait is
 * for the peer to drain a full buffer, not for its answer. */
static pc__deadline with_spin(const pc_conn *c, pc__deadline d) {
  d.spin_ns = atomic_load(&((pc_conn *)(uintptr_t)c)->spin_us) * 1000;
  return d;
}

static pc__deadline conn_deadline(const pc_conn *c) {
  return pc__deadline_from_ms(
      atomic_load(&((pc_conn *)(uintptr_t)c)->timeout_ms));
}

static pc__deadline recv_deadline(const pc_conn *c) {
  return with_spin(c, conn_deadline(c));
}

int pc_set_timeout(pc_conn *c, int timeout_ms) {
  int rc = 0;
  if (c == NULL || timeout_ms < -1)
    rc = -EINVAL;
  else if (atomic_load(&c->closed))
    rc = PC_ECLOSED;
  else
    atomic_store(&c->timeout_ms, timeout_ms);
  return rc;
}

int pc_set_spin(pc_conn *c, int spin_us) {
  int rc = 0;
  if (c == NULL || spin_us < 0 || spin_us > PC_SPIN_MAX)
    rc = -EINVAL;
  else if (atomic_load(&c->closed))
    rc = PC_ECLOSED;
  else
    atomic_store(&c->spin_us, spin_us);
  return rc;
}

int pc_fileno(const pc_conn *c) {
  int rc;
  if (c == NULL)
    rc = -EINVAL;
  else if (pc__conn_check_open(c) != 0)
    rc = PC_ECLOSED;
  else
    rc = atomic_load(&((pc_conn *)(uintptr_t)c)->fd);
  return rc;
}

bool pc_readable(const pc_conn *c) {
  return c != NULL && atomic_load(&((pc_conn *)(uintptr_t)c)->readable);
}

bool pc_writable(const pc_conn *c) {
  return c != NULL && atomic_load(&((pc_conn *)(uintptr_t)c)->writable);
}

bool pc_closed(const pc_conn *c) {
  return c == NULL || atomic_load(&((pc_conn *)(uintptr_t)c)->closed);
}

void pc__conn_serializer(pc_conn *c, const pc_serializer **s, void **ctx) {
  pthread_mutex_lock(&c->tx_mu);
  *s = c->ser;
  *ctx = c->ser_ctx;
  pthread_mutex_unlock(&c->tx_mu);
}

void pc__conn_set_serializer(pc_conn *c, const pc_serializer *s, void *ctx) {
  /* Both locks: a send or receive in flight keeps the serializer it read. */
  pthread_mutex_lock(&c->tx_mu);
  c->ser = s;
  c->ser_ctx = ctx;
  pthread_mutex_unlock(&c->tx_mu);
}

/* ================================================================ sending */

/* Copies bytes [from, to) of the concatenation of iov into dst. */
static void gather(const struct iovec *iov, size_t from, size_t to,
                   unsigned char *dst) {
  size_t pos = 0;
  for (size_t i = 0; pos < to; i++) {
    size_t a = pos, b = pos + iov[i].iov_len;
    size_t lo = from > a ? from : a, hi = to < b ? to : b;
    if (lo < hi) {
      memcpy(dst, (const unsigned char *)iov[i].iov_base + (lo - a), hi - lo);
      dst += hi - lo;
    }
    pos = b;
  }
}

/* Moves past the first k bytes of iov[*i..), in place. */
static void iov_advance(struct iovec *iov, int *i, size_t k) {
  while (k > 0) {
    size_t step = k < iov[*i].iov_len ? k : iov[*i].iov_len;
    if (step > 0) /* an empty entry may have a NULL base */
      iov[*i].iov_base = (unsigned char *)iov[*i].iov_base + step;
    iov[*i].iov_len -= step;
    k -= step;
    if (iov[*i].iov_len == 0)
      (*i)++;
  }
}

/* Writes all of iov[0..cnt) (total bytes), advancing the array in place.
 * Returns 0, or the error with *sent bytes already written. */
static int write_all(pc_conn *c, const pc__deadline *d, struct iovec *iov,
                     int cnt, size_t total, size_t *sent) {
  int rc = 0;
  size_t done = 0;
  int i = 0;
  while (done < total) {
    while (i < cnt && iov[i].iov_len == 0)
      i++;
    ssize_t n = pc__io_writev(atomic_load(&c->fd), c->kind, pc__conn_wake(c, d),
                              iov + i, cnt - i, d);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    done += (size_t)n;
    iov_advance(iov, &i, (size_t)n);
  }
  *sent = done;
  return rc;
}

static size_t tx_pending(const pc_conn *c) {
  return c->tx_rest_len - c->tx_rest_off;
}

/* Makes room for n more bytes in tx_rest. */
static int tx_reserve(pc_conn *c, size_t n) {
  int rc = 0;
  if (c->tx_rest_off > 0) {
    memmove(c->tx_rest, c->tx_rest + c->tx_rest_off, tx_pending(c));
    c->tx_rest_len -= c->tx_rest_off;
    c->tx_rest_off = 0;
  }
  if (c->tx_rest_len + n > c->tx_rest_cap) {
    size_t cap = c->tx_rest_len + n;
    if (cap < c->tx_bufsize)
      cap = c->tx_bufsize;
    unsigned char *p = realloc(c->tx_rest, cap);
    if (p == NULL) {
      rc = -ENOMEM;
    } else {
      c->tx_rest = p;
      c->tx_rest_cap = cap;
    }
  }
  return rc;
}

/* Sends what is held in tx_rest: a cut frame's tail or buffered frames. */
static int flush_rest(pc_conn *c, const pc__deadline *d) {
  int rc = 0;
  if (tx_pending(c) > 0) {
    struct iovec v = {c->tx_rest + c->tx_rest_off, tx_pending(c)};
    size_t sent = 0;
    rc = write_all(c, d, &v, 1, v.iov_len, &sent);
    c->tx_rest_off += sent;
    if (rc != 0 && rc != -EAGAIN && rc != -ETIMEDOUT)
      c->tx_rest_off = c->tx_rest_len; /* nobody will ever read it: drop */
  }
  if (tx_pending(c) == 0) {
    c->tx_rest_len = c->tx_rest_off = 0;
    if (c->tx_bufsize == 0) {
      free(c->tx_rest);
      c->tx_rest = NULL;
      c->tx_rest_cap = 0;
    }
  }
  return rc;
}

/* A deadline cut a frame after `sent` of its bytes: keep the rest, bytes
 * [sent, frame_end) of orig, so the peer still gets a whole frame. If even
 * that copy cannot be allocated, finish the frame now, without deadline:
 * a late return beats a corrupt stream. */
static int keep_rest(pc_conn *c, const struct iovec *orig, size_t sent,
                     size_t frame_end) {
  int rc = 0;
  size_t n = frame_end - sent;
  if (tx_reserve(c, n) == 0) {
    gather(orig, sent, frame_end, c->tx_rest + c->tx_rest_len);
    c->tx_rest_len += n;
  } else {
    /* Rebuild the remaining bytes as iovecs over the caller's buffers. */
    pc__deadline forever = pc__deadline_from_ms(-1);
    size_t pos = 0, done = 0;
    for (size_t i = 0; pos < frame_end && rc == 0; i++) {
      size_t a = pos, b = pos + orig[i].iov_len;
      size_t lo = sent > a ? sent : a, hi = frame_end < b ? frame_end : b;
      if (lo < hi) {
        struct iovec v = {(unsigned char *)orig[i].iov_base + (lo - a),
                          hi - lo};
        rc = write_all(c, &forever, &v, 1, hi - lo, &done);
      }
      pos = b;
    }
  }
  return rc;
}

/* Sends the frames described by iov (cnt entries, `total` bytes), whose
 * frame boundaries are given by ends[0..nframes) (cumulative byte offsets).
 * Returns the number of frames handed over (all of them, unless a deadline
 * struck after some went out), or an error when none did. */
static ssize_t send_frames(pc_conn *c, const pc__deadline *d, struct iovec *iov,
                           int cnt, const size_t *ends, size_t nframes) {
  ssize_t rc;
  struct iovec orig_small[2 * BATCH_CHUNK];
  const struct iovec *orig = iov;
  size_t total = ends[nframes - 1], sent = 0;
  if (c->tx_bufsize > 0) {
    /* Buffered: whole frames wait in tx_rest until it is full. A send that
     * finds it full writes it out first; if that times out, none of these
     * frames went anywhere. */
    if (tx_pending(c) + total > c->tx_bufsize && tx_pending(c) > 0) {
      int f = flush_rest(c, d);
      if (f != 0)
        return f;
    }
    if (tx_pending(c) + total <= c->tx_bufsize) {
      if (tx_reserve(c, total) == 0) {
        gather(iov, 0, total, c->tx_rest + c->tx_rest_len);
        c->tx_rest_len += total;
        return (ssize_t)nframes;
      }
      /* No memory to hold it (the buffer had to grow): it is written now,
       * so what the buffer holds must go first, or frames would overtake
       * each other. */
      if (tx_pending(c) > 0) {
        int f = flush_rest(c, d);
        if (f != 0)
          return f;
      }
    }
    /* Larger than the buffer (or no memory to hold it): write it now. */
  }
  if (!d->forever && (size_t)cnt <= 2 * BATCH_CHUNK) {
    /* write_all advances iov; keep_rest needs the original layout. */
    memcpy(orig_small, iov, (size_t)cnt * sizeof *iov);
    orig = orig_small;
  }
  rc = write_all(c, d, iov, cnt, total, &sent);
  if (rc == 0) {
    rc = (ssize_t)nframes;
  } else if (sent > 0 && (rc == -EAGAIN || rc == -ETIMEDOUT)) {
    size_t f = 0;
    while (ends[f] <= sent)
      f++; /* the frame that was cut */
    int k = keep_rest(c, orig, sent, ends[f]);
    rc = k == 0 ? (ssize_t)(f + 1) : k;
  }
  return rc;
}

/* Locks the send side, checks it, and finishes an earlier held frame. */
static int send_begin(pc_conn *c, pc__deadline *d) {
  int rc = check_send(c);
  if (rc == 0) {
    *d = conn_deadline(c);
    rc = lock_within(&c->tx_mu, d);
    if (rc == 0 && c->tx_bufsize == 0) {
      /* Unbuffered: a held tail goes before anything new. (Buffered sends
       * append behind it and flush when full.) */
      rc = flush_rest(c, d);
      if (rc != 0)
        pthread_mutex_unlock(&c->tx_mu);
    }
  }
  return rc;
}

/* The largest scatter-gather list the fast path takes (the frame header
 * makes one more entry). */
#define FAST_IOV 8
/* send_fast's answer when the general path must take the send. */
#define NOT_FAST 1

/*
 * The send nearly every program makes -- blocking, unbuffered, on a socket
 * end of this process, nothing held back from an earlier send -- with one
 * lock and one sendmsg, without the deadline and hold-back machinery of
 * send_frames. A blocking send is never cut short by a deadline, so there is
 * never a tail to keep: a short write is finished, an error ends the call.
 * Returns NOT_FAST, before sending anything, when one of those conditions
 * does not hold (pipe ends always take the general path: they need a wake-up
 * descriptor and the SIGPIPE guard).
 */
static int send_fast(pc_conn *c, const struct iovec *iov, int iovcnt,
                     size_t total) {
  static const pc__deadline forever = {0, true, false, 0};
  int rc = check_send(c);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&c->tx_mu);
  if (c->tx_rest_len > 0 || c->tx_bufsize > 0) {
    rc = NOT_FAST;
  } else {
    unsigned char hdr[PC__HDR_LARGE];
    struct iovec v[FAST_IOV + 1];
    int cnt = iovcnt + 1, i = 0;
    size_t hl = pc__frame_header(hdr, total);
    v[0].iov_base = hdr;
    v[0].iov_len = hl;
    for (int k = 0; k < iovcnt; k++)
      v[k + 1] = iov[k];
    ssize_t n = pc__io_send_blocking(atomic_load(&c->fd), v, cnt);
    if (n < 0) {
      rc = (int)n;
    } else if ((size_t)n < hl + total) {
      size_t sent = 0;
      iov_advance(v, &i, (size_t)n);
      rc =
          write_all(c, &forever, v + i, cnt - i, hl + total - (size_t)n, &sent);
    }
  }
  pthread_mutex_unlock(&c->tx_mu);
  return rc;
}

static int send_bytesv_impl(pc_conn *c, const struct iovec *iov, int iovcnt) {
  int rc;
  pc__deadline d;
  unsigned char hdr[PC__HDR_LARGE];
  struct iovec small[9], *v = small;
  size_t total = 0;

  if (iovcnt < 0 || iovcnt >= IOV_MAX || (iovcnt > 0 && iov == NULL))
    return -EINVAL;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_base == NULL && iov[i].iov_len > 0)
      return -EINVAL;
    if (iov[i].iov_len > SIZE_MAX - PC__HDR_LARGE - total)
      return -EINVAL;
    total += iov[i].iov_len;
  }
  if (c != NULL && c->sh_tx != NULL && (rc = check_send(c)) == 0) {
    d = conn_deadline(c);
    return pc__shared_send(c, iov, iovcnt, total, &d);
  }
  if (c != NULL && c->kind == PC__FD_SOCKET && iovcnt <= FAST_IOV &&
      atomic_load_explicit(&c->timeout_ms, memory_order_relaxed) < 0) {
    rc = send_fast(c, iov, iovcnt, total);
    if (rc != NOT_FAST)
      return rc;
  }
  if (iovcnt >= 9) {
    v = malloc(((size_t)iovcnt + 1) * sizeof *v);
    if (v == NULL)
      return -ENOMEM;
  }
  rc = send_begin(c, &d);
  if (rc == 0) {
    size_t hl = pc__frame_header(hdr, total);
    size_t end = hl + total;
    v[0].iov_base = hdr;
    v[0].iov_len = hl;
    if (iovcnt > 0)
      memcpy(v + 1, iov, (size_t)iovcnt * sizeof *v);
    ssize_t n = send_frames(c, &d, v, iovcnt + 1, &end, 1);
    rc = n < 0 ? (int)n : 0;
    pthread_mutex_unlock(&c->tx_mu);
  }
  if (v != small)
    free(v);
  return rc;
}

int pc_send_bytes(pc_conn *c, const void *buf, size_t len) {
  struct iovec v = {(void *)(uintptr_t)buf, len};
  return pc_send_bytesv(c, &v, 1);
}

static ssize_t send_batch_impl(pc_conn *c, const struct iovec *msgs, size_t n) {
  ssize_t rc;
  pc__deadline d;
  if (n > 0 && msgs == NULL)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (msgs[i].iov_base == NULL && msgs[i].iov_len > 0)
      return -EINVAL;
  if (c != NULL && c->sh_tx != NULL && (rc = check_send(c)) == 0) {
    /* Shared ends send frame by frame under the shared lock. */
    size_t done = 0;
    d = conn_deadline(c);
    while (done < n && rc == 0) {
      rc = pc__shared_send(c, &msgs[done], 1, msgs[done].iov_len, &d);
      if (rc == 0)
        done++;
    }
    return done > 0 ? (ssize_t)done : rc;
  }
  rc = send_begin(c, &d);
  if (rc == 0) {
    unsigned char hdr[BATCH_CHUNK][PC__HDR_LARGE];
    struct iovec v[2 * BATCH_CHUNK];
    size_t ends[BATCH_CHUNK];
    size_t done = 0;
    while (done < n) {
      size_t k = n - done < BATCH_CHUNK ? n - done : BATCH_CHUNK, pos = 0;
      for (size_t i = 0; i < k; i++) {
        size_t hl = pc__frame_header(hdr[i], msgs[done + i].iov_len);
        v[2 * i].iov_base = hdr[i];
        v[2 * i].iov_len = hl;
        v[2 * i + 1] = msgs[done + i];
        pos += hl + msgs[done + i].iov_len;
        ends[i] = pos;
      }
      ssize_t r = send_frames(c, &d, v, (int)(2 * k), ends, k);
      if (r < 0) {
        if (done == 0)
          rc = r;
        break;
      }
      done += (size_t)r;
      if ((size_t)r < k)
        break; /* the deadline struck inside this chunk */
    }
    if (rc == 0)
      rc = (ssize_t)done;
    pthread_mutex_unlock(&c->tx_mu);
  }
  return rc;
}

static int send_buffer_impl(pc_conn *c, pc_buffer *b, size_t headroom) {
  int rc;
  pc__deadline d;
  if (c->sh_tx != NULL && (rc = check_send(c)) == 0) {
    struct iovec v = {b->data + headroom, b->len - headroom};
    d = conn_deadline(c);
    return pc__shared_send(c, &v, 1, v.iov_len, &d);
  }
  rc = send_begin(c, &d);
  if (rc == 0) {
    /* The header goes right in front of the payload: one contiguous write,
     * no copy of the payload. */
    unsigned char hdr[PC__HDR_LARGE];
    size_t len = b->len - headroom;
    size_t hl = pc__frame_header(hdr, len);
    unsigned char *start = b->data + headroom - hl;
    memcpy(start, hdr, hl);
    struct iovec v = {start, hl + len};
    size_t end = hl + len;
    ssize_t n = send_frames(c, &d, &v, 1, &end, 1);
    rc = n < 0 ? (int)n : 0;
    pthread_mutex_unlock(&c->tx_mu);
  }
  return rc;
}

static int flush_impl(pc_conn *c) {
  int rc;
  pc__deadline d;
  rc = send_begin(c, &d);
  if (rc == 0) {
    rc = flush_rest(c, &d);
    pthread_mutex_unlock(&c->tx_mu);
  }
  return rc;
}

static int set_buffered_impl(pc_conn *c, size_t size) {
  int rc;
  pc__deadline d;
  if (c != NULL && c->sh_tx != NULL)
    return -ENOTSUP;
  rc = send_begin(c, &d);
  if (rc == 0) {
    if (size < tx_pending(c))
      rc = flush_rest(c, &d);
    if (rc == 0) {
      c->tx_bufsize = size;
      if (size == 0)
        rc = flush_rest(c, &d); /* also releases the storage */
    }
    pthread_mutex_unlock(&c->tx_mu);
  }
  return rc;
}

/* Before a receive on a buffered connection: send what waits, so that a
 * request is never stuck in our buffer while we wait for its reply. Within
 * the receive's deadline, skipped when another thread holds the send side
 * (it is sending anyway). Best effort: whether or not it all went out, the
 * receive goes on -- a message that is already here must not wait for our
 * own sends. Send errors surface on the next send. */
static void flush_before_receive(pc_conn *c, const pc__deadline *d) {
  if (c->tx_bufsize > 0 && tx_pending(c) > 0 && atomic_load(&c->writable) &&
      pthread_mutex_trylock(&c->tx_mu) == 0) {
    (void)flush_rest(c, d);
    pthread_mutex_unlock(&c->tx_mu);
  }
}

/* ================================================================ receiving */

/* A block for a payload (or its first part) that the receive hands to the
 * caller or keeps in rx_msg: malloc, with the huge-page hint when large. */
static void *payload_block(size_t n) {
  void *p = malloc(n > 0 ? n : 1);
  if (p != NULL && n >= HUGE_HINT_MIN)
    pc__io_hugepage_hint(p, n);
  return p;
}

/* Reads what is available into the read-ahead buffer (after making room).
 * Returns bytes read, 0 at end of stream, or -errno. */
static ssize_t rb_fill(pc_conn *c, const pc__deadline *d, size_t most) {
  if (c->rb_off > 0 && c->rb_off == c->rb_end) {
    c->rb_off = c->rb_end = 0;
  } else if (c->rb_off > 0 && RB_SIZE - c->rb_end < RB_PAYLOAD_MAX) {
    memmove(c->rb, c->rb + c->rb_off, c->rb_end - c->rb_off);
    c->rb_end -= c->rb_off;
    c->rb_off = 0;
  }
  size_t room = RB_SIZE - c->rb_end;
  ssize_t n = pc__io_read(atomic_load(&c->fd), c->kind, pc__conn_wake(c, d),
                          c->rb + c->rb_end, room < most ? room : most, d);
  if (n > 0)
    c->rb_end += (size_t)n;
  return n;
}

/* Between messages (no header parsed): the last payload was too large for
 * read-ahead. Then the next read takes only a header's worth, or guesses
 * (rx_spec), so that a stream of large messages is not copied twice. */
static bool last_was_large(const pc_conn *c) {
  return c->rx_len > RB_PAYLOAD_MAX;
}

/* The most payload a guessed read (rx_spec) brings along with a header:
 * what rb can take back if the guess was wrong. */
#define SPEC_MAX (RB_SIZE - PC__HDR_LARGE)

/*
 * A guess at where the next payload goes. After a large message the next one
 * is probably large too; then the receive offers the buffer the payload would
 * go to, and the header and the start of the payload arrive in one readv --
 * the header into rb, the payload straight into place -- instead of a read
 * for the header and another for the payload (the raw reader of a stream of
 * known sizes also pays one). The guess holds when the header has the size
 * of the last one and announces a large payload that fits `limit` and is no
 * shorter than what arrived; otherwise what arrived is moved into rb (at most
 * SPEC_MAX bytes) and the message is taken from there as usual.
 */
typedef struct rx_spec {
  unsigned char *dst; /* where the payload would go */
  size_t len;         /* how much of it to read along with the header */
  size_t limit;       /* the largest payload dst can take */
  size_t got;         /* payload bytes that are in dst */
} rx_spec;

/* The guessed read: rb is empty (a message boundary). */
static ssize_t rb_fill_spec(pc_conn *c, const pc__deadline *d, rx_spec *sp) {
  size_t hl = c->rx_last_hl;
  struct iovec v[2] = {{c->rb, hl}, {sp->dst, sp->len}};
  c->rb_off = c->rb_end = 0;
  ssize_t n =
      pc__io_readv(atomic_load(&c->fd), c->kind, pc__conn_wake(c, d), v, 2, d);
  if (n > 0) {
    c->rb_end = (size_t)n < hl ? (size_t)n : hl;
    sp->got = (size_t)n - c->rb_end;
  }
  sp->len = 0; /* one guess per message */
  return n;
}

/* Makes the next message's header parsed (c->rx_have_hdr). spec (or NULL)
 * offers a guess; on return spec->got payload bytes are in spec->dst. */
static int rx_header(pc_conn *c, const pc__deadline *d, rx_spec *spec) {
  int rc = 0;
  if (c->rx_status == PC_ETRUNCATED)
    return PC_ETRUNCATED; /* the parsed message can never complete */
  if (c->rb == NULL) {
    c->rb = malloc(RB_SIZE);
    if (c->rb == NULL)
      return -ENOMEM;
  }
  while (!c->rx_have_hdr) {
    uint64_t len = 0;
    size_t avail = c->rb_end - c->rb_off;
    if (c->rx_status != 0) {
      rc = c->rx_status;
      break;
    }
    int h = pc__frame_parse(c->rb + c->rb_off, avail, &len);
    if (spec != NULL && spec->got > 0 &&
        !(h == c->rx_last_hl && len > RB_PAYLOAD_MAX && len >= spec->got &&
          len <= spec->limit)) {
      /* A wrong guess: the bytes are the payload's start, or even the
       * next frames'. Behind the header in rb they are read as usual. */
      memcpy(c->rb + c->rb_end, spec->dst, spec->got);
      c->rb_end += spec->got;
      spec->got = 0;
      continue;
    }
    if (h > 0) {
      c->rb_off += (size_t)h;
      c->rx_len = len;
      c->rx_have = 0;
      c->rx_have_hdr = true;
      c->rx_last_hl = (unsigned char)h;
      break;
    }
    if (h < 0) {
      c->rx_status = h; /* no further bytes are read as frames */
      continue;
    }
    /* After a large message the next is likely large too: take just the
     * header, so its payload goes straight to where it belongs -- with the
     * payload's start when the receive offered where it would go. */
    ssize_t n;
    if (spec != NULL && spec->len > 0 && avail == 0 && last_was_large(c))
      n = rb_fill_spec(c, d, spec);
    else
      n = rb_fill(c, d, last_was_large(c) ? PC__HDR_LARGE - avail : SIZE_MAX);
    if (n == 0)
      c->rx_status = avail == 0 ? PC_EOF : PC_ETRUNCATED;
    else if (n < 0) {
      rc = (int)n;
      break;
    }
  }
  return rc;
}

/* Populating a large payload's pages ahead of the reads that fill them. */
typedef struct prefault {
  size_t done; /* base[..done) has been seen to */
  bool capped; /* the last window was fresh memory: reads stop at `done` */
} prefault;

/* Before a read into base[have..end): keeps the pages up to a window ahead
 * of the data populated (pc__io_prefault) and returns how many bytes the
 * read may take. One read can take many megabytes when the peer keeps up, so
 * while the memory is found fresh, reads stop at the end of the populated
 * window; the next window is checked while its first page is untouched. */
static size_t prefault_ahead(prefault *pf, unsigned char *base, size_t have,
                             size_t end) {
  if (end >= PREFAULT_MIN && pf->done < end &&
      have + PREFAULT_WINDOW / 2 >= pf->done) {
    size_t to = end - have > PREFAULT_WINDOW ? have + PREFAULT_WINDOW : end;
    pf->capped = pc__io_prefault(base + pf->done, to - pf->done);
    pf->done = to;
  }
  return pf->capped && pf->done > have ? pf->done - have : end - have;
}

/* Reads into rx_msg[rx_have..) (growing it as bytes arrive) until the whole
 * payload is there. */
static int rx_into_msg(pc_conn *c, const pc__deadline *d) {
  int rc = 0;
  if (c->rx_len > (uint64_t)SSIZE_MAX)
    return -ENOMEM; /* cannot be held by this process, whatever arrives */
  size_t len = (size_t)c->rx_len;
  if (c->rx_msg == NULL) {
    size_t first = len < UPFRONT_MAX ? len : UPFRONT_MAX;
    size_t inrb = c->rb_end - c->rb_off;
    if (inrb > len)
      inrb = len;
    if (first < inrb)
      first = inrb;
    c->rx_msg = payload_block(first);
    if (c->rx_msg == NULL)
      return -ENOMEM;
    c->rx_msg_cap = first;
    memcpy(c->rx_msg, c->rb + c->rb_off, inrb);
    c->rb_off += inrb;
    c->rx_have = inrb;
  }
  prefault pf = {c->rx_have, false};
  while (c->rx_have < len) {
    if (c->rx_have == c->rx_msg_cap) {
      size_t cap = c->rx_msg_cap * 2 < len ? c->rx_msg_cap * 2 : len;
      unsigned char *p = realloc(c->rx_msg, cap);
      if (p == NULL) {
        rc = -ENOMEM;
        break;
      }
      if (cap >= HUGE_HINT_MIN)
        pc__io_hugepage_hint(p, cap);
      c->rx_msg = p;
      c->rx_msg_cap = cap;
    }
    /* A block from a guess (rx_spec) may be larger than this payload:
     * never read past the payload's end into the next frame. */
    size_t end = c->rx_msg_cap < len ? c->rx_msg_cap : len;
    size_t want = prefault_ahead(&pf, c->rx_msg, c->rx_have, end);
    ssize_t n = pc__io_read(atomic_load(&c->fd), c->kind, pc__conn_wake(c, d),
                            c->rx_msg + c->rx_have, want, d);
    if (n > 0) {
      c->rx_have += (size_t)n;
    } else if (n == 0) {
      c->rx_status = PC_ETRUNCATED;
      rc = PC_ETRUNCATED;
      break;
    } else {
      rc = (int)n;
      break;
    }
  }
  return rc;
}

/* Brings the whole payload of the parsed header into the connection: into
 * rb when it is small, else into rx_msg. */
static int rx_payload(pc_conn *c, const pc__deadline *d) {
  int rc = 0;
  if (c->rx_msg == NULL && c->rx_len <= RB_PAYLOAD_MAX) {
    while (c->rb_end - c->rb_off < c->rx_len) {
      if (c->rx_status != 0) {
        rc = c->rx_status;
        break;
      }
      ssize_t n = rb_fill(c, d, SIZE_MAX);
      if (n == 0) {
        c->rx_status = PC_ETRUNCATED;
      } else if (n < 0) {
        rc = (int)n;
        break;
      }
    }
  } else {
    rc = rx_into_msg(c, d);
  }
  return rc;
}

/* Reads the rest of a large payload straight into dst (the caller's buffer,
 * already holding `got` bytes of it), without deadline: one copy, by the
 * kernel. */
static int rx_direct(pc_conn *c, unsigned char *dst, size_t got) {
  int rc = 0;
  pc__deadline forever = pc__deadline_from_ms(-1);
  size_t len = (size_t)c->rx_len;
  size_t inrb = c->rb_end - c->rb_off, have = got;
  if (inrb > len - have)
    inrb = len - have;
  memcpy(dst + have, c->rb + c->rb_off, inrb);
  c->rb_off += inrb;
  have += inrb;
  prefault pf = {have, false};
  while (have < len) {
    size_t want = prefault_ahead(&pf, dst, have, len);
    ssize_t n =
        pc__io_read(atomic_load(&c->fd), c->kind, pc__conn_wake(c, &forever),
                    dst + have, want, &forever);
    if (n > 0) {
      have += (size_t)n;
    } else {
      /* Part of the message is in dst and nowhere else: the stream cannot
       * resume, so it ends here for every later receive too. */
      c->rx_status = PC_ETRUNCATED;
      rc = n == 0 ? PC_ETRUNCATED : (int)n;
      break;
    }
  }
  return rc;
}

/* The current message has been handed out: forget it. */
static void rx_consume(pc_conn *c) {
  if (c->rx_msg != NULL) {
    free(c->rx_msg);
    c->rx_msg = NULL;
    c->rx_msg_cap = 0;
  } else {
    c->rb_off += (size_t)c->rx_len;
  }
  c->rx_have = 0;
  c->rx_have_hdr = false;
}

/* Python's rule for a message over maxlength: the end can no longer
 * receive. A duplex end stays writable; a read-only end is closed. */
static int rx_too_big(pc_conn *c) {
  atomic_store(&c->readable, false);
  if (c->simplex) {
    int fd = atomic_exchange(&c->fd, -1);
    atomic_store(&c->closed, true);
    close(fd);
  }
  return PC_ETOOBIG;
}

/* Whether a receive may guess (rx_spec) that the next message is as large
 * as the last: the last one was large, and nothing of the next one is here
 * yet. c->rx_len still holds the last message's length. */
static bool may_guess(const pc_conn *c) {
  return !c->rx_have_hdr && last_was_large(c) && c->rx_msg == NULL &&
         c->rx_status == 0 && c->rb != NULL && c->rb_off == c->rb_end;
}

static int recv_begin(pc_conn *c, pc__deadline *d) {
  int rc = check_recv(c);
  if (rc == 0) {
    *d = recv_deadline(c);
    flush_before_receive(c, d);
  }
  if (rc == 0) {
    rc = lock_within(&c->rx_mu, d);
    if (rc == 0 && (rc = check_recv(c)) != 0)
      pthread_mutex_unlock(&c->rx_mu);
  }
  return rc;
}

static int recv_bytes_impl(pc_conn *c, void **buf, size_t *len,
                           size_t maxlength) {
  int rc;
  pc__deadline d;
  if (buf == NULL || len == NULL)
    return -EINVAL;
  if (c != NULL && c->sh_rx != NULL && (rc = check_recv(c)) == 0) {
    void *p = NULL;
    d = conn_deadline(c);
    ssize_t n = pc__shared_recv(c, PC__SH_MALLOC, maxlength, NULL, &p, &d);
    if (n >= 0) {
      *buf = p;
      *len = (size_t)n;
    }
    return n >= 0 ? 0 : (int)n;
  }
  rc = recv_begin(c, &d);
  if (rc != 0)
    return rc;
  /* The block the payload goes to when the guess holds (it is then handed
   * over as rx_msg). Not for non-blocking calls, which would make and drop
   * it every time nothing is there. */
  rx_spec sp = {NULL, 0, maxlength, 0};
  size_t block = 0;
  if (may_guess(c) && !d.nonblock && c->rx_len <= maxlength) {
    block = c->rx_len < UPFRONT_MAX ? (size_t)c->rx_len : UPFRONT_MAX;
    sp.dst = payload_block(block);
    sp.len = block < SPEC_MAX ? block : SPEC_MAX;
    if (sp.dst == NULL)
      sp.len = 0;
  }
  rc = rx_header(c, &d, &sp);
  if (sp.got > 0) {
    c->rx_msg = sp.dst;
    c->rx_msg_cap = block;
    c->rx_have = sp.got;
  } else {
    free(sp.dst);
  }
  if (rc == 0 && c->rx_len > maxlength)
    rc = rx_too_big(c);
  if (rc == 0)
    rc = rx_payload(c, &d);
  if (rc == 0) {
    size_t n = (size_t)c->rx_len;
    unsigned char *p;
    bool from_msg = c->rx_msg != NULL;
    if (from_msg) {
      /* Hand the block over: no copy. A block allocated in steps may be
       * larger than the message; give the excess back. */
      p = c->rx_msg;
      if (c->rx_msg_cap > n && n > 0) {
        unsigned char *q = realloc(p, n);
        p = q != NULL ? q : p;
      }
      c->rx_msg = NULL;
      c->rx_msg_cap = 0;
    } else {
      p = malloc(n > 0 ? n : 1);
      if (p == NULL)
        rc = -ENOMEM;
      else
        memcpy(p, c->rb + c->rb_off, n);
    }
    if (rc == 0) {
      if (from_msg) {
        c->rx_have = 0; /* the payload never was in rb */
        c->rx_have_hdr = false;
      } else {
        rx_consume(c);
      }
      *buf = p;
      *len = n;
    }
  }
  pthread_mutex_unlock(&c->rx_mu);
  return rc;
}

static ssize_t recv_into_impl(pc_conn *c, void *buf, size_t cap) {
  ssize_t rc;
  pc__deadline d;
  if (buf == NULL && cap > 0)
    return -EINVAL;
  if (c != NULL && c->sh_rx != NULL && (rc = check_recv(c)) == 0) {
    d = conn_deadline(c);
    return pc__shared_recv(c, PC__SH_INTO, cap, buf, NULL, &d);
  }
  rc = recv_begin(c, &d);
  if (rc != 0)
    return rc;
  /* Guess only without deadline: a payload begun in buf must be finished
   * there (rx_direct), it cannot wait in the connection for a later call.
   * And only where a large payload can fit at all. */
  rx_spec sp = {buf, 0, cap, 0};
  if (may_guess(c) && d.forever && cap > RB_PAYLOAD_MAX) {
    size_t want = c->rx_len < cap ? (size_t)c->rx_len : cap;
    sp.len = want < SPEC_MAX ? want : SPEC_MAX;
  }
  rc = rx_header(c, &d, &sp);
  if (rc == 0 && c->rx_len > cap)
    rc = PC_ETOOSHORT; /* the message stays for the next receive */
  if (rc == 0) {
    size_t n = (size_t)c->rx_len;
    if (d.forever && c->rx_msg == NULL && n > RB_PAYLOAD_MAX) {
      rc = rx_direct(c, buf, sp.got);
      if (rc == 0) {
        c->rx_have_hdr = false;
        rc = (ssize_t)n;
      }
    } else {
      rc = rx_payload(c, &d);
      if (rc == 0) {
        if (n > 0) /* buf may be NULL for an empty message */
          memcpy(buf, c->rx_msg != NULL ? c->rx_msg : c->rb + c->rb_off, n);
        rx_consume(c);
        rc = (ssize_t)n;
      }
    }
  }
  pthread_mutex_unlock(&c->rx_mu);
  return rc;
}

static int recv_apply_impl(pc_conn *c, size_t maxlength,
                           int (*fn)(void *arg, const void *data, size_t len),
                           void *arg) {
  int rc;
  pc__deadline d;
  if (c != NULL && c->sh_rx != NULL && (rc = check_recv(c)) == 0) {
    void *p = NULL;
    d = conn_deadline(c);
    ssize_t n = pc__shared_recv(c, PC__SH_MALLOC, maxlength, NULL, &p, &d);
    if (n >= 0) {
      rc = fn(arg, p, (size_t)n);
      free(p);
    } else {
      rc = (int)n;
    }
    return rc;
  }
  rc = recv_begin(c, &d);
  if (rc != 0)
    return rc;
  rc = rx_header(c, &d, NULL);
  if (rc == 0 && c->rx_len > maxlength)
    rc = rx_too_big(c);
  if (rc == 0)
    rc = rx_payload(c, &d);
  if (rc == 0) {
    rc = fn(arg, c->rx_msg != NULL ? c->rx_msg : c->rb + c->rb_off,
            (size_t)c->rx_len);
    rx_consume(c);
  }
  pthread_mutex_unlock(&c->rx_mu);
  return rc;
}

static ssize_t next_size_impl(pc_conn *c) {
  ssize_t rc;
  pc__deadline d;
  if (c != NULL && c->sh_rx != NULL && (rc = check_recv(c)) == 0) {
    d = conn_deadline(c);
    return pc__shared_recv(c, PC__SH_SIZE, 0, NULL, NULL, &d);
  }
  rc = recv_begin(c, &d);
  if (rc != 0)
    return rc;
  rc = rx_header(c, &d, NULL);
  if (rc == 0)
    rc = c->rx_len > (uint64_t)SSIZE_MAX ? PC_ETOOBIG : (ssize_t)c->rx_len;
  pthread_mutex_unlock(&c->rx_mu);
  return rc;
}

static int poll_impl(pc_conn *c, int timeout_ms) {
  int rc;
  pc__deadline d;
  if (timeout_ms < -1)
    return -EINVAL;
  rc = check_recv(c);
  if (rc != 0)
    return rc;
  if (c->sh_rx != NULL)
    return pc__shared_poll(c, timeout_ms);
  d = with_spin(c, pc__deadline_from_ms(timeout_ms));
  flush_before_receive(c, &d);
  rc = lock_within(&c->rx_mu, &d);
  if (rc == -EAGAIN || rc == -ETIMEDOUT)
    return 0; /* another thread is receiving: nothing for us yet */
  if (rc != 0)
    return rc;
  rc = check_recv(c);
  if (rc == 0) {
    /* Pull what is there into the connection until a whole message is
     * buffered, the stream ends, or time runs out. */
    rc = rx_header(c, &d, NULL);
    if (rc == 0)
      rc = rx_payload(c, &d);
    if (rc == 0 || rc == PC_EOF || rc == PC_ETRUNCATED || rc == PC_EPROTO)
      rc = 1;
    else if (rc == -EAGAIN || rc == -ETIMEDOUT)
      rc = 0;
  }
  pthread_mutex_unlock(&c->rx_mu);
  return rc;
}

/* ================================================================ closing */

/* ================================================================ entry points
 * The public calls that may block, wrapped so that pc_close can find them. */

int pc_send_bytesv(pc_conn *c, const struct iovec *iov, int iovcnt) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, send_bytesv_impl(c, iov, iovcnt));
  return (int)rc;
}

ssize_t pc_send_batch(pc_conn *c, const struct iovec *msgs, size_t n) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, send_batch_impl(c, msgs, n));
  return (ssize_t)rc;
}

int pc__send_buffer(pc_conn *c, pc_buffer *b, size_t headroom) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, send_buffer_impl(c, b, headroom));
  return (int)rc;
}

int pc_flush(pc_conn *c) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, flush_impl(c));
  return (int)rc;
}

int pc_set_buffered(pc_conn *c, size_t size) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, set_buffered_impl(c, size));
  return (int)rc;
}

int pc_recv_bytes(pc_conn *c, void **buf, size_t *len, size_t maxlength) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, recv_bytes_impl(c, buf, len, maxlength));
  return (int)rc;
}

ssize_t pc_recv_bytes_into(pc_conn *c, void *buf, size_t cap) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, recv_into_impl(c, buf, cap));
  return (ssize_t)rc;
}

ssize_t pc_next_size(pc_conn *c) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, next_size_impl(c));
  return (ssize_t)rc;
}

int pc_poll(pc_conn *c, int timeout_ms) {
  ssize_t rc = enter(c);
  if (rc == 0) {
    rc = poll_impl(c, timeout_ms);
    /* Woken by pc_close, the end "ended": that is the close, not the peer. */
    if (rc > 0 && (atomic_load(&c->users) & PC__CLOSING))
      rc = PC_ECLOSED;
    rc = leave(c, rc);
  }
  return (int)rc;
}

int pc__recv_apply(pc_conn *c, size_t maxlength,
                   int (*fn)(void *arg, const void *data, size_t len),
                   void *arg) {
  ssize_t rc = enter(c);
  if (rc == 0)
    rc = leave(c, recv_apply_impl(c, maxlength, fn, arg));
  return (int)rc;
}

int pc_close(pc_conn *c) {
  int rc = 0;
  if (c == NULL)
    return 0;
  adopt_after_fork(c);
  if (atomic_fetch_or(&c->users, PC__CLOSING) != 0) {
    /* Other threads are inside calls: get them out. A shut-down socket ends
     * their waits; a pipe end's waits also watch the eventfd. */
    int fd = atomic_load(&c->fd);
    if (c->kind == PC__FD_SOCKET && fd >= 0)
      shutdown(fd, SHUT_RDWR);
    int w = atomic_load(&c->wake_fd);
    if (w >= 0) {
      uint64_t one = 1;
      ssize_t k = write(w, &one, sizeof one);
      (void)k;
    }
    uint32_t u;
    while ((u = atomic_load(&c->users)) != PC__CLOSING)
      pc__futex_wait(&c->users, u, NULL);
    /* Everyone is out and nobody may come in: the eventfd has done its job
     * and would cancel the flush below. */
    w = atomic_exchange(&c->wake_fd, -1);
    if (w >= 0)
      close(w);
  }
  /* Only this thread is left: waits may block normally again. */
  atomic_store(&c->users, 0);
  if (!atomic_load(&c->closed) && tx_pending(c) > 0) {
    pc__deadline d = conn_deadline(c);
    pthread_mutex_lock(&c->tx_mu);
    rc = flush_rest(c, &d);
    pthread_mutex_unlock(&c->tx_mu);
  }
  int fd = atomic_exchange(&c->fd, -1);
  if (fd >= 0)
    close(fd); /* never retried: Linux releases fd even on EINTR */
  int w = atomic_exchange(&c->wake_fd, -1);
  if (w >= 0)
    close(w);
  pc__shared_release(c);
  free(c->tx_rest);
  free(c->rb);
  free(c->rx_msg);
  pthread_mutex_destroy(&c->tx_mu);
  pthread_mutex_destroy(&c->rx_mu);
  free(c);
  return rc;
}
