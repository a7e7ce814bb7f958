/* SPDX-License-Identifier: MIT */
/*
 * PC_SHARED ends: one pipe end used by many processes (and threads).
 *
 * Each direction of the pipe has a record in a shared anonymous mapping made
 * by pc_pipe, so every process forked afterwards sees it: a robust
 * process-shared lock for its senders, one for its receivers, and the exact
 * progress of the frame each side is working on.
 *
 * Exactness is what makes a death recoverable. Every wait happens in poll(2),
 * never inside read/write; the read or write itself is non-blocking and
 * flagged "in flight" in the record, and its result is recorded before the
 * flag is cleared. So when a process dies holding a lock, its successor
 * (EOWNERDEAD) knows exactly how far the frame got:
 *  - a receiver died: the next receiver skips the rest of that frame (its
 *    message is lost, nothing else);
 *  - a sender died mid-frame: the next sender completes the frame with zero
 *    padding and marks it poisoned; whoever receives it gets PC_EPEERDIED
 *    instead of a corrupt message. If no sender comes, a receiver waiting for
 *    the rest notices the dead owner within SLICE_MS and ends the frame where
 *    the bytes stop;
 *  - a process died inside the read/write call itself (a window of one
 *    non-blocking system call): the stream position is unknown, so the
 *    direction is marked broken and every later call reports PC_EPEERDIED
 *    (PC_EPROTO when what broke it was a malformed header).
 *
 * Reads never go beyond the current frame (no read-ahead: the bytes after it
 * belong to whichever process takes the next message).
 */
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* How often a receiver waiting inside a frame checks that its sender lives. */
#define SLICE_MS 100
#define NPOISON 16

struct pc__sdir {
  pthread_mutex_t tx_mu;
  pthread_mutex_t rx_mu;
  /* Sender side, under tx_mu. */
  uint64_t tx_frames; /* frames completed (index of the frame in progress) */
  uint64_t tx_total;  /* wire bytes of the frame in progress; 0: none */
  uint64_t tx_done;   /* wire bytes of it written */
  uint32_t tx_inflight;
  /* Receiver side, under rx_mu. */
  uint64_t rx_frames; /* frames consumed (index of the frame in progress) */
  unsigned char rx_hdr[PC__HDR_LARGE];
  uint64_t rx_hdr_have; /* header bytes read */
  uint32_t rx_hdr_size; /* 4 or 12 once known, else 0 */
  uint64_t rx_len;      /* payload length once the header is complete */
  uint64_t rx_done;     /* payload bytes consumed */
  uint64_t rx_wire_end; /* a dead sender's frame ends here (wire bytes), or 0 */
  uint32_t rx_skip;     /* a dead receiver's frame: discard the rest */
  uint32_t rx_inflight;
  /* Either side. */
  _Atomic uint64_t poisoned[NPOISON]; /* frame index + 1; 0: free slot */
  atomic_int broken; /* 0, or the code every later call returns:
                      * PC_EPEERDIED (position lost with a dead process),
                      * PC_EPROTO (a malformed header) or PC_ETRUNCATED
                      * (end of stream inside a frame) */
};

void (*pc__shared_hook)(int point);

static void hook(int point) {
  void (*h)(int) = pc__shared_hook;
  if (h != NULL)
    h(point);
}

struct pc__shmap {
  struct pc__sdir *dirs; /* two records */
  size_t len;
  /* Ends of this pipe open in this process. Atomic: the two ends may be
   * closed by two threads at once. */
  atomic_int refs;
};

/* ================================================================ setup */

int pc__shared_attach(pc_conn *a, pc_conn *b, bool simplex) {
  int rc;
  void *mem = NULL;
  struct pc__shmap *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  m->len = 2 * sizeof(struct pc__sdir);
  rc = pc__shm_map(m->len, &mem);
  if (rc != 0)
    goto fail;
  m->dirs = mem;
  for (int i = 0; i < 2 && rc == 0; i++) {
    rc = pc__pmutex_init(&m->dirs[i].tx_mu);
    if (rc == 0)
      rc = pc__pmutex_init(&m->dirs[i].rx_mu);
  }
  if (rc != 0)
    goto fail;
  atomic_init(&m->refs, 2);
  if (simplex) {
    a->sh_rx = &m->dirs[0]; /* a reads what b writes */
    b->sh_tx = &m->dirs[0];
  } else {
    a->sh_tx = &m->dirs[0];
    b->sh_rx = &m->dirs[0];
    b->sh_tx = &m->dirs[1];
    a->sh_rx = &m->dirs[1];
  }
  a->sh_map = m;
  b->sh_map = m;
  return 0;
fail:
  if (mem != NULL)
    pc__shm_unmap(mem, m->len);
  free(m);
  return rc;
}

