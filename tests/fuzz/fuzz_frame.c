/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame: the frame decoder fed by a hostile peer.
 *
 * A pc_pipe pair is made; the peer end is used only as a raw descriptor
 * (pc_fileno) into which the input's stream is written as it is, by the same
 * thread between the receiver's calls (deterministic) or by a writer thread
 * in chunks while the receiver blocks. The receiving end runs pc_recv_bytes,
 * pc_recv_bytes_into, pc_next_size, pc_poll, pc_wait_items, pc_recv and
 * pc_set_timeout in an order taken from the input. A reference parser of the
 * wire format predicts the result of every call from the bytes delivered so
 * far: every message must come out intact and in order, every error must be
 * the documented one, and nothing may crash, leak or hang.
 *
 * Input layout:
 *   byte 0  bits 0-1: the pair (0 duplex, 1 simplex, 2 PC_SHARED duplex,
 *           3 PC_SHARED simplex); bit 2: writer thread; bit 3: the peer
 *           closes at the end (same-thread mode); bits 4-7: chunk seed.
 *   byte 1  number of op bytes, taken from the end of the input.
 *   byte 2  zero bytes appended to the stream, in units of 512 (large
 *           payloads from small inputs, up to 127.5 KiB: past the 64 KiB of
 *           a pipe and the 32 KiB the read-ahead takes).
 *   then    the stream, then the op bytes (one byte per call, see run_op).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* What the reference parser finds at a stream position. */
enum kind {
  K_MSG,       /* a whole message */
  K_END,       /* the end of the stream, at a boundary */
  K_TRUNC_HDR, /* the stream ends inside a header */
  K_PROTO,     /* a negative header other than -1 */
  K_TRUNC_PAY  /* a whole header, but the stream ends inside the payload */
};

typedef struct item {
  enum kind kind;
  size_t off;   /* stream offset of the header */
  size_t hl;    /* header length: 4 or 12 (K_MSG, K_TRUNC_PAY) */
  uint64_t len; /* payload length (K_MSG, K_TRUNC_PAY) */
} item;

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* The wire format, straight from Python's multiprocessing.connection. */
static item parse_at(const unsigned char *s, size_t n, size_t off) {
  item it = {K_END, off, 0, 0};
  size_t avail = n - off;
  if (avail == 0)
    return it;
  it.kind = K_TRUNC_HDR;
  if (avail < 4)
    return it;
  uint64_t h = be(s + off, 4);
  if (h == 0xffffffffu) {
    if (avail < 12)
      return it;
    it.hl = 12;
    it.len = be(s + off + 4, 8);
  } else if (h > 0x7fffffffu) {
    it.kind = K_PROTO;
    return it;
  } else {
    it.hl = 4;
    it.len = h;
  }
  it.kind = avail - it.hl >= it.len ? K_MSG : K_TRUNC_PAY;
  return it;
}

/* Pseudo-results of the model, outside every real return code. */
#define X_WAIT (LONG_MIN)
#define X_SUCCESS (LONG_MIN + 1)

enum op { R_BYTES, R_INTO, R_SIZE, R_POLL, R_OBJ };
static const char *const op_names[] = {"pc_recv_bytes", "pc_recv_bytes_into",
                                       "pc_next_size", "pc_poll", "pc_recv"};

#define TIMED_BUDGET 4 /* waits with a timeout > 0 per input: 1 ms each */
/* Largest buffer for pc_recv_bytes_into: the biggest message an input of
 * -max_len=4096 can make (127.5 KiB of padding) fits; beyond it a small
 * buffer gets the same PC_ETOOSHORT without touching a megabyte per call. */
#define MAX_CAP 140000u

