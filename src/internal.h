/* SPDX-License-Identifier: MIT */
/* Private declarations shared by the files of src/. Nothing here is API. */
#ifndef PIPECONN_INTERNAL_H
#define PIPECONN_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "pipeconn.h"

/* ---------------------------------------------------------------- deadlines
 * A deadline is an absolute CLOCK_MONOTONIC time, or "none" (wait forever).
 * Timeouts are turned into a deadline once per call, and every wait recomputes
 * what is left from it, so EINTR and partial progress never extend a wait. */
typedef struct pc__deadline {
  int64_t at_ns; /* CLOCK_MONOTONIC; meaningful when !forever */
  bool forever;
  bool nonblock;   /* timeout 0: never wait */
  int32_t spin_ns; /* reads: how long to keep trying before sleeping
                      (pc_set_spin); 0 from pc__deadline_from_ms */
} pc__deadline;

pc__deadline pc__deadline_from_ms(int timeout_ms);
int64_t pc__now_ns(void);
/* Milliseconds left for poll(2): -1 forever, 0 expired or non-blocking. */
int pc__deadline_poll_ms(const pc__deadline *d);
/* Fills an absolute CLOCK_MONOTONIC timespec (for *_clocklock / futex). */
struct timespec pc__deadline_abstime(const pc__deadline *d);
bool pc__deadline_expired(const pc__deadline *d);
/* The code a wait that ran out of time reports: -EAGAIN for timeout 0,
 * -ETIMEDOUT otherwise. */
int pc__deadline_code(const pc__deadline *d);

/* ---------------------------------------------------------------- framing
 * Wire format helpers (frame.c). Lengths are encoded with shifts, never by
 * casting over the buffer. */
#define PC__HDR_SMALL 4u
#define PC__HDR_LARGE 12u

void pc__put_be32(unsigned char *p, uint32_t v);
void pc__put_be64(unsigned char *p, uint64_t v);
uint32_t pc__get_be32(const unsigned char *p);
uint64_t pc__get_be64(const unsigned char *p);

/* pc__frame_header writes the header for a payload of len bytes into hdr
 * (room for PC__HDR_LARGE) and returns its size (4 or 12). */
size_t pc__frame_header(unsigned char hdr[PC__HDR_LARGE], uint64_t len);

/* pc__frame_parse parses a header from p[0..avail).
 * Returns the header size (4 or 12) and sets *len; 0 if more bytes are
 * needed; PC_EPROTO for a negative header other than -1. */
int pc__frame_parse(const unsigned char *p, size_t avail, uint64_t *len);

/* ---------------------------------------------------------------- POSIX I/O
 * posix_io.c: the only place that calls read/write/poll on a connection's
 * descriptor. kind tells how to avoid SIGPIPE and how to do one
 * non-blocking attempt without touching the descriptor's O_NONBLOCK flag
 * (which is shared with every process holding the same open file). */
enum pc__fdkind { PC__FD_SOCKET, PC__FD_PIPE };

/* One write attempt of iov (blocking unless d says otherwise; waits with
 * poll until the deadline). Returns bytes written (> 0), or -errno:
 * -EAGAIN/-ETIMEDOUT when the deadline passed with nothing written, -EPIPE
 * without raising SIGPIPE. Retries EINTR. */
ssize_t pc__io_writev(int fd, enum pc__fdkind kind, int wake,
                      const struct iovec *iov, int iovcnt,
                      const pc__deadline *d);
/* pc__io_read into the concatenation of iov[0..iovcnt). */
ssize_t pc__io_readv(int fd, enum pc__fdkind kind, int wake,
                     const struct iovec *iov, int iovcnt,
                     const pc__deadline *d);
/* pc__io_writev for a blocking write on a socket with no deadline and no
 * wake descriptor, the common case, in one sendmsg. */
ssize_t pc__io_send_blocking(int fd, const struct iovec *iov, int iovcnt);
/* One read attempt into buf[0..cap): bytes read (> 0), 0 at end of stream,
 * or -errno (-EAGAIN/-ETIMEDOUT at the deadline). Retries EINTR. When
 * nothing is there and d->spin_ns > 0, it keeps trying, yielding the CPU
 * between tries, for up to that long (never past the deadline, and only
 * until `wake` fires) before it sleeps. */