void pc__shared_release(pc_conn *c) {
  struct pc__shmap *m = c->sh_map;
  if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1) {
    /* The mutexes stay initialised: other processes still use them. */
    pc__shm_unmap(m->dirs, m->len);
    free(m);
  }
  c->sh_map = NULL;
}

/* ================================================================ helpers */

static bool is_deadline_code(int rc) {
  return rc == -EAGAIN || rc == -ETIMEDOUT;
}

/* Locks m; on EOWNERDEAD runs repair(dir, c) and marks the lock
 * consistent. */
static int lock_dir(pthread_mutex_t *m, const pc__deadline *d, pc_conn *c,
                    struct pc__sdir *s,
                    void (*repair)(pc_conn *, struct pc__sdir *)) {
  int rc = pc__pmutex_lock(m, d);
  if (rc == PC__LOCK_OWNERDEAD) {
    repair(c, s);
    rc = pc__pmutex_consistent(m);
    if (rc != 0)
      pc__pmutex_unlock(m);
  }
  return rc;
}

/* Waits for events on the descriptor until the deadline (callers pass a
 * slice when they must check on a dead peer): 1 ready, 0 deadline passed,
 * -ECANCELED when pc_close interrupts, -errno. */
static int wait_io(pc_conn *c, short events, const pc__deadline *d) {
  return pc__io_wait(atomic_load(&c->fd), pc__conn_wake(c, d), events, d);
}

static ssize_t nb_write(pc_conn *c, const struct iovec *iov, int cnt) {
  pc__deadline now = pc__deadline_from_ms(0);
  ssize_t n = pc__io_writev(atomic_load(&c->fd), c->kind, -1, iov, cnt, &now);
  return n;
}

static ssize_t nb_read(pc_conn *c, void *buf, size_t len) {
  pc__deadline now = pc__deadline_from_ms(0);
  return pc__io_read(atomic_load(&c->fd), c->kind, -1, buf, len, &now);
}

static void poison(struct pc__sdir *s, uint64_t frame) {
  for (int i = 0; i < NPOISON; i++) {
    uint64_t zero = 0;
    if (atomic_compare_exchange_strong(&s->poisoned[i], &zero, frame + 1))
      return;
  }
  atomic_store(&s->broken,
               PC_EPEERDIED); /* more dead senders than slots: give up */
}

static bool take_poison(struct pc__sdir *s, uint64_t frame) {
  for (int i = 0; i < NPOISON; i++) {
    uint64_t want = frame + 1;
    if (atomic_compare_exchange_strong(&s->poisoned[i], &want, 0))
      return true;
  }
  return false;
}

/* ================================================================ sending */

/* Writes zeros to complete a dead sender's frame. */
static int pad(pc_conn *c, struct pc__sdir *s) {
  static const unsigned char zeros[4096];
  int rc = 0;
  pc__deadline forever = pc__deadline_from_ms(-1);
  while (s->tx_done < s->tx_total && rc == 0) {
    uint64_t left = s->tx_total - s->tx_done;
    struct iovec v = {(void *)(uintptr_t)zeros,
                      left < sizeof zeros ? (size_t)left : sizeof zeros};
    int w = wait_io(c, POLLOUT, &forever);
    if (w < 0) {
      rc = w;
      break;
    }
    s->tx_inflight = 1;
    ssize_t n = nb_write(c, &v, 1);
    if (n > 0)
      s->tx_done += (uint64_t)n;
    s->tx_inflight = 0;
    if (n < 0 && !is_deadline_code((int)n))
      rc = (int)n;
  }
  return rc;
}

static void tx_repair(pc_conn *c, struct pc__sdir *s) {
  if (s->tx_inflight) {
    atomic_store(&s->broken, PC_EPEERDIED);
  } else if (s->tx_done > 0 && s->tx_done < s->tx_total) {
    poison(s, s->tx_frames);
    if (pad(c, s) != 0)
      atomic_store(&s->broken, PC_EPEERDIED);
    else
      s->tx_frames++;
  } else if (s->tx_total > 0 && s->tx_done == s->tx_total) {
    s->tx_frames++; /* died after the last byte, before the bookkeeping */
  }
  s->tx_total = s->tx_done = 0;
  s->tx_inflight = 0;
}

