/* SPDX-License-Identifier: MIT */
/*
 * pc_queue: a multi-process queue in one shared anonymous mapping.
 *
 * Layout: a header (struct shared, padded to a page), then a byte ring of
 * records. A record is an 8-byte length followed by the payload, padded to
 * 8 bytes; the payload may wrap around the end of the ring, the length
 * never does (positions and the capacity are multiples of 8).
 *
 * Every change of the shared state happens under one robust process-shared
 * mutex, in two steps:
 *  - the payload is copied first (a put writes into free space beyond the
 *    tail; a get copies the item out), which is invisible to others;
 *  - then commit() publishes the new positions and counters through a redo
 *    log: the new values are written to the log, the log is marked valid
 *    (the commit point, one store), the values are applied, the mark is
 *    cleared. A process killed anywhere in this sequence leaves either no
 *    valid log (nothing happened, or everything did) or a valid log that
 *    the next locker re-applies when the mutex reports EOWNERDEAD.
 * So a dead producer never leaves half an item visible, and a dead consumer
 * never takes an item away without having committed.
 *
 * Waiting happens only when the queue is empty (get), full (put) or has
 * unfinished tasks (join), on futex words that are bumped on every change
 * a waiter may care about. A waiter spins briefly on the word before
 * sleeping, and a waker only makes a system call when someone sleeps (a
 * bit in the word says so), so a busy queue costs no system call per item.
 */
#include <limits.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define QUEUE_MAGIC 0x70635175u /* "pcQu" */
#define REC_HDR 8u
/* Items at least this large give their pages back when taken out. */
#define BIG_ITEM ((uint64_t)1 << 20)
/* Blocked waiters re-check at least this often, so that a process killed
 * between making an item (or room) available and waking the sleepers
 * cannot leave them asleep for good. */
#define WAIT_SLICE_NS ((int64_t)1000000000)
/* How long a waiter spins on the futex word before sleeping. */
#define SPIN_NS ((int64_t)20000)

/* The positions and counters a commit changes together. */
struct qstate {
  uint64_t head;       /* ring offset of the oldest record */
  uint64_t tail;       /* ring offset where the next record goes */
  uint64_t used;       /* bytes of records in the ring */
  uint64_t count;      /* records in the ring */
  uint64_t unfinished; /* items put and not yet task_done */
};

struct shared {
  uint32_t magic;
  uint64_t cap;     /* ring bytes, a multiple of the page size */
  uint64_t maxsize; /* most records at once; UINT64_MAX: no limit */
  pthread_mutex_t lock;

  /* State, read and written under the lock only. Atomic (relaxed: the
   * mutex orders them) so that every store is whole, which the redo log
   * relies on when a process dies in the middle of a commit. */
  _Atomic uint64_t head, tail, used, count, unfinished;
  _Atomic uint32_t closed;
  _Atomic uint32_t log_valid;
  struct qstate log;

  /* Futex words, each on its own cache line: bumped (by 2) when an item
   * arrives (or close), when room is freed (or close), when the last task
   * is done (or close). Bit 0 says that somebody sleeps on the word. */
  alignas(64) _Atomic uint32_t items_seq;
  alignas(64) _Atomic uint32_t space_seq;
  alignas(64) _Atomic uint32_t done_seq;
};

struct pc_queue {
  struct shared *s;
  unsigned char *ring;
  size_t map_len;
  const pc_serializer *ser;
  void *ctx;
};

/* ------------------------------------------------------------ state */

static uint64_t ld(const _Atomic uint64_t *p) {
  return atomic_load_explicit(p, memory_order_relaxed);
}

static void st(_Atomic uint64_t *p, uint64_t v) {
  atomic_store_explicit(p, v, memory_order_relaxed);
}

/* The compiler must emit the stores of a commit in program order: a
 * SIGKILL stops the process between two instructions, and the next locker
 * relies on the order. (The mutex hand-over orders them for the CPU.) */
static void barrier(void) { atomic_signal_fence(memory_order_seq_cst); }

static struct qstate load_state(const struct shared *s) {
  struct qstate q;
  q.head = ld(&s->head);
  q.tail = ld(&s->tail);
  q.used = ld(&s->used);
  q.count = ld(&s->count);
  q.unfinished = ld(&s->unfinished);
  return q;
}

static void apply(struct shared *s, const struct qstate *n) {
  st(&s->head, n->head);
  st(&s->tail, n->tail);
  st(&s->used, n->used);
  st(&s->count, n->count);
  st(&s->unfinished, n->unfinished);
}

void (*pc__queue_hook)(int point);

static void hook(int point) {
  if (pc__queue_hook != NULL)
    pc__queue_hook(point);
}