ssize_t pc__io_read(int fd, enum pc__fdkind kind, int wake, void *buf,
                    size_t cap, const pc__deadline *d);
/* Hints that p[0..len) is about to be written by a read: populates it in
 * one go when its first page is not resident yet (fresh memory). Returns
 * true when it did. */
bool pc__io_prefault(void *p, size_t len);
/* Hints that p[0..len), memory the library allocated for a large payload,
 * be backed by transparent huge pages (MADV_HUGEPAGE on its whole 2 MiB
 * pages). Only a hint; nothing happens where the kernel has no THP. */
void pc__io_hugepage_hint(void *p, size_t len);
/* Waits until fd is readable (or hung up) or the deadline passes: 1 ready,
 * 0 deadline, -errno. */
int pc__io_wait_readable(int fd, const pc__deadline *d);
/* Waits for `events` on fd (POLLHUP/POLLERR count as ready) until the
 * deadline: 1 ready, 0 deadline passed, -ECANCELED if `wake` (an eventfd,
 * or -1 for none) became readable, -errno.
 * `wake` in pc__io_writev / pc__io_read: when >= 0, unbounded waits also
 * happen in poll, so pc_close can interrupt them (-ECANCELED). */
int pc__io_wait(int fd, int wake, short events, const pc__deadline *d);
/* Whether fd is a socket (decides MSG_NOSIGNAL vs. the SIGPIPE mask). */
enum pc__fdkind pc__io_fdkind(int fd);
/* One round of a spin before sleeping (pc_set_spin), after a try found
 * nothing: returns true, having yielded the CPU, while d->spin_ns since the
 * first round (*until, 0 before it) and the deadline allow another try and
 * `wake` (an eventfd, or -1) has not fired; false when it is time to sleep. */
bool pc__spin_round(const pc__deadline *d, int wake, int64_t *until);
/* Test hook: called once per spin round of a read or a pc_wait (after a
 * try found nothing, before the CPU is yielded). NULL (the default) costs
 * one load, and only on a path that would otherwise sleep. */
extern void (*pc__spin_hook)(void);

/* ---------------------------------------------------------------- connections
 * The connection object, shared by conn.c and posix_shared.c. */
#include <pthread.h>
#include <stdatomic.h>

struct pc__sdir;
struct pc__shmap;

struct pc_conn {
  _Atomic int fd;
  enum pc__fdkind kind;
  bool simplex;
  atomic_bool readable;
  atomic_bool writable;
  atomic_bool closed;
  atomic_int timeout_ms;
  atomic_int spin_us; /* pc_set_spin */

  const pc_serializer *ser; /* NULL: the default (pickle) */
  void *ser_ctx;

  pthread_mutex_t tx_mu;
  unsigned char *tx_rest; /* bytes to send before anything else: the tail of
                           * a cut frame, or buffered frames */
  size_t tx_rest_len;     /* end of those bytes */
  size_t tx_rest_off;     /* first unsent one */
  size_t tx_rest_cap;
  size_t tx_bufsize; /* pc_set_buffered size; 0: unbuffered */

  pthread_mutex_t rx_mu;
  unsigned char *rb;        /* read-ahead buffer, allocated on first receive */
  size_t rb_off;            /* first unconsumed byte */
  size_t rb_end;            /* end of valid bytes */
  bool rx_have_hdr;         /* the next message's header has been parsed */
  unsigned char rx_last_hl; /* header size of the last message parsed */
  uint64_t rx_len;          /* its payload length (until the next header is
                               parsed: the last message's) */
  unsigned char *rx_msg;    /* payload held outside rb (large or resumed) */
  size_t rx_msg_cap;
  size_t rx_have; /* payload bytes in rx_msg */
  int rx_status;  /* sticky end: PC_EOF, PC_ETRUNCATED, PC_EPROTO */

  /* Closing while other threads are inside calls (pc_close): the calls in
   * progress, the flag that turns them away, and an eventfd that wakes a
   * thread blocked on a pipe (-1 until a thread is about to block). */
  _Atomic uint32_t users;    /* calls inside, | PC__CLOSING once closing */
  _Atomic unsigned fork_gen; /* pc__fork_gen when `users` was last valid */
  _Atomic int wake_fd;