typedef struct fz {
  bool shared, simplex, thread;
  pc_conn *rx, *tx;
  int rx_fd, tx_fd;
  bool tx_sock;
  unsigned char *s; /* the stream */
  size_t n;         /* its length; cut to `fed` when the peer closes early */
  size_t fed;       /* bytes written into the peer's descriptor */
  bool closed;      /* the peer is closed */
  size_t pos;       /* stream offset of the next message */
  int timeout;      /* the receiver's timeout */
  bool unreadable;  /* private duplex end after PC_ETOOBIG */
  bool gone;        /* private simplex end closed by PC_ETOOBIG */
  bool broken;      /* shared end after PC_EPROTO (sticky) */
  bool truncated;   /* PC_ETRUNCATED was reported: it is sticky */
  size_t consumed;  /* shared: stream bytes taken from the descriptor */
  bool ready;       /* thread mode: a poll said a receive will not wait */
  int timed;        /* timed waits left */
  pthread_t writer;
  uint32_t seed;
} fz;

static item cur(const fz *f) { return parse_at(f->s, f->n, f->pos); }

static long wait_code(const fz *f) {
  return f->timeout == 0 ? -EAGAIN : -ETIMEDOUT;
}

/* The model: the result of `op` right now, from the bytes delivered and the
 * end's state. In thread mode it is computed for the whole stream (the
 * writer delivers everything and closes); the caller also accepts waiting. */
static long expect(const fz *f, enum op op, size_t limit) {
  if (f->gone)
    return PC_ECLOSED;
  if (f->unreadable)
    return PC_EWRITEONLY;
  if (f->broken)
    return op == R_POLL ? 1 : PC_EPROTO;
  if (f->truncated)
    return op == R_POLL ? 1 : PC_ETRUNCATED;
  item it = cur(f);
  bool poll = op == R_POLL;
  if (poll && f->shared) {
    /* A shared end reports the descriptor's readability. */
    if (f->thread)
      return 1;
    return f->closed || f->fed > f->consumed ? 1 : 0;
  }
  switch (it.kind) {
  case K_END:
    return f->closed ? (poll ? 1 : PC_EOF) : X_WAIT;
  case K_TRUNC_HDR:
    return f->closed ? (poll ? 1 : PC_ETRUNCATED) : X_WAIT;
  case K_PROTO:
    return f->fed >= it.off + 4 ? (poll ? 1 : PC_EPROTO) : X_WAIT;
  case K_MSG:
  case K_TRUNC_PAY:
    break;
  }
  if (f->fed < it.off + it.hl)
    return X_WAIT; /* not closed: when closed, fed is the whole stream */
  bool all = it.kind == K_MSG && f->fed - it.off - it.hl >= it.len;
  bool huge = it.len > (uint64_t)SSIZE_MAX;
  switch (op) {
  case R_SIZE:
    return huge ? PC_ETOOBIG : (long)it.len;
  case R_POLL:
    if (huge)
      return -ENOMEM;
    return all || f->closed ? 1 : X_WAIT;
  case R_INTO:
    if (it.len > limit)
      return PC_ETOOSHORT;
    break;
  case R_BYTES:
  case R_OBJ:
    if (it.len > limit)
      return PC_ETOOBIG;
    if (huge)
      return -ENOMEM;
    break;
  }
  if (all)
    return X_SUCCESS;
  return f->closed ? PC_ETRUNCATED : X_WAIT;
}

/* ---------------------------------------------------------------- the peer */

static void feed(fz *f, size_t want) {
  if (f->thread || f->closed || f->gone || f->fed >= f->n)
    return;
  size_t k = f->n - f->fed < want ? f->n - f->fed : want;
  ssize_t w = fz_write_raw(f->tx_fd, f->tx_sock, f->s + f->fed, k, true);
  FZ_CHECK(w > 0 || w == -EAGAIN, "raw write of %zu bytes: %s", k, fz_name(w));
  if (w > 0)
    f->fed += (size_t)w;
}

/* Writes until the descriptor is full or the stream is all out. */
static void feed_all(fz *f) {
  size_t before;
  do {
    before = f->fed;
    feed(f, SIZE_MAX);
  } while (f->fed != before);
}

static void close_peer(fz *f) {
  if (f->thread || f->closed)
    return;
  int rc = pc_close(f->tx);
  FZ_CHECK(rc == 0, "pc_close(peer) returned %s", fz_name(rc));
  FZ_CHECK(fz_fd_is_closed(f->tx_fd), "peer descriptor left open");
  f->tx = NULL;
  f->closed = true;
  f->n = f->fed; /* the stream ends where the peer stopped */
}