static void commit(struct shared *s, const struct qstate *n) {
  s->log = *n;
  barrier();
  atomic_store_explicit(&s->log_valid, 1, memory_order_relaxed);
  barrier();
  hook(PC__QHOOK_COMMIT_LOGGED);
  st(&s->head, n->head);
  st(&s->tail, n->tail);
  st(&s->used, n->used);
  barrier();
  hook(PC__QHOOK_COMMIT_HALF);
  st(&s->count, n->count);
  st(&s->unfinished, n->unfinished);
  barrier();
  atomic_store_explicit(&s->log_valid, 0, memory_order_relaxed);
  hook(PC__QHOOK_COMMITTED);
}

/* The futex words count by 2; bit 0 is set by a process about to sleep on
 * the word, and cleared by the next bump, which then makes the one wake-up
 * system call for all sleepers. So a waker pays a system call only when
 * somebody sleeps, once per sleep, and a sleeper killed in its sleep leaves
 * nothing behind (the next bump clears its bit). */
#define SLEEPERS 1u

/* Bumps a futex word (clearing the sleepers bit); returns whether somebody
 * sleeps on it, in which case the caller wakes them all (after unlocking). */
static bool bump(_Atomic uint32_t *seq) {
  uint32_t v = atomic_load(seq);
  while (!atomic_compare_exchange_weak(seq, &v, (v + 2u) & ~SLEEPERS)) {
  }
  return (v & SLEEPERS) != 0;
}

/* Bumps every futex word and wakes every sleeper: after a close, or a
 * repair (the dead process may have been about to wake somebody). */
static void wake_everybody(struct shared *s) {
  (void)bump(&s->items_seq);
  (void)bump(&s->space_seq);
  (void)bump(&s->done_seq);
  pc__futex_wake(&s->items_seq, INT_MAX);
  pc__futex_wake(&s->space_seq, INT_MAX);
  pc__futex_wake(&s->done_seq, INT_MAX);
}

/* Runs with the lock held after its previous owner died in it. */
static void repair(struct shared *s) {
  if (atomic_load_explicit(&s->log_valid, memory_order_relaxed)) {
    apply(s, &s->log);
    barrier();
    atomic_store_explicit(&s->log_valid, 0, memory_order_relaxed);
  }
  wake_everybody(s);
}

static int qlock(struct shared *s, const pc__deadline *d) {
  int rc = pc__pmutex_lock(&s->lock, d);
  if (rc == PC__LOCK_OWNERDEAD) {
    repair(s);
    rc = pc__pmutex_consistent(&s->lock);
    if (rc != 0)
      pc__pmutex_unlock(&s->lock);
  }
  return rc;
}

static void qunlock(struct shared *s) { pc__pmutex_unlock(&s->lock); }

/* Waits, with the lock held on entry, until *seq moves on from its value
 * now, a slice passes or the deadline passes; returns 0 with the lock held
 * again (the caller re-checks its condition and the deadline), or the lock's
 * error (timeout included) without the lock. */
static int wait_change(struct shared *s, _Atomic uint32_t *seq,
                       const pc__deadline *d) {
  uint32_t seen = atomic_load(seq) | SLEEPERS;
  int64_t spin_end;
  pc__deadline slice;
  bool changed = false;
  qunlock(s);
  /* Spin first: on a busy queue the next item (or room) comes within
   * microseconds, much sooner than a sleep and a wake-up would take. */
  spin_end = pc__now_ns() + SPIN_NS;
  for (unsigned i = 1; !changed; i++) {
    changed =
        (atomic_load_explicit(seq, memory_order_relaxed) | SLEEPERS) != seen;
    if (!changed) {
      pc__cpu_relax();
      if (i % 64 == 0 && pc__now_ns() >= spin_end)
        break;
    }
  }
  if (!changed) {
    /* Set the sleepers bit unless the word moved on meanwhile, then sleep
     * while the word is unchanged (the kernel compares atomically). */
    uint32_t v = atomic_load(seq);
    while ((v | SLEEPERS) == seen && (v & SLEEPERS) == 0 &&
           !atomic_compare_exchange_weak(seq, &v, v | SLEEPERS)) {
    }
    if ((v | SLEEPERS) == seen) {
      slice.forever = false;
      slice.nonblock = false;
      slice.spin_ns = 0;
      slice.at_ns = pc__now_ns() + WAIT_SLICE_NS;
      if (!d->forever && d->at_ns < slice.at_ns)
        slice.at_ns = d->at_ns;
      (void)pc__futex_wait(seq, seen, &slice);
    }
  }
  return qlock(s, d);
}