  /* PC_SHARED ends (posix_shared.c): the per-direction shared records this
   * end sends into / receives from, and this process's mapping. */
  struct pc__sdir *sh_tx;
  struct pc__sdir *sh_rx;
  struct pc__shmap *sh_map;
};

/* conn.c builds a connection around a descriptor; posix_pipe.c creates the
 * descriptors. pc__conn_new takes ownership of fd only on success.
 * flags: PC_READABLE / PC_WRITABLE, plus PC_SIMPLEX when the end is one half
 * of a pipe(2) (a read-only pipe end closes on PC_ETOOBIG, as in Python). */
int pc__conn_new(int fd, int flags, pc_conn **out);
/* The descriptor pc_close may use to wake a wait under deadline d on c: an
 * eventfd for pipe ends (made on first use), -1 for sockets (pc_close shuts
 * them down instead) and for waits that cannot block. */
int pc__conn_wake(pc_conn *c, const pc__deadline *d);
/* Test hook for the first call on a connection in a forked child (conn.c,
 * adopt_slow): called by the thread that adopts the connection, after
 * claiming it and before resetting its count of calls, and once by every
 * thread that finds another one adopting, before it waits. NULL (the
 * default) costs one load, and only in a new process. */
enum pc__ahook_point {
  PC__AHOOK_ADOPTING = 1,
  PC__AHOOK_WAITING,
};
extern void (*pc__adopt_hook)(int point);
/* The flag pc_close sets in `users`: one word, so that a leaving call
 * decides from its own atomic result whether to wake pc_close, and never
 * touches the connection's memory after it is out. */
#define PC__CLOSING 0x80000000u

/* posix_shared.c: PC_SHARED ends. pc__shared_attach gives two fresh
 * connections of one pipe their shared records (one mapping). */
int pc__shared_attach(pc_conn *a, pc_conn *b, bool simplex);
void pc__shared_release(pc_conn *c);
/* One frame of `total` payload bytes from iov. */
int pc__shared_send(pc_conn *c, const struct iovec *iov, int iovcnt,
                    size_t total, const pc__deadline *d);
/* Receive modes: a malloc'd payload into *out (limit: maxlength), into the
 * caller's buffer `into` (limit: its capacity), or only the next size. */
enum { PC__SH_MALLOC, PC__SH_INTO, PC__SH_SIZE };
ssize_t pc__shared_recv(pc_conn *c, int mode, size_t limit, void *into,
                        void **out, const pc__deadline *d);
int pc__shared_poll(pc_conn *c, int timeout_ms);
/* Fault-injection hook for tests: called at these points, so a test can kill
 * the process exactly there. NULL (the default) costs one load. */
enum pc__shook_point {
  PC__SHOOK_TX_INFLIGHT = 1, /* write flagged in flight, not yet made */
  PC__SHOOK_TX_PARTIAL,      /* part of a frame written and recorded */
  PC__SHOOK_RX_PARTIAL,      /* part of a payload read and recorded */
};
extern void (*pc__shared_hook)(int point);

/* ---------------------------------------------------------------- errors */
/* pc__errno_neg returns -errno of the failing call just made (never 0). */
static inline int pc__errno_neg(void) { return errno > 0 ? -errno : -EIO; }

/* ---------------------------------------------------------------- buffer */
/* Growth policy shared by every growable buffer: doubles, at least 64. */
size_t pc__grow_size(size_t have, size_t need);

/* ---------------------------------------------------------------- serializer seam
 * conn.c lends these to serializer.c (pc_send / pc_recv) and queue code. */

/* The serializer attached to c (NULL: the default pickle codec) and its ctx. */
void pc__conn_serializer(pc_conn *c, const pc_serializer **s, void **ctx);
void pc__conn_set_serializer(pc_conn *c, const pc_serializer *s, void *ctx);
/* pc__conn_check_open: 0, or PC_ECLOSED. */
int pc__conn_check_open(const pc_conn *c);

/* pc__send_buffer sends b->data[headroom..b->len) as one message. The first
 * `headroom` bytes (>= PC__HDR_LARGE) are free room where the header is
 * written, so header and payload leave in one system call without a copy. */