/* Sends one frame: header + iov. The deadline bounds the wait for the lock
 * and for room for the first byte; once a byte is out, the frame is
 * finished (nobody else may write until it is). */
int pc__shared_send(pc_conn *c, const struct iovec *iov, int iovcnt,
                    size_t total, const pc__deadline *d) {
  int rc;
  struct pc__sdir *s = c->sh_tx;
  unsigned char hdr[PC__HDR_LARGE];
  struct iovec small[9], *v = small;
  if (iovcnt >= 8) {
    v = malloc(((size_t)iovcnt + 1) * sizeof *v);
    if (v == NULL)
      return -ENOMEM;
  }
  size_t hl = pc__frame_header(hdr, total);
  v[0].iov_base = hdr;
  v[0].iov_len = hl;
  if (iovcnt > 0)
    memcpy(v + 1, iov, (size_t)iovcnt * sizeof *v);
  int cnt = iovcnt + 1, i = 0;

  rc = lock_dir(&s->tx_mu, d, c, s, tx_repair);
  if (rc != 0)
    goto out;
  if (atomic_load(&s->broken) != 0) {
    rc = atomic_load(&s->broken);
    goto unlock;
  }
  s->tx_total = hl + total;
  s->tx_done = 0;
  pc__deadline forever = pc__deadline_from_ms(-1);
  while (s->tx_done < s->tx_total) {
    int w = wait_io(c, POLLOUT, s->tx_done == 0 ? d : &forever);
    if (w < 0 || (w == 0 && s->tx_done == 0)) {
      rc = w < 0 ? w : pc__deadline_code(d);
      break;
    }
    while (i < cnt && v[i].iov_len == 0)
      i++;
    s->tx_inflight = 1;
    hook(PC__SHOOK_TX_INFLIGHT);
    ssize_t n = nb_write(c, v + i, cnt - i);
    if (n > 0)
      s->tx_done += (uint64_t)n;
    s->tx_inflight = 0;
    if (s->tx_done > 0 && s->tx_done < s->tx_total)
      hook(PC__SHOOK_TX_PARTIAL);
    if (n < 0 && !is_deadline_code((int)n)) {
      rc = (int)n;
      break;
    }
    for (size_t k = n > 0 ? (size_t)n : 0; k > 0;) {
      size_t step = k < v[i].iov_len ? k : v[i].iov_len;
      if (step > 0) /* an empty entry may have a NULL base */
        v[i].iov_base = (unsigned char *)v[i].iov_base + step;
      v[i].iov_len -= step;
      k -= step;
      if (v[i].iov_len == 0)
        i++;
    }
  }
  if (s->tx_done == s->tx_total) {
    s->tx_frames++;
  } else if (s->tx_done > 0) {
    /* The peer is gone mid-frame (EPIPE...): nobody can resync. */
    atomic_store(&s->broken, PC_EPEERDIED);
  }
  s->tx_total = s->tx_done = 0;
unlock:
  pc__pmutex_unlock(&s->tx_mu);
out:
  if (v != small)
    free(v);
  return rc;
}

/* ================================================================ receiving */

static void rx_reset(struct pc__sdir *s) {
  s->rx_hdr_have = s->rx_hdr_size = 0;
  s->rx_len = s->rx_done = 0;
  s->rx_wire_end = 0;
  s->rx_skip = 0;
}

static void rx_repair(pc_conn *c, struct pc__sdir *s) {
  (void)c;
  if (s->rx_inflight)
    atomic_store(&s->broken, PC_EPEERDIED);
  else if (s->rx_hdr_have > 0)
    s->rx_skip = 1; /* the dead receiver's message: discard its rest */
  s->rx_inflight = 0;
}

/* Wire bytes of the current frame consumed so far. */
static uint64_t rx_wire_done(const struct pc__sdir *s) {
  return s->rx_hdr_have + s->rx_done;
}

/* Called when a wait inside a frame found no bytes for a slice: is the
 * sender of this frame dead? Then end the frame where its bytes stop.
 * Returns 0 (keep waiting) or PC_EPEERDIED (the frame is over). */