/* A shared end finishes a frame once it has started reading it (without a
 * deadline: another process may be waiting for the boundary). In one thread
 * that would wait forever for bytes nobody writes, so before a receive
 * either the whole frame is delivered or the peer is closed. */
static void shared_prepare(fz *f) {
  if (!f->shared || f->thread || f->closed || f->broken)
    return;
  item it = cur(f);
  size_t end = SIZE_MAX;
  if (it.kind == K_MSG)
    end = it.off + it.hl + (size_t)it.len;
  else if (it.kind == K_PROTO)
    end = it.off + 4;
  else if (it.kind == K_END)
    end = it.off;
  if (f->fed > it.off && f->fed < end) {
    feed_all(f);
    if (f->fed < end)
      close_peer(f);
  }
}

static void *writer_main(void *arg) {
  fz *f = arg;
  size_t off = 0;
  uint32_t r = f->seed;
  static const size_t chunks[] = {1, 2, 3, 7, 64, 1000, 4096, 65536};
  while (off < f->n) {
    size_t k = chunks[fz_rand(&r) % 8];
    if (off >= 256 && k < 512)
      k = 512; /* tiny writes for the headers up front, then speed */
    if (k > f->n - off)
      k = f->n - off;
    ssize_t w = fz_write_raw(f->tx_fd, f->tx_sock, f->s + off, k, false);
    if (w <= 0)
      break; /* the receiver is gone */
    off += (size_t)w;
  }
  pc_close(f->tx);
  return NULL;
}

/* ---------------------------------------------------------------- receiving */

static void set_timeout(fz *f, int t) {
  int rc = pc_set_timeout(f->rx, t);
  long want = f->gone ? PC_ECLOSED : 0;
  FZ_CHECK(rc == want, "pc_set_timeout(%d) returned %s, expected %s", t,
           fz_name(rc), fz_name(want));
  if (rc == 0)
    f->timeout = t;
}

/* Before a call: no unbounded wait the model says would never end, and a
 * bounded number of real waits. */
static void bound_wait(fz *f, enum op op, size_t limit) {
  if (f->gone)
    return;
  if (f->timeout > 0 && f->timed <= 0)
    set_timeout(f, 0);
  if (!f->thread && f->timeout < 0 && expect(f, op, limit) == X_WAIT)
    set_timeout(f, 0);
}

static void consumed_msg(fz *f, const item *it) {
  f->pos = it->off + it->hl + (size_t)it->len;
  f->consumed = f->pos;
  f->ready = false;
}