#define PC__SEND_HEADROOM 16u
int pc__send_buffer(pc_conn *c, pc_buffer *b, size_t headroom);

/* pc__recv_apply receives one whole message and calls fn on its payload
 * (valid only during the call, often pointing into the read-ahead buffer, so
 * decoding needs no copy). The message is consumed whatever fn returns.
 * Returns fn's result, or a receive error as pc_recv_bytes. */
int pc__recv_apply(pc_conn *c, size_t maxlength,
                   int (*fn)(void *arg, const void *data, size_t len),
                   void *arg);

/* ---------------------------------------------------------------- values (value.c)
 * value.c alone knows each value's layout. The codec and repr see the common
 * header, the immediate ints (a pointer with the low bit set carries the int
 * in its other bits: no allocation) and the pc__ accessors below. */
#include <stdatomic.h>

struct pc_value {
  _Atomic uint32_t refs; /* unused when PC__VF_IMMORTAL */
  uint8_t type;          /* pc_type, or PC__TYPE_GLOBAL */
  uint8_t flags;         /* PC__VF_* */
  uint16_t depth;        /* containers: nesting depth, kept by the decoder */
};
enum {
  PC__VF_IMMORTAL = 1, /* static singleton: never counted, never freed */
  PC__VF_SEALED = 2,   /* decoder: referenced elsewhere, no more mutation */
  PC__VF_HEAPITEMS = 4 /* container may hold items that are not immediate */
};
/* Decoder-only marker for one of the safe globals (set, frozenset, bytes,
 * _codecs.encode); never handed to users. */
#define PC__TYPE_GLOBAL 0x40u

#define PC__SMALL_MIN ((int64_t)(INTPTR_MIN >> 1))
#define PC__SMALL_MAX ((int64_t)(INTPTR_MAX >> 1))
static inline bool pc__is_small(const pc_value *v) {
  return ((uintptr_t)v & 1u) != 0;
}
/* i must lie in [PC__SMALL_MIN, PC__SMALL_MAX]. */
static inline pc_value *pc__small(int64_t i) {
  return (pc_value *)(((uintptr_t)(intptr_t)i << 1) | 1u);
}
static inline int64_t pc__small_val(const pc_value *v) {
  return (int64_t)((intptr_t)(uintptr_t)v >> 1);
}
static inline unsigned pc__type(const pc_value *v) {
  return pc__is_small(v) ? (unsigned)PC_TYPE_INT : v->type;
}
static inline bool pc__is_counted(const pc_value *v) {
  return !pc__is_small(v) && (v->flags & PC__VF_IMMORTAL) == 0;
}
static inline pc_value *pc__ref(pc_value *v) {
  if (pc__is_counted(v))
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
  return v;
}
/* Whether v is referenced once only (so it cannot appear twice in a tree). */
static inline bool pc__is_unique(const pc_value *v) {
  return pc__is_counted(v) &&
         atomic_load_explicit(&v->refs, memory_order_relaxed) == 1;
}

typedef struct pc__entry {
  pc_value *key;
  pc_value *value; /* NULL in sets */
  uint64_t hash;
} pc__entry;

/* Borrowed views. */
pc_value *const *pc__seq_items(const pc_value *v, size_t *n); /* list, tuple */
const pc__entry *pc__map_entries(const pc_value *v, size_t *n); /* dict, set */
const unsigned char *pc__bigint_bytes(const pc_value *v, size_t *n);
double pc__float_val(const pc_value *v);
const char *pc__strbuf(const pc_value *v, size_t *n); /* str and bytes */
/* Big ints: two's complement, little-endian, shortest (immediate ints never
 * come here). */
int pc__int_from_le(const unsigned char *p, size_t n, pc_value **out);
int pc__int_to_decimal(const pc_value *v, pc_buffer *out);
int pc__int_from_decimal(const char *s, size_t n, pc_value **out);
/* Python's float() of repr() text, locale-independent (value_repr.c). */
int pc__float_parse(const char *s, size_t n, double *out);
/* Builders for the decoder. On failure nothing is stolen and the caller
 * still owns every argument. -EINVAL: invalid UTF-8, unhashable key. */