static int check_dead_sender(struct pc__sdir *s) {
  int rc = 0;
  pc__deadline now = pc__deadline_from_ms(0);
  int l = pc__pmutex_lock(&s->tx_mu, &now);
  if (l == PC__LOCK_OWNERDEAD) {
    if (s->tx_inflight) {
      atomic_store(&s->broken, PC_EPEERDIED);
      rc = PC_EPEERDIED;
    } else if (s->tx_done < s->tx_total && s->tx_frames == s->rx_frames) {
      /* Our frame: it ends after tx_done wire bytes, all already sent. */
      s->rx_wire_end = s->tx_done;
      s->tx_frames++;
    } else if (s->tx_total > 0 && s->tx_done == s->tx_total) {
      s->tx_frames++;
    }
    s->tx_total = s->tx_done = 0;
    s->tx_inflight = 0;
    pc__pmutex_consistent(&s->tx_mu);
    pc__pmutex_unlock(&s->tx_mu);
  } else if (l == 0) {
    pc__pmutex_unlock(&s->tx_mu);
  }
  return rc;
}

/* Reads up to n bytes of the current frame into dst (NULL: discard),
 * recording progress through *counter. first: the deadline applies (nothing
 * of the frame was read yet); otherwise waits in slices, checking on the
 * sender. Returns bytes read (> 0), or an error / PC_EPEERDIED /
 * PC_ETRUNCATED / deadline code. */
static ssize_t rx_some(pc_conn *c, struct pc__sdir *s, void *dst, size_t n,
                       uint64_t *counter, const pc__deadline *d, bool first) {
  unsigned char scratch[4096];
  for (;;) {
    if (s->rx_wire_end != 0 && rx_wire_done(s) >= s->rx_wire_end)
      return PC_EPEERDIED;
    if (s->rx_wire_end != 0 && n > s->rx_wire_end - rx_wire_done(s))
      n = (size_t)(s->rx_wire_end - rx_wire_done(s));
    pc__deadline slice = pc__deadline_from_ms(SLICE_MS);
    int w = wait_io(c, POLLIN, first ? d : &slice);
    if (w < 0)
      return w;
    if (w == 0) {
      if (first)
        return pc__deadline_code(d);
      int k = atomic_load(&s->broken);
      if (k == 0)
        k = check_dead_sender(s);
      if (k != 0)
        return k;
      continue;
    }
    void *into = dst != NULL ? dst : scratch;
    size_t want = dst != NULL ? n : (n < sizeof scratch ? n : sizeof scratch);
    s->rx_inflight = 1;
    ssize_t got = nb_read(c, into, want);
    if (got > 0)
      *counter += (uint64_t)got;
    s->rx_inflight = 0;
    if (got > 0)
      return got;
    if (got == 0)
      return first && rx_wire_done(s) == 0 ? PC_EOF : PC_ETRUNCATED;
    if (!is_deadline_code((int)got))
      return got;
  }
}

/* Completes the header of the current frame. */
static int rx_header(pc_conn *c, struct pc__sdir *s, const pc__deadline *d) {
  int rc = 0;
  while (s->rx_hdr_size == 0 || s->rx_hdr_have < s->rx_hdr_size) {
    size_t need = s->rx_hdr_size != 0 ? s->rx_hdr_size : PC__HDR_SMALL;
    size_t have = (size_t)s->rx_hdr_have;
    ssize_t n = rx_some(c, s, s->rx_hdr + have, need - have, &s->rx_hdr_have, d,
                        have == 0);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    if (s->rx_hdr_size == 0 && s->rx_hdr_have >= PC__HDR_SMALL) {
      uint32_t h = pc__get_be32(s->rx_hdr);
      s->rx_hdr_size = h == UINT32_MAX ? PC__HDR_LARGE : PC__HDR_SMALL;
    }
  }
  if (rc == 0) {
    uint64_t len = 0;
    int h = pc__frame_parse(s->rx_hdr, s->rx_hdr_have, &len);
    if (h < 0) {
      atomic_store(&s->broken, PC_EPROTO); /* no boundary can be trusted */
      rc = PC_EPROTO;
    } else {
      s->rx_len = len;
    }
  }
  return rc;
}

/* Consumes the current frame's payload into dst+rx_done (NULL: discard)
 * until `upto` bytes of it are consumed. */
static int rx_payload(pc_conn *c, struct pc__sdir *s, unsigned char *dst,
                      uint64_t upto) {
  int rc = 0;
  pc__deadline none = pc__deadline_from_ms(-1);
  while (s->rx_done < upto) {
    uint64_t left = upto - s->rx_done;
    size_t n = left > SSIZE_MAX ? SSIZE_MAX : (size_t)left;
    ssize_t got = rx_some(c, s, dst != NULL ? dst + s->rx_done : NULL, n,
                          &s->rx_done, &none, false);
    if (got < 0) {
      rc = (int)got;
      break;
    }
    if (s->rx_done < s->rx_len)
      hook(PC__SHOOK_RX_PARTIAL);
  }
  return rc;
}