/* Checks the result of a receive against the model and updates the state. */
static void check(fz *f, enum op op, size_t limit, long got, const void *data,
                  size_t len) {
  long want = expect(f, op, limit);
  item it = cur(f);
  bool waited = got == wait_code(f) || (op == R_POLL && got == 0);
  if (f->timeout > 0)
    f->timed--;
  if (f->thread && f->timeout >= 0 && waited && want != got) {
    FZ_CHECK(!f->ready || op == R_POLL,
             "%s waited (%s) after a poll reported a message ready",
             op_names[op], fz_name(got));
    return;
  }
  if (want == X_WAIT)
    want = op == R_POLL ? 0 : wait_code(f);
  if (want == X_SUCCESS) {
    if (op == R_OBJ) {
      /* pc_recv decodes what pc_pickle_loads decodes. */
      pc_value *v = NULL;
      long dec =
          pc_pickle_loads(f->s + it.off + it.hl, (size_t)it.len, &v, NULL);
      pc_value_free(v);
      FZ_CHECK(got == dec, "pc_recv returned %s, pc_pickle_loads %s",
               fz_name(got), fz_name(dec));
    } else {
      FZ_CHECK(got >= 0,
               "%s failed with %s, expected message of %llu bytes "
               "at offset %zu",
               op_names[op], fz_name(got), (unsigned long long)it.len, it.off);
      FZ_CHECK(len == it.len &&
                   (len == 0 || memcmp(data, f->s + it.off + it.hl, len) == 0),
               "%s: message at offset %zu: got %zu bytes, "
               "expected %llu, or different bytes",
               op_names[op], it.off, len, (unsigned long long)it.len);
    }
    consumed_msg(f, &it);
    return;
  }
#ifdef FZ_TOLERATE_TRUNC_NOT_STICKY
  /* Known finding: after PC_ETRUNCATED an end may still report the cut
   * message's length (pc_next_size, PC_ETOOBIG, PC_ETOOSHORT). Fuzzing runs
   * may step past it with this -D; by default PC_ETRUNCATED is sticky, as
   * conn.h says. */
  if (f->truncated && got != want) {
    f->truncated = false;
    want = expect(f, op, limit);
    f->truncated = true;
  }
#endif
  /* The end may already have met the cut of a truncated payload (a poll or
   * an earlier read pulled its bytes in before the peer's close was known
   * here): then PC_ETRUNCATED outranks what the header alone would give
   * (PC_ETOOBIG, PC_ETOOSHORT, a size), and stays. */
  if (got == PC_ETRUNCATED && got != want && f->closed &&
      cur(f).kind == K_TRUNC_PAY)
    want = PC_ETRUNCATED;
  FZ_CHECK(got == want,
           "%s (limit %zu, timeout %d) at stream offset %zu "
           "(fed %zu of %zu, peer %s): got %ld (%s), expected %ld (%s)",
           op_names[op], limit, f->timeout, f->pos, f->fed, f->n,
           f->closed ? "closed" : "open", got, fz_name(got), want,
           fz_name(want));
  /* State changes the documented errors make. */
  if (got == PC_ETRUNCATED)
    f->truncated = true;
  if (got == PC_ETOOBIG && op != R_SIZE && !f->shared) {
    if (f->simplex)
      f->gone = true; /* a read-only end closes, as in Python */
    else
      f->unreadable = true;
  }
  if (f->shared) {
    if (got == PC_EPROTO) {
      f->broken = true;
      f->consumed = it.off + 4;
    } else if (got == PC_ETOOBIG || got == PC_ETOOSHORT ||
               (op == R_SIZE && got >= 0)) {
      f->consumed = it.off + it.hl; /* the header is read, the frame stays */
    } else if (got == PC_ETRUNCATED) {
      f->consumed = f->fed;
    }
  }
  if (op == R_POLL && got == 1) {
    f->ready = true;
    /* A private end's poll reads the message in; if the peer closed inside
     * its payload, the end now knows, and every receive form reports
     * PC_ETRUNCATED from here on, as for a receive that found it. */
    item now = cur(f);
    if (!f->shared && !f->thread && f->closed && now.kind == K_TRUNC_PAY &&
        f->fed >= now.off + now.hl && now.len <= (uint64_t)SSIZE_MAX)
      f->truncated = true;
  }
}