int pc__str_new(const char *s, size_t n, bool utf8_checked, pc_value **out);
int pc__str_new_latin1(const unsigned char *s, size_t n, pc_value **out);
int pc__bytes_new(const void *p, size_t n, pc_value **out);
int pc__float_new(double d, pc_value **out);
bool pc__utf8_valid(const unsigned char *s, size_t n);
pc_value *pc__list_new(void);
int pc__list_extend_steal(pc_value *list, pc_value *const *items, size_t n);
int pc__tuple_new_steal(pc_value *const *items, size_t n, pc_value **out);
pc_value *pc__map_new(pc_type type);
int pc__dict_set_steal(pc_value *dict, pc_value *key, pc_value *value);
int pc__set_add_steal(pc_value *set, pc_value *item);
int pc__value_hash(const pc_value *v, uint64_t *out, int depth);
/* Printable characters as Python 3.11's str.isprintable() (value_unicode.c). */
bool pc__unicode_printable(uint32_t cp);

/* ---------------------------------------------------------------- process-shared synchronisation (posix_sync.c)
 * Building blocks for objects that live in memory shared across fork():
 * the queue, and PC_SHARED connection ends. */
#include <pthread.h>
#include <stdatomic.h>

size_t pc__page_size(void);

/* pc__shm_map maps len bytes of zeroed MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE
 * memory (pages are allocated on first touch; children forked afterwards
 * share them; exec drops the mapping). Returns 0 and sets *out, or -EINVAL,
 * -ENOMEM. Release with pc__shm_unmap in every process that holds it. */
int pc__shm_map(size_t len, void **out);
void pc__shm_unmap(void *p, size_t len);
/* pc__shm_discard returns the whole pages inside p[0..len) to the system
 * (MADV_REMOVE) for every process; they read as zero afterwards. */
void pc__shm_discard(void *p, size_t len);

/* A robust PTHREAD_PROCESS_SHARED mutex placed in shared memory.
 * pc__pmutex_lock returns 0 when acquired; PC__LOCK_OWNERDEAD when acquired
 * but the previous owner died holding it (the caller repairs the protected
 * state, then calls pc__pmutex_consistent before unlocking); -EAGAIN
 * (d->nonblock) or -ETIMEDOUT when the deadline passed; -ENOTRECOVERABLE, or
 * another -errno. d NULL or forever: waits without bound. It spins briefly
 * before sleeping, and sleeps in slices of 100 ms (a robust mutex can lose
 * the wake-up of a waiter killed at the wrong moment; see posix_sync.c). */
#define PC__LOCK_OWNERDEAD 1
int pc__pmutex_init(pthread_mutex_t *m);
void pc__pmutex_destroy(pthread_mutex_t *m);
int pc__pmutex_lock(pthread_mutex_t *m, const pc__deadline *d);
int pc__pmutex_consistent(pthread_mutex_t *m);
void pc__pmutex_unlock(pthread_mutex_t *m);

/* pc__futex_wait sleeps while *word == expected, until pc__futex_wake or the
 * deadline (d NULL: no bound), on a shared (not _PRIVATE) futex. Returns 0
 * on a wake-up, a changed word, a signal or a spurious wake (the caller
 * re-checks its condition); pc__deadline_code(d) when the deadline passed;
 * another -errno. pc__futex_wake wakes up to n waiters (INT_MAX: all) and
 * returns how many it woke, or -errno. */
int pc__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   const pc__deadline *d);
int pc__futex_wake(_Atomic uint32_t *word, int n);

/* One iteration of a spin-wait (the CPU's pause instruction). */
void pc__cpu_relax(void);

/* Fault-injection hook for the queue's tests (queue.c): when set, it is
 * called with the lock held at each of these points of a put or get, so a
 * test can kill the process exactly there. NULL (the default) costs one
 * load per point. */
enum pc__qhook_point {
  PC__QHOOK_PUT_COPIED = 1, /* payload in the ring, nothing committed */
  PC__QHOOK_GET_COPIED,     /* payload copied out, nothing committed */
  PC__QHOOK_COMMIT_LOGGED,  /* redo log valid, nothing applied */
  PC__QHOOK_COMMIT_HALF,    /* positions applied, counters not yet */
  PC__QHOOK_COMMITTED,      /* commit complete, lock still held */
};
extern void (*pc__queue_hook)(int point);

#endif