/* A frame is over (consumed, or cut by a dead sender): next one. */
static void rx_next(struct pc__sdir *s) {
  s->rx_frames++;
  rx_reset(s);
}

ssize_t pc__shared_recv(pc_conn *c, int mode, size_t limit, void *into,
                        void **out, const pc__deadline *d) {
  ssize_t rc;
  struct pc__sdir *s = c->sh_rx;
  unsigned char *buf = NULL;

  rc = lock_dir(&s->rx_mu, d, c, s, rx_repair);
  if (rc != 0)
    return rc;
  for (;;) {
    if (atomic_load(&s->broken) != 0) {
      rc = atomic_load(&s->broken);
      break;
    }
    bool skipping = s->rx_skip != 0;
    rc = rx_header(c, s, d);
    if (rc == 0 && skipping)
      rc = rx_payload(c, s, NULL, s->rx_len);
    if (rc == PC_EPEERDIED && !atomic_load(&s->broken)) {
      /* A dead sender's frame ended short: report it once, go on after. */
      rx_next(s);
      break;
    }
    if (rc != 0 || !skipping)
      break;
    /* The dead receiver's message is dropped; a poisoned one is too. */
    (void)take_poison(s, s->rx_frames);
    rx_next(s);
  }
  if (rc != 0)
    goto unlock;

  size_t len = (size_t)s->rx_len;
  if (mode == PC__SH_SIZE) {
    /* The frame stays for the next receive. */
    rc = s->rx_len > (uint64_t)SSIZE_MAX ? PC_ETOOBIG : (ssize_t)len;
    goto unlock;
  }
  if (s->rx_len > (uint64_t)limit) {
    /* Too big for this receiver: the frame stays in place for another. */
    rc = mode == PC__SH_INTO ? PC_ETOOSHORT : PC_ETOOBIG;
    goto unlock;
  }
  if (s->rx_len > (uint64_t)SSIZE_MAX) {
    rc = -ENOMEM; /* no process can hold it */
    goto unlock;
  }
  if (mode == PC__SH_INTO) {
    buf = into;
    rc = rx_payload(c, s, buf, len);
  } else {
    /* Memory follows data: grow as bytes arrive, up to the length. */
    size_t cap = 0;
    rc = 0;
    do {
      size_t next = cap == 0 ? (len < (64u << 20) ? len : (64u << 20))
                             : (cap > len / 2 ? len : cap * 2);
      unsigned char *p = realloc(buf, next > 0 ? next : 1);
      if (p == NULL) {
        rc = -ENOMEM;
        break;
      }
      buf = p;
      cap = next;
      rc = rx_payload(c, s, buf, cap);
    } while (rc == 0 && cap < len);
  }
  if (rc == PC_EPEERDIED && !atomic_load(&s->broken)) {
    rx_next(s);
  } else if (rc == 0) {
    bool poisoned = take_poison(s, s->rx_frames);
    rx_next(s);
    if (poisoned) {
      rc = PC_EPEERDIED;
    } else {
      rc = (ssize_t)len;
      if (mode == PC__SH_MALLOC) {
        *out = buf;
        buf = NULL;
      }
    }
  } else if (s->rx_done > 0) {
    /* Part of this message is gone with us: the next receiver skips the
     * rest rather than deliver a headless tail. */
    s->rx_skip = 1;
  }
unlock:
  /* End of stream inside a frame: no writer is left, so every later
   * receive, in any process, must say so too. */
  if (rc == PC_ETRUNCATED)
    atomic_store(&s->broken, PC_ETRUNCATED);
  pc__pmutex_unlock(&s->rx_mu);
  if (mode == PC__SH_MALLOC)
    free(buf);
  return rc;
}

int pc__shared_poll(pc_conn *c, int timeout_ms) {
  /* Another process may take the message first, so readability of the
   * descriptor is all a shared end can promise (as in Python). */
  pc__deadline d = pc__deadline_from_ms(timeout_ms);
  int rc;
  if (atomic_load(&c->sh_rx->broken))
    return 1;
  rc = wait_io(c, POLLIN, &d);
  return rc < 0 ? rc : rc > 0;
}