/* The limit for a receive: none, the exact length, one less, or fixed. */
static size_t pick_limit(const fz *f, unsigned arg, bool into) {
  item it = cur(f);
  uint64_t l = it.kind == K_MSG || it.kind == K_TRUNC_PAY ? it.len : 0;
  uint64_t v;
  switch (arg & 7) {
  case 0:
  case 1:
    v = into ? l : PC_NOLIMIT;
    break;
  case 2:
    v = l;
    break;
  case 3:
    v = l > 0 ? l - 1 : 0;
    break;
  case 4:
    v = 0;
    break;
  case 5:
    v = 4;
    break;
  case 6:
    v = l + 1;
    break;
  default:
    v = 70000;
    break;
  }
  if (into && v > MAX_CAP)
    v = 4096;
  return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

static void do_recv(fz *f, enum op op, size_t limit) {
  shared_prepare(f);
  bound_wait(f, op, limit);
  if (op == R_BYTES) {
    void *buf = NULL;
    size_t len = 0;
    int rc = pc_recv_bytes(f->rx, &buf, &len, limit);
    FZ_CHECK(rc != 0 || buf != NULL, "pc_recv_bytes: NULL buffer");
    FZ_CHECK(rc == 0 || (buf == NULL && len == 0),
             "pc_recv_bytes wrote its outputs on failure");
    check(f, op, limit, rc, buf, len);
    free(buf);
  } else if (op == R_INTO) {
    /* Exactly cap bytes, so a write past them is caught. */
    unsigned char *buf = limit > 0 ? malloc(limit) : NULL;
    FZ_CHECK(limit == 0 || buf != NULL, "out of memory");
    if (limit > 0)
      memset(buf, 0xee, limit);
    ssize_t rc = pc_recv_bytes_into(f->rx, buf, limit);
    /* The buffer is untouched by every failure but one: a message read
     * straight into it (timeout -1, over 32 KiB) that the stream cuts short
     * leaves its head there (PC_ETRUNCATED, or the -errno of the read). */
    if (rc < 0 && rc != PC_ETRUNCATED &&
        (rc < -4095 || rc == -EAGAIN || rc == -ETIMEDOUT)) {
      for (size_t i = 0; i < limit; i++)
        FZ_CHECK(buf[i] == 0xee, "pc_recv_bytes_into (%s) wrote the buffer",
                 fz_name(rc));
    }
    check(f, op, limit, rc, buf, rc > 0 ? (size_t)rc : 0);
    free(buf);
  } else if (op == R_SIZE) {
    ssize_t rc = pc_next_size(f->rx);
    check(f, op, 0, rc, NULL, 0);
  } else {
    pc_value *v = NULL;
    int rc = pc_recv(f->rx, (void **)&v);
    FZ_CHECK(rc != 0 || v != NULL, "pc_recv: no value");
    pc_value_free(v);
    check(f, op, PC_NOLIMIT, rc, NULL, 0);
  }
}

static void do_poll(fz *f, unsigned arg) {
  static const int timeouts[] = {0, 0, 1, -1};
  int t = timeouts[arg & 3];
  int saved = f->timeout;
  if (t > 0 && f->timed <= 0)
    t = 0;
  /* The model's answer does not depend on the call's own timeout, except
   * that "nothing yet" becomes 0: never wait forever for that. */
  f->timeout = t;
  if (t < 0 && !f->thread) {
    long want = expect(f, R_POLL, 0);
    if (want == X_WAIT || want == 0)
      f->timeout = t = 0;
  }
  int rc;
  if (arg & 4) {
    pc_wait_item w = {f->rx, -1, false};
    rc = pc_wait_items(&w, 1, t);
    if (f->gone || f->unreadable) {
      FZ_CHECK(rc == -EINVAL,
               "pc_wait_items on an end that cannot receive "
               "returned %s",
               fz_name(rc));
      f->timeout = saved;
      return;
    }
    FZ_CHECK(rc < 0 || w.ready == (rc == 1),
             "pc_wait_items returned %d with ready %d", rc, (int)w.ready);
  } else {
    rc = pc_poll(f->rx, t);
  }
  check(f, R_POLL, 0, rc, NULL, 0);
  f->timeout = saved;
}

static void run_op(fz *f, uint8_t op) {
  static const size_t chunks[] = {1,  2,  3,  4,   5,    7,    8,     11,
                                  12, 13, 64, 100, 1000, 4096, 65536, SIZE_MAX};
  unsigned arg = op >> 3;
  switch (op & 7) {
  case 0:
    do_recv(f, R_BYTES, pick_limit(f, arg, false));
    break;
  case 1:
    do_recv(f, R_INTO, pick_limit(f, arg, true));
    break;
  case 2:
    do_recv(f, R_SIZE, 0);
    break;
  case 3:
    do_poll(f, arg);
    break;
  case 4: {
    static const int timeouts[] = {-1, 0, 0, 1};
    int t = timeouts[arg & 3];
    if (!f->gone)
      set_timeout(f, t > 0 && f->timed <= 0 ? 0 : t);
    break;
  }
  case 5:
    if (f->thread)
      do_recv(f, R_BYTES, PC_NOLIMIT);
    else
      feed(f, chunks[arg & 15]);
    break;
  case 6:
    if (f->thread)
      do_poll(f, 0);
    else if (arg < 2)
      close_peer(f);
    else
      feed(f, chunks[arg & 15]);
    break;
  default:
    do_recv(f, R_OBJ, PC_NOLIMIT);
    break;
  }
}

/* Receives until the stream ends, feeding the rest first (same-thread
 * mode: receiving makes room in the descriptor). */
static void finish(fz *f, bool close_at_end) {
  if (!f->thread) {
    long rounds = 0;
    while (!f->closed && !f->gone && !f->unreadable && !f->broken &&
           f->fed < f->n) {
      size_t before = f->fed, pos = f->pos;
      feed_all(f);
      if (f->fed == before) {
        set_timeout(f, 0);
        do_recv(f, R_BYTES, PC_NOLIMIT);
        if (f->pos == pos && f->fed == before && !f->closed &&
            (f->gone || f->unreadable || f->broken ||
             expect(f, R_BYTES, PC_NOLIMIT) != X_WAIT))
          break; /* the receiver takes nothing more: stop delivering */
      }
      FZ_CHECK(++rounds < 1000000, "delivery makes no progress");
    }
    if (close_at_end)
      close_peer(f);
  }
  if (f->gone)
    return;
  set_timeout(f, f->thread || f->closed ? -1 : 0);
  for (;;) {
    size_t pos = f->pos;
    do_recv(f, R_BYTES, PC_NOLIMIT);
    if (f->pos == pos)
      break; /* an error: the model checked it */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz f;
  pc_conn *a = NULL, *b = NULL;
  if (size < 3)
    return 0;
  fz_trap_sigpipe();
  int fds = fz_count_fds();
  memset(&f, 0, sizeof f);
  static const int kinds[] = {0, PC_SIMPLEX, PC_SHARED, PC_SHARED | PC_SIMPLEX};
  int flags = kinds[data[0] & 3];
  f.shared = (flags & PC_SHARED) != 0;
  f.simplex = (flags & PC_SIMPLEX) != 0;
  f.thread = (data[0] & 4) != 0;
  bool close_at_end = (data[0] & 8) != 0;
  f.seed = (uint32_t)data[0] * 2654435761u + (uint32_t)size;
  size_t nops = data[1] < size - 3 ? data[1] : size - 3;
  size_t pad = (size_t)data[2] * 512;
  const uint8_t *ops = data + size - nops;
  size_t raw = size - 3 - nops;
  f.n = raw + pad;
  f.s = calloc(f.n + 1, 1);
  FZ_CHECK(f.s != NULL, "out of memory");
  memcpy(f.s, data + 3, raw);
  f.timeout = -1;
  f.timed = TIMED_BUDGET;

  int rc = pc_pipe(&a, &b, flags);
  FZ_CHECK(rc == 0, "pc_pipe: %s", fz_name(rc));
  /* The first end receives; the second is the hostile peer. */
  f.rx = a;
  f.tx = b;
  f.rx_fd = pc_fileno(a);
  f.tx_fd = pc_fileno(b);
  f.tx_sock = !f.simplex;
  if (f.thread) {
    f.fed = f.n;
    f.closed = true; /* as the model sees it: the writer closes at the end */
    FZ_CHECK(pthread_create(&f.writer, NULL, writer_main, &f) == 0,
             "pthread_create");
  } else if (!f.tx_sock) {
    /* Same-thread writes must never block; the peer end is ours alone. */
    int fl = fcntl(f.tx_fd, F_GETFL);
    FZ_CHECK(fl >= 0 && fcntl(f.tx_fd, F_SETFL, fl | O_NONBLOCK) == 0,
             "O_NONBLOCK");
  }

  for (size_t i = 0; i < nops; i++)
    run_op(&f, ops[i]);
  finish(&f, close_at_end);

  rc = pc_close(f.rx);
  FZ_CHECK(rc == 0, "pc_close(receiver): %s", fz_name(rc));
  if (f.thread)
    pthread_join(f.writer, NULL);
  else if (!f.closed)
    pc_close(f.tx);
  FZ_CHECK(fz_fd_is_closed(f.rx_fd) && fz_fd_is_closed(f.tx_fd),
           "a descriptor was left open");
  int left = fz_count_fds();
  FZ_CHECK(left == fds, "%d descriptors open before, %d after", fds, left);
  free(f.s);
  return 0;
}