/* ------------------------------------------------------------ ring */

static uint64_t rec_size(uint64_t len) {
  return REC_HDR + ((len + 7u) & ~(uint64_t)7u);
}

static uint64_t ring_add(const struct shared *s, uint64_t pos, uint64_t n) {
  pos += n;
  return pos >= s->cap ? pos - s->cap : pos;
}

static void ring_write(pc_queue *q, uint64_t pos, const void *src,
                       uint64_t len) {
  uint64_t first = q->s->cap - pos;
  if (first >= len) {
    memcpy(q->ring + pos, src, len);
  } else {
    memcpy(q->ring + pos, src, first);
    memcpy(q->ring, (const unsigned char *)src + first, len - first);
  }
}

static void ring_read(const pc_queue *q, uint64_t pos, void *dst,
                      uint64_t len) {
  uint64_t first = q->s->cap - pos;
  if (first >= len) {
    memcpy(dst, q->ring + pos, len);
  } else {
    memcpy(dst, q->ring + pos, first);
    memcpy((unsigned char *)dst + first, q->ring, len - first);
  }
}

/* Gives back the pages of a payload just taken out (lock held). */
static void ring_discard(pc_queue *q, uint64_t pos, uint64_t len) {
  uint64_t first = q->s->cap - pos;
  if (first >= len) {
    pc__shm_discard(q->ring + pos, len);
  } else {
    pc__shm_discard(q->ring + pos, first);
    pc__shm_discard(q->ring, len - first);
  }
}

/* ------------------------------------------------------------ put / get */

/* The deadline for taking the lock: the operation's, except that timeout 0
 * (which never waits for an item, room or tasks) does wait for the lock: it
 * is only ever held for one copy. */
static pc__deadline lock_deadline(const pc__deadline *d) {
  pc__deadline l = *d;
  if (l.nonblock) {
    l.nonblock = false;
    l.forever = true;
  }
  return l;
}

static int put_item(pc_queue *q, const void *buf, size_t len, int timeout_ms) {
  struct shared *s = q->s;
  pc__deadline d = pc__deadline_from_ms(timeout_ms);
  pc__deadline lockd = lock_deadline(&d);
  uint64_t rec;
  bool wake = false;
  int rc;
  if ((uint64_t)len > s->cap - REC_HDR) {
    rc = PC_ETOOBIG;
    goto out;
  }
  rec = rec_size(len);
  rc = qlock(s, &lockd);
  if (rc != 0)
    goto fail;
  for (;;) {
    struct qstate n = load_state(s);
    if (atomic_load_explicit(&s->closed, memory_order_relaxed)) {
      rc = PC_ECLOSED;
      break;
    }
    if (n.count < s->maxsize && s->cap - n.used >= rec) {
      uint64_t hdr = len;
      memcpy(q->ring + n.tail, &hdr, REC_HDR);
      ring_write(q, ring_add(s, n.tail, REC_HDR), buf, len);
      barrier(); /* the copy is complete before the commit point */
      hook(PC__QHOOK_PUT_COPIED);
      n.tail = ring_add(s, n.tail, rec);
      n.used += rec;
      n.count++;
      n.unfinished++;
      commit(s, &n);
      wake = bump(&s->items_seq);
      rc = 0;
      break;
    }
    if (pc__deadline_expired(&d)) {
      rc = PC_EFULL;
      break;
    }
    rc = wait_change(s, &s->space_seq, &d);
    if (rc != 0)
      goto fail;
  }
  qunlock(s);
  if (wake)
    pc__futex_wake(&s->items_seq, INT_MAX);
  goto out;
fail:
  if (rc == -ETIMEDOUT || rc == -EAGAIN)
    rc = PC_EFULL;
out:
  return rc;
}

static int get_item(pc_queue *q, void **buf, size_t *len, int timeout_ms) {
  struct shared *s = q->s;
  pc__deadline d = pc__deadline_from_ms(timeout_ms);
  pc__deadline lockd = lock_deadline(&d);
  bool wake_put = false;
  unsigned char *p = NULL;
  uint64_t n_len = 0;
  int rc = qlock(s, &lockd);
  if (rc != 0)
    goto fail;
  for (;;) {
    struct qstate n = load_state(s);
    if (n.count > 0) {
      uint64_t rec, pos;
      memcpy(&n_len, q->ring + n.head, REC_HDR);
      /* The ring is only written by this file, but it is shared memory:
       * never trust a length that does not fit what is there. */
      if (n.used < REC_HDR || n_len > n.used - REC_HDR ||
          rec_size(n_len) > n.used || n_len > SIZE_MAX - 1) {
        rc = PC_EPROTO;
        break;
      }
      p = malloc(n_len > 0 ? (size_t)n_len : 1);
      if (p == NULL) {
        rc = -ENOMEM;
        break;
      }
      ring_read(q, ring_add(s, n.head, REC_HDR), p, n_len);
      barrier(); /* the copy is complete before the commit point */
      hook(PC__QHOOK_GET_COPIED);
      rec = rec_size(n_len);
      pos = ring_add(s, n.head, REC_HDR);
      n.head = ring_add(s, n.head, rec);
      n.used -= rec;
      n.count--;
      if (n.count == 0) {
        /* Restart at the beginning of the ring: a queue that keeps
         * emptying reuses the same few (cached) pages. */
        n.head = 0;
        n.tail = 0;
      }
      commit(s, &n);
      /* Only after the commit: before it the item must stay intact. */
      if (n_len >= BIG_ITEM)
        ring_discard(q, pos, n_len);
      wake_put = bump(&s->space_seq);
      rc = 0;
      break;
    }
    if (atomic_load_explicit(&s->closed, memory_order_relaxed)) {
      rc = PC_ECLOSED;
      break;
    }
    if (pc__deadline_expired(&d)) {
      rc = PC_EEMPTY;
      break;
    }
    rc = wait_change(s, &s->items_seq, &d);
    if (rc != 0)
      goto fail;
  }
  qunlock(s);
  if (wake_put)
    pc__futex_wake(&s->space_seq, INT_MAX);
  if (rc == 0) {
    *buf = p;
    *len = (size_t)n_len;
  }
  goto out;
fail:
  if (rc == -ETIMEDOUT || rc == -EAGAIN)
    rc = PC_EEMPTY;
out:
  return rc;
}

/* ------------------------------------------------------------ public */

int pc_queue_new_ex(pc_queue **out, const pc_queue_options *opts) {
  pc_queue_options o = {0, 0, NULL, NULL};
  pc_queue *q = NULL;
  void *mem = NULL;
  size_t page = pc__page_size();
  size_t hdr = (sizeof(struct shared) + page - 1) & ~(page - 1);
  size_t cap = 0;
  int rc;
  if (opts != NULL)
    o = *opts;
  if (out == NULL) {
    rc = -EINVAL;
    goto fail;
  }
  if (o.serializer != NULL &&
      (o.serializer->encode == NULL || o.serializer->decode == NULL ||
       o.serializer->release == NULL)) {
    rc = -EINVAL;
    goto fail;
  }
  cap = o.capacity == 0 ? PC_QUEUE_DEFAULT_CAPACITY : o.capacity;
  if (cap > SIZE_MAX - hdr - page) {
    rc = -EINVAL;
    goto fail;
  }
  cap = (cap + page - 1) & ~(page - 1);
  q = calloc(1, sizeof *q);
  if (q == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  rc = pc__shm_map(hdr + cap, &mem);
  if (rc != 0)
    goto fail;
  q->s = mem;
  q->ring = (unsigned char *)mem + hdr;
  q->map_len = hdr + cap;
  q->ser = o.serializer;
  q->ctx = o.serializer_ctx;
  q->s->cap = cap;
  q->s->maxsize = o.maxsize == 0 ? UINT64_MAX : (uint64_t)o.maxsize;
  rc = pc__pmutex_init(&q->s->lock);
  if (rc != 0)
    goto fail;
  q->s->magic = QUEUE_MAGIC;
  *out = q;
  goto out;
fail:
  if (mem != NULL)
    pc__shm_unmap(mem, hdr + cap);
  free(q);
out:
  return rc;
}

int pc_queue_new(pc_queue **q, size_t maxsize) {
  pc_queue_options o = {maxsize, 0, NULL, NULL};
  return pc_queue_new_ex(q, &o);
}

void pc_queue_free(pc_queue *q) {
  if (q != NULL) {
    /* The mutex is not destroyed: other processes may still use it. The
     * kernel frees the memory when the last mapping goes. */
    pc__shm_unmap(q->s, q->map_len);
    free(q);
  }
}

int pc_queue_put_bytes(pc_queue *q, const void *buf, size_t len,
                       int timeout_ms) {
  int rc;
  if (q == NULL || (buf == NULL && len > 0))
    rc = -EINVAL;
  else
    rc = put_item(q, len > 0 ? buf : "", len, timeout_ms);
  return rc;
}

int pc_queue_get_bytes(pc_queue *q, void **buf, size_t *len, int timeout_ms) {
  int rc;
  if (q == NULL || buf == NULL || len == NULL)
    rc = -EINVAL;
  else
    rc = get_item(q, buf, len, timeout_ms);
  return rc;
}

/* The queue's serializer, or the default: pickle over pc_value. */
static void serializer_of(const pc_queue *q, const pc_serializer **s,
                          void **ctx) {
  if (q->ser != NULL) {
    *s = q->ser;
    *ctx = q->ctx;
  } else {
    *s = pc_pickle_serializer();
    *ctx = NULL;
  }
}

int pc_queue_put(pc_queue *q, const void *obj, int timeout_ms) {
  pc_buffer b = PC_BUFFER_INIT;
  const pc_serializer *ser = NULL;
  void *ctx = NULL;
  int rc;
  if (q == NULL) {
    rc = -EINVAL;
    goto out;
  }
  serializer_of(q, &ser, &ctx);
  /* Encode outside the lock: only the copy into the ring is serialised. */
  rc = ser->encode(ctx, obj, &b);
  if (rc == 0)
    rc = put_item(q, b.len > 0 ? (const void *)b.data : "", b.len, timeout_ms);
out:
  pc_buffer_release(&b);
  return rc;
}

int pc_queue_get(pc_queue *q, void **obj, int timeout_ms) {
  const pc_serializer *ser = NULL;
  void *ctx = NULL;
  void *buf = NULL;
  void *v = NULL;
  size_t len = 0;
  int rc;
  if (q == NULL || obj == NULL) {
    rc = -EINVAL;
    goto out;
  }
  serializer_of(q, &ser, &ctx);
  rc = get_item(q, &buf, &len, timeout_ms);
  if (rc != 0)
    goto out;
  rc = ser->decode(ctx, buf, len, &v);
  if (rc == 0)
    *obj = v;
out:
  free(buf);
  return rc;
}

/* Reads the state under the lock (no deadline: it is held for one copy). */
static int locked_state(pc_queue *q, struct qstate *st_out) {
  int rc;
  if (q == NULL) {
    rc = -EINVAL;
  } else {
    rc = qlock(q->s, NULL);
    if (rc == 0) {
      *st_out = load_state(q->s);
      qunlock(q->s);
    }
  }
  return rc;
}

ssize_t pc_queue_qsize(pc_queue *q) {
  struct qstate n;
  int rc = locked_state(q, &n);
  return rc != 0 ? (ssize_t)rc
                 : (n.count > SSIZE_MAX ? SSIZE_MAX : (ssize_t)n.count);
}

int pc_queue_empty(pc_queue *q) {
  struct qstate n;
  int rc = locked_state(q, &n);
  return rc != 0 ? rc : n.count == 0;
}

int pc_queue_full(pc_queue *q) {
  struct qstate n;
  int rc = locked_state(q, &n);
  return rc != 0 ? rc : n.count >= q->s->maxsize;
}

int pc_queue_close(pc_queue *q) {
  struct shared *s;
  int rc;
  if (q == NULL) {
    rc = -EINVAL;
    goto out;
  }
  s = q->s;
  rc = qlock(s, NULL);
  if (rc != 0)
    goto out;
  atomic_store_explicit(&s->closed, 1, memory_order_relaxed);
  wake_everybody(s);
  qunlock(s);
out:
  return rc;
}

int pc_queue_task_done(pc_queue *q) {
  struct shared *s;
  bool wake = false;
  uint64_t left;
  int rc;
  if (q == NULL) {
    rc = -EINVAL;
    goto out;
  }
  s = q->s;
  rc = qlock(s, NULL);
  if (rc != 0)
    goto out;
  left = ld(&s->unfinished);
  if (left == 0) {
    rc = PC_ETASKDONE;
  } else {
    /* One store: no redo log needed. */
    st(&s->unfinished, left - 1);
    if (left == 1)
      wake = bump(&s->done_seq);
  }
  qunlock(s);
  if (wake)
    pc__futex_wake(&s->done_seq, INT_MAX);
out:
  return rc;
}

int pc_queue_join(pc_queue *q, int timeout_ms) {
  struct shared *s;
  pc__deadline d = pc__deadline_from_ms(timeout_ms);
  pc__deadline lockd = lock_deadline(&d);
  int rc;
  if (q == NULL) {
    rc = -EINVAL;
    goto out;
  }
  s = q->s;
  rc = qlock(s, &lockd);
  if (rc != 0)
    goto out;
  for (;;) {
    if (ld(&s->unfinished) == 0) {
      rc = 0;
      break;
    }
    if (pc__deadline_expired(&d)) {
      rc = pc__deadline_code(&d);
      break;
    }
    rc = wait_change(s, &s->done_seq, &d);
    if (rc != 0)
      goto out;
  }
  qunlock(s);
out:
  return rc;
}
