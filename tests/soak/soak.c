/* SPDX-License-Identifier: MIT */
/*
 * soak: mixed traffic with random peer deaths, every message checked.
 *
 *   soak [--seconds N] [--seed S] [--quiet]
 *
 * Runs four lanes at once for N seconds (default 60), each in its own
 * process group, and prints the totals:
 *  - duplex:  a socketpair; this lane sends, an echo child returns every
 *             message, the lane checks each echo;
 *  - simplex: a pipe; a child produces and the lane consumes, or the lane
 *             produces and a child consumes (alternating by epoch);
 *  - shared:  one PC_SHARED pipe, 2 producer and 2 consumer processes;
 *  - queue:   one pc_queue, 2 producer and 2 consumer processes.
 * Message sizes are random from 0 B to 1 MiB (the shared and queue lanes
 * need 24 bytes for the header that names the producer); some messages go
 * through the pickle serializer (pc_send / pc_queue_put of a bytes value).
 * Every message is regenerated from (stream, sequence number) on the
 * receiving side and compared byte for byte.
 *
 * Every few hundred milliseconds each lane SIGKILLs one of its children
 * (an echo child, a producer or a consumer, at whatever point it is) and
 * starts a new one. What a kill may cost follows the library's documented
 * guarantees, and anything beyond it is a failure:
 *  - a message a killed sender had finished sending is never lost (pipe,
 *    queue: it is delivered; socketpair: the echo child's death takes its
 *    socket buffers with it, so the messages in flight there are lost);
 *  - a killed consumer of a shared end or a queue loses at most the one
 *    message it was handling;
 *  - a sender killed mid-frame on a shared end costs nothing but a
 *    PC_EPEERDIED for one receiver; a process killed inside the read or
 *    write system call itself breaks that direction (every later call says
 *    PC_EPEERDIED): the lane then starts over on a new pipe, and what was
 *    in the old one is counted as lost to a broken stream;
 *  - no message is ever corrupted, duplicated or invented, and no call
 *    fails except right after a kill with the codes a dead peer explains.
 * Exit status: 0 when nothing above was violated, 1 otherwise, 2 for bad
 * arguments.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pipeconn.h"

/* ------------------------------------------------------------ parameters */

#define MAX_MSG ((size_t)1 << 20)   /* largest payload */
#define HDR 24                      /* header of messages in multi lanes */
#define MAGIC 0x50435348u           /* "PCSH" */
#define MAX_SLOTS 2048              /* producer incarnations per multi lane */
#define MAX_SEQ ((uint64_t)1 << 18) /* messages per producer incarnation */
#define NPROD 2
#define NCONS 2
#define GUARD_MS 30000 /* a single call taking longer than this is a hang */

/* ------------------------------------------------------------ statistics */

/* The codes a call may end with; the last bucket takes any other. */
static const int known_codes[] = {
    PC_EOF,     PC_ETRUNCATED, PC_EPEERDIED, -EPIPE,     -ECONNRESET,
    -ETIMEDOUT, -EAGAIN,       PC_ECLOSED,   PC_EPROTO,  PC_EEMPTY,
    PC_EFULL,   -ENOMEM,       PC_ETOOBIG,   PC_EUNSAFE, 0};
#define NCODES ((int)(sizeof known_codes / sizeof known_codes[0]))

typedef struct lane_stats {
  _Atomic uint64_t messages, bytes; /* received and verified */
  _Atomic uint64_t sent;            /* sends that returned success */
  _Atomic uint64_t kills, producer_kills, consumer_kills, restarts;
  _Atomic uint64_t lost_allowed; /* within the documented guarantee */
  _Atomic uint64_t lost_broken;  /* in a stream broken by a death */
  _Atomic uint64_t broken_streams, peerdied;
  _Atomic uint64_t corrupt, duplicate, missing, phantom;
  _Atomic uint64_t child_failures;     /* children that failed on their own */
  _Atomic uint64_t after_kill[NCODES]; /* codes explained by a kill */
  _Atomic uint64_t unexpected[NCODES];
  _Atomic int other_code;
  _Atomic int finished;
} lane_stats;

/* Producer incarnations of a multi lane and what their consumers saw. */
typedef struct slot {
  _Atomic uint64_t attempted; /* sequence numbers handed to send/put */
  _Atomic uint64_t completed; /* sends/puts that returned success */
} slot;

typedef struct multi_state {
  _Atomic uint32_t stop;   /* producers: finish the current message, exit */
  _Atomic uint32_t broken; /* the stream is broken: start over */
  _Atomic uint32_t nslots;
  slot slots[MAX_SLOTS];
  _Atomic uint64_t bits[MAX_SLOTS][MAX_SEQ / 64]; /* received (slot, seq) */
} multi_state;

/* What a simplex child reports while it runs (it may be killed). */
typedef struct simplex_state {
  _Atomic uint32_t stop;
  _Atomic uint64_t count; /* producer: completed sends; consumer: verified */
} simplex_state;

static const char *lane_names[] = {"duplex", "simplex", "shared", "queue"};
#define NLANES 4

typedef struct lane {
  int id;
  uint64_t seed;
  int64_t deadline_us;
  lane_stats *st;
  void *state; /* simplex_state or multi_state (shared memory) */
} lane;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us) {
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int code_index(lane_stats *st, int code) {
  for (int i = 0; i < NCODES - 1; i++)
    if (known_codes[i] == code)
      return i;
  atomic_store(&st->other_code, code);
  return NCODES - 1;
}

/* A call ended with `code`: explained by a kill, or not. */
static void record(lane_stats *st, int code, bool after_kill) {
  int i = code_index(st, code);
  if (after_kill)
    atomic_fetch_add(&st->after_kill[i], 1);
  else
    atomic_fetch_add(&st->unexpected[i], 1);
}

/* The codes a peer's death explains on the surviving end: end of stream at
 * a boundary or inside a message, a peer gone (EPIPE on send, ECONNRESET
 * on a socket whose peer died with unread data). */
static bool kill_explains(int code) {
  return code == PC_EOF || code == PC_ETRUNCATED || code == -EPIPE ||
         code == -ECONNRESET;
}

static void *shared_map(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* ------------------------------------------------------------ messages */

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

/* Size of message `seq` of stream `key`: mostly small, some up to 64 KiB,
 * one in ten up to 1 MiB. */
static size_t msg_size(uint64_t key, uint64_t seq, size_t min) {
  uint64_t r = mix64(key * 0x2545f4914f6cdd1du ^ seq);
  uint64_t r2 = mix64(r);
  unsigned cls = (unsigned)(r % 100);
  size_t n = cls < 60   ? (size_t)(r2 % 257)
             : cls < 90 ? (size_t)(r2 % 65537)
                        : (size_t)(r2 % (MAX_MSG + 1));
  return n < min ? min : n;
}

/* Whether message `seq` travels as a pickled bytes value. */
static bool msg_pickled(uint64_t key, uint64_t seq) {
  return mix64(key ^ (seq * 0x9e3779b97f4a7c15u) ^ 0x5555) % 8 == 0;
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t get64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Bytes [from, to) of the body of message `seq` of stream `key`, written
 * to p[0..to-from). Byte i is a function of (key, seq, i) alone, so any
 * slice can be regenerated on its own. */
static void body_bytes(unsigned char *p, size_t from, size_t to, uint64_t key,
                       uint64_t seq) {
  uint64_t base = mix64(key ^ mix64(seq));
  size_t i = from;
  while (i < to && i % 8 != 0) {
    p[i - from] = (unsigned char)(mix64(base + i / 8) >> (8 * (i % 8)));
    i++;
  }
  for (; i + 8 <= to; i += 8) {
    uint64_t w = mix64(base + i / 8);
    memcpy(p + i - from, &w, 8); /* the same bytes on every host we run */
  }
  for (; i < to; i++)
    p[i - from] = (unsigned char)(mix64(base + i / 8) >> (8 * (i % 8)));
}

/* Fills p with message `seq` of stream `key` (n bytes). A multi-lane
 * message starts with a header naming its producer slot and sequence. */
static void msg_fill(unsigned char *p, size_t n, uint64_t key, uint64_t seq,
                     bool header) {
  size_t from = 0;
  if (header) {
    put32(p, MAGIC);
    put32(p + 4, (uint32_t)n);
    put64(p + 8, key);
    put64(p + 16, seq);
    from = HDR;
  }
  body_bytes(p + from, from, n, key, seq);
}

/* Whether p[0..n) is exactly message `seq` of stream `key`. */
static bool msg_check(const unsigned char *p, size_t n, uint64_t key,
                      uint64_t seq, bool header, size_t min) {
  unsigned char chunk[4096];
  if (n != msg_size(key, seq, min))
    return false;
  size_t from = 0;
  if (header) {
    if (n < HDR || get32(p) != MAGIC || get32(p + 4) != (uint32_t)n ||
        get64(p + 8) != key || get64(p + 16) != seq)
      return false;
    from = HDR;
  }
  for (size_t i = from; i < n; i += sizeof chunk) {
    size_t to = n - i < sizeof chunk ? n : i + sizeof chunk;
    body_bytes(chunk, i, to, key, seq);
    if (memcmp(chunk, p + i, to - i) != 0)
      return false;
  }
  return true;
}

/* A pickled message arrives as the pickle of a bytes value: decode it
 * (*data then points into *v, released by the caller). */
static int unpickle(const void *buf, size_t n, pc_value **v,
                    const unsigned char **data, size_t *len) {
  int rc = pc_pickle_loads(buf, n, v, NULL);
  if (rc == 0) {
    *data = pc_value_bytes_data(*v, len);
    if (*data == NULL) {
      pc_value_free(*v);
      *v = NULL;
      rc = PC_EPROTO;
    }
  }
  return rc;
}

/* Sends message `seq` of stream `key` on c, pickled or raw. */
static int send_msg(pc_conn *c, unsigned char *buf, uint64_t key, uint64_t seq,
                    bool header, size_t min) {
  size_t n = msg_size(key, seq, min);
  msg_fill(buf, n, key, seq, header);
  int rc;
  if (msg_pickled(key, seq)) {
    pc_value *v = pc_value_bytes(buf, n);
    rc = v == NULL ? -ENOMEM : pc_send(c, v);
    pc_value_free(v);
  } else {
    rc = pc_send_bytes(c, buf, n);
  }
  return rc;
}

/* Checks a received single-stream message: 1 good, 0 corrupt. */
static int check_stream_msg(lane_stats *st, const void *buf, size_t n,
                            uint64_t key, uint64_t seq) {
  const unsigned char *data = buf;
  size_t len = n;
  pc_value *v = NULL;
  int ok;
  if (msg_pickled(key, seq) && unpickle(buf, n, &v, &data, &len) != 0)
    ok = 0;
  else
    ok = msg_check(data, len, key, seq, false, 0);
  if (ok) {
    atomic_fetch_add(&st->messages, 1);
    atomic_fetch_add(&st->bytes, len);
  } else {
    atomic_fetch_add(&st->corrupt, 1);
  }
  pc_value_free(v);
  return ok;
}

/* waitpid with a bound: the status, or -1 after killing the process. */
static int wait_bounded(pid_t pid, int timeout_ms) {
  int status = 0;
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pfd >= 0) {
    struct pollfd p = {.fd = pfd, .events = POLLIN, .revents = 0};
    int64_t end = now_us() + (int64_t)timeout_ms * 1000;
    int r;
    do {
      int64_t left = (end - now_us()) / 1000;
      r = poll(&p, 1, left > 0 ? (int)left : 0);
    } while (r < 0 && errno == EINTR);
    close(pfd);
    if (r == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

static bool exited_ok(int status) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int64_t kill_delay_us(uint64_t *rs) {
  *rs = mix64(*rs);
  return 100000 + (int64_t)(*rs % 600000); /* 100..700 ms */
}

/* ------------------------------------------------------------ duplex lane */

/* The echo child: every message goes back as it came. */
static int echo_main(pc_conn *c) {
  pc_set_timeout(c, GUARD_MS);
  for (;;) {
    void *buf = NULL;
    size_t n = 0;
    int rc = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT);
    if (rc == PC_EOF)
      return 0;
    if (rc != 0)
      return 3;
    rc = pc_send_bytes(c, buf, n);
    free(buf);
    if (rc != 0)
      return 4;
  }
}

/* One thread sends (20 ms timeouts: nothing lost, retried) and receives the
 * echoes, at most 16 messages ahead, and kills the echo child now and then.
 * The socketpair dies with its echo child's buffers: what was in flight is
 * the allowed loss. */
static void lane_duplex(lane *lx) {
  lane_stats *st = lx->st;
  uint64_t rs = lx->seed;
  unsigned char *sbuf = malloc(MAX_MSG);
  if (sbuf == NULL) {
    record(st, -ENOMEM, false);
    return;
  }
  for (uint64_t epoch = 0; now_us() < lx->deadline_us; epoch++) {
    pc_conn *mine, *theirs;
    int rc = pc_pipe(&mine, &theirs, 0);
    if (rc != 0) {
      record(st, rc, false);
      break;
    }
    uint64_t key = ((uint64_t)lx->id << 32) | epoch;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      pc_close(mine);
      _exit(echo_main(theirs));
    }
    pc_close(theirs);
    if (epoch > 0)
      atomic_fetch_add(&st->restarts, 1);
    uint64_t sent = 0, got = 0;
    bool killed = false, ending = false, tx_dead = false;
    int64_t kill_at = now_us() + kill_delay_us(&rs), guard = 0;
    for (;;) {
      int64_t t = now_us();
      if (!killed && !ending && t >= kill_at && t < lx->deadline_us) {
        kill(pid, SIGKILL);
        killed = true;
        atomic_fetch_add(&st->kills, 1);
      }
      if (!ending && !killed && t >= lx->deadline_us) {
        ending = true;
        guard = t + (int64_t)GUARD_MS * 1000;
      }
      if (ending && t > guard) {
        record(st, -ETIMEDOUT, false); /* the echoes never came back */
        break;
      }
      if (!ending && !tx_dead && sent - got < 16) {
        pc_set_timeout(mine, 20);
        rc = send_msg(mine, sbuf, key, sent, false, 0);
        if (rc == 0) {
          sent++;
          atomic_fetch_add(&st->sent, 1);
        } else if (rc != -ETIMEDOUT) {
          record(st, rc, killed && kill_explains(rc));
          tx_dead = true;
        }
      }
      if (ending) {
        pc_set_timeout(mine, 20);
        rc = pc_flush(mine);
        if (rc != 0 && rc != -ETIMEDOUT) {
          record(st, rc, killed && kill_explains(rc));
          break;
        }
      }
      void *buf = NULL;
      size_t n = 0;
      /* Wait for echoes only when there is nothing else to do. */
      pc_set_timeout(mine, sent - got >= 16 || ending || tx_dead ? 20 : 0);
      rc = pc_recv_bytes(mine, &buf, &n, PC_NOLIMIT);
      if (rc == 0) {
        check_stream_msg(st, buf, n, key, got);
        free(buf);
        got++;
      } else if (rc != -ETIMEDOUT && rc != -EAGAIN) {
        record(st, rc, killed && kill_explains(rc));
        break;
      }
      if (ending && got == sent)
        break;
    }
    if (killed)
      atomic_fetch_add(&st->lost_allowed, sent - got);
    else if (got != sent)
      atomic_fetch_add(&st->missing, sent - got);
    pc_close(mine);
    int status = wait_bounded(pid, 10000);
    if (!killed && !exited_ok(status))
      atomic_fetch_add(&st->child_failures, 1);
  }
  free(sbuf);
}

/* ------------------------------------------------------------ simplex lane */

static int simplex_producer(pc_conn *w, simplex_state *ss, uint64_t key) {
  unsigned char *buf = malloc(MAX_MSG);
  if (buf == NULL)
    return 2;
  pc_set_timeout(w, GUARD_MS);
  for (uint64_t seq = 0; !atomic_load(&ss->stop); seq++) {
    int rc = send_msg(w, buf, key, seq, false, 0);
    if (rc != 0)
      return 4;
    atomic_store(&ss->count, seq + 1);
  }
  pc_close(w);
  free(buf);
  return 0;
}

static int simplex_consumer(pc_conn *r, simplex_state *ss, lane_stats *st,
                            uint64_t key) {
  pc_set_timeout(r, GUARD_MS);
  for (uint64_t seq = 0;; seq++) {
    void *buf = NULL;
    size_t n = 0;
    int rc = pc_recv_bytes(r, &buf, &n, PC_NOLIMIT);
    if (rc == PC_EOF)
      return 0;
    if (rc != 0) {
      record(st, rc, false);
      return 5;
    }
    int ok = check_stream_msg(st, buf, n, key, seq);
    free(buf);
    if (!ok)
      return 3;
    atomic_store(&ss->count, seq + 1);
  }
}

/* Alternating epochs: a child produces and the lane consumes (every message
 * the killed producer finished must still arrive: the pipe keeps it), or
 * the lane produces and a child consumes (what the dead consumer left in
 * the pipe is the allowed loss). The lane uses 50 ms timeouts and resumes. */
static void lane_simplex(lane *lx) {
  lane_stats *st = lx->st;
  simplex_state *ss = lx->state;
  uint64_t rs = lx->seed;
  unsigned char *sbuf = malloc(MAX_MSG);
  if (sbuf == NULL) {
    record(st, -ENOMEM, false);
    return;
  }
  for (uint64_t epoch = 0; now_us() < lx->deadline_us; epoch++) {
    pc_conn *r, *w;
    int rc = pc_pipe(&r, &w, PC_SIMPLEX);
    if (rc != 0) {
      record(st, rc, false);
      break;
    }
    bool child_produces = epoch % 2 == 0;
    uint64_t key = ((uint64_t)lx->id << 32) | epoch;
    atomic_store(&ss->stop, 0);
    atomic_store(&ss->count, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      if (child_produces) {
        pc_close(r);
        _exit(simplex_producer(w, ss, key));
      }
      pc_close(w);
      _exit(simplex_consumer(r, ss, st, key));
    }
    if (epoch > 0)
      atomic_fetch_add(&st->restarts, 1);
    bool killed = false;
    int64_t kill_at = now_us() + kill_delay_us(&rs);
    int64_t guard = lx->deadline_us + (int64_t)GUARD_MS * 1000;
    if (child_produces) {
      pc_close(w);
      pc_set_timeout(r, 50);
      uint64_t got = 0;
      for (;;) {
        int64_t t = now_us();
        if (!killed && t >= kill_at && t < lx->deadline_us) {
          kill(pid, SIGKILL);
          killed = true;
          atomic_fetch_add(&st->kills, 1);
        }
        if (t >= lx->deadline_us)
          atomic_store(&ss->stop, 1);
        if (t > guard) {
          record(st, -ETIMEDOUT, false);
          break;
        }
        void *buf = NULL;
        size_t n = 0;
        rc = pc_recv_bytes(r, &buf, &n, PC_NOLIMIT);
        if (rc == 0) {
          check_stream_msg(st, buf, n, key, got);
          free(buf);
          got++;
        } else if (rc == PC_EOF && !killed && atomic_load(&ss->stop)) {
          break; /* the producer was told to stop: the normal end */
        } else if (rc != -ETIMEDOUT) {
          /* Otherwise the stream only ends because the producer died. */
          record(st, rc, killed && (rc == PC_EOF || rc == PC_ETRUNCATED));
          break;
        }
      }
      /* The pipe kept every message the producer finished sending. */
      uint64_t done = atomic_load(&ss->count);
      if (got < done)
        atomic_fetch_add(&st->missing, done - got);
      if (got > done + 1)
        atomic_fetch_add(&st->phantom, got - done - 1);
      atomic_fetch_add(&st->sent, done);
      pc_close(r);
    } else {
      pc_close(r);
      pc_set_timeout(w, 50);
      uint64_t sent = 0;
      bool ok = true;
      for (;;) {
        int64_t t = now_us();
        if (!killed && t >= kill_at && t < lx->deadline_us) {
          kill(pid, SIGKILL);
          killed = true;
          atomic_fetch_add(&st->kills, 1);
        }
        if (t >= lx->deadline_us || t > guard)
          break;
        rc = send_msg(w, sbuf, key, sent, false, 0);
        if (rc == 0) {
          sent++;
          atomic_fetch_add(&st->sent, 1);
        } else if (rc != -ETIMEDOUT) {
          record(st, rc, killed && rc == -EPIPE);
          ok = false;
          break;
        }
      }
      if (ok) {
        /* Finish what the library still holds, then end the stream. */
        pc_set_timeout(w, GUARD_MS);
        rc = pc_flush(w);
        if (rc != 0)
          record(st, rc, killed && rc == -EPIPE);
      }
      pc_close(w);
      int status = wait_bounded(pid, GUARD_MS);
      uint64_t got = atomic_load(&ss->count);
      if (killed)
        atomic_fetch_add(&st->lost_allowed, sent > got ? sent - got : 0);
      else if (got != sent)
        atomic_fetch_add(&st->missing, sent > got ? sent - got : 0);
      if (!killed && !exited_ok(status))
        atomic_fetch_add(&st->child_failures, 1);
      continue;
    }
    int status = wait_bounded(pid, GUARD_MS);
    if (!killed && !exited_ok(status))
      atomic_fetch_add(&st->child_failures, 1);
  }
  free(sbuf);
}

/* ------------------------------------------------------------ multi lanes */

/* The shared and queue lanes: NPROD producers, NCONS consumers, on one
 * PC_SHARED pipe or one pc_queue. Producers record each sequence number
 * before and after the send; consumers mark each (slot, seq) they get. */
typedef struct multi_io {
  bool queue;
  pc_conn *r, *w;
  pc_queue *q;
} multi_io;

enum { EXIT_BROKEN = 7, EXIT_FULL = 8 };

static int multi_send(multi_io *io, unsigned char *buf, uint64_t key,
                      uint64_t seq) {
  if (!io->queue)
    return send_msg(io->w, buf, key, seq, true, HDR);
  size_t n = msg_size(key, seq, HDR);
  msg_fill(buf, n, key, seq, true);
  if (!msg_pickled(key, seq))
    return pc_queue_put_bytes(io->q, buf, n, GUARD_MS);
  pc_value *v = pc_value_bytes(buf, n);
  int rc = v == NULL ? -ENOMEM : pc_queue_put(io->q, v, GUARD_MS);
  pc_value_free(v);
  return rc;
}

static int multi_producer(multi_io *io, multi_state *ms, uint32_t slot_id,
                          uint64_t key_base) {
  unsigned char *buf = malloc(MAX_MSG);
  if (buf == NULL)
    return 2;
  slot *sl = &ms->slots[slot_id];
  uint64_t key = key_base | slot_id;
  int rc = 0;
  for (uint64_t seq = 0; !atomic_load(&ms->stop); seq++) {
    if (seq == MAX_SEQ) {
      rc = EXIT_FULL;
      break;
    }
    atomic_store(&sl->attempted, seq + 1);
    int r = multi_send(io, buf, key, seq);
    if (r == PC_EPEERDIED) {
      atomic_store(&ms->broken, 1);
      rc = EXIT_BROKEN;
      break;
    }
    if (r != 0) {
      fprintf(stderr, "soak: producer %u: %s\n", slot_id, pc_errname(r));
      rc = 4;
      break;
    }
    atomic_store(&sl->completed, seq + 1);
  }
  free(buf);
  return rc;
}

/* Checks one multi-lane message and marks it received. */
static void multi_mark(lane_stats *st, multi_state *ms, uint64_t key_base,
                       const unsigned char *p, size_t n) {
  const unsigned char *data = p;
  size_t len = n;
  pc_value *v = NULL;
  if (n > 0 && p[0] == 0x80 && unpickle(p, n, &v, &data, &len) != 0) {
    atomic_fetch_add(&st->corrupt, 1);
    return;
  }
  if (len < HDR || (get64(data + 8) & ~(uint64_t)0xffffffffu) != key_base) {
    atomic_fetch_add(&st->corrupt, 1);
    pc_value_free(v);
    return;
  }
  uint64_t key = get64(data + 8), seq = get64(data + 16);
  uint32_t slot_id = (uint32_t)key;
  if (slot_id >= MAX_SLOTS || seq >= MAX_SEQ ||
      !msg_check(data, len, key, seq, true, HDR) ||
      msg_pickled(key, seq) != (v != NULL)) {
    atomic_fetch_add(&st->corrupt, 1);
  } else if (seq >= atomic_load(&ms->slots[slot_id].attempted)) {
    atomic_fetch_add(&st->phantom, 1); /* never handed to a send */
  } else {
    uint64_t bit = (uint64_t)1 << (seq % 64);
    uint64_t old = atomic_fetch_or(&ms->bits[slot_id][seq / 64], bit);
    if (old & bit) {
      atomic_fetch_add(&st->duplicate, 1);
    } else {
      atomic_fetch_add(&st->messages, 1);
      atomic_fetch_add(&st->bytes, len);
    }
  }
  pc_value_free(v);
}

static int multi_consumer(multi_io *io, multi_state *ms, lane_stats *st,
                          uint64_t key_base) {
  int peerdied_in_a_row = 0;
  for (;;) {
    void *buf = NULL;
    size_t n = 0;
    int rc = io->queue ? pc_queue_get_bytes(io->q, &buf, &n, GUARD_MS)
                       : pc_recv_bytes(io->r, &buf, &n, PC_NOLIMIT);
    if (rc == 0) {
      peerdied_in_a_row = 0;
      multi_mark(st, ms, key_base, buf, n);
      free(buf);
      continue;
    }
    if ((io->queue && rc == PC_ECLOSED) || (!io->queue && rc == PC_EOF))
      return 0;
    if (!io->queue && rc == PC_ETRUNCATED &&
        (atomic_load(&ms->stop) || atomic_load(&ms->broken))) {
      /* The stream ended inside a frame: its sender was killed mid-frame
       * (or the stream broke) and the end came before anyone padded it or
       * this receiver's next check on the dead sender. */
      record(st, rc,
             atomic_load(&ms->broken) || atomic_load(&st->producer_kills) > 0);
      return 0;
    }
    if (rc == PC_EPEERDIED) {
      /* One frame of a sender killed mid-frame; twice in a row means the
       * direction is broken (a death inside the system call). */
      atomic_fetch_add(&st->peerdied, 1);
      if (++peerdied_in_a_row == 2) {
        atomic_store(&ms->broken, 1);
        return EXIT_BROKEN;
      }
      continue;
    }
    record(st, rc, false);
    fprintf(stderr, "soak: %s consumer: %s (stop %u, broken %u)\n",
            io->queue ? "queue" : "shared", pc_errname(rc),
            atomic_load(&ms->stop), atomic_load(&ms->broken));
    return 5;
  }
}

typedef struct member {
  pid_t pid;
  bool producer;
} member;

static pid_t start_member(multi_io *io, multi_state *ms, lane_stats *st,
                          bool producer, uint64_t key_base) {
  uint32_t slot_id = 0;
  if (producer) {
    slot_id = atomic_fetch_add(&ms->nslots, 1);
    if (slot_id >= MAX_SLOTS)
      return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    if (!io->queue) {
      pc_set_timeout(producer ? io->w : io->r, GUARD_MS);
      pc_close(producer ? io->r : io->w);
    }
    _exit(producer ? multi_producer(io, ms, slot_id, key_base)
                   : multi_consumer(io, ms, st, key_base));
  }
  return pid;
}

/* Counts what the slots [first, last) finished but nobody received. */
static uint64_t multi_missing(multi_state *ms, uint32_t first, uint32_t last) {
  uint64_t missing = 0;
  for (uint32_t s = first; s < last && s < MAX_SLOTS; s++) {
    uint64_t done = atomic_load(&ms->slots[s].completed);
    for (uint64_t q = 0; q < done; q++)
      if (!(atomic_load(&ms->bits[s][q / 64]) & ((uint64_t)1 << (q % 64))))
        missing++;
  }
  return missing;
}

static uint64_t multi_sent(multi_state *ms, uint32_t first, uint32_t last) {
  uint64_t sent = 0;
  for (uint32_t s = first; s < last && s < MAX_SLOTS; s++)
    sent += atomic_load(&ms->slots[s].completed);
  return sent;
}

static void lane_multi(lane *lx, bool queue) {
  lane_stats *st = lx->st;
  multi_state *ms = lx->state;
  uint64_t rs = lx->seed;
  uint64_t key_base = (uint64_t)lx->id << 32;
  pc_queue *q = NULL;
  if (queue) {
    int rc = pc_queue_new(&q, 0);
    if (rc != 0) {
      record(st, rc, false);
      return;
    }
  }
  /* Epochs: a broken shared pipe is replaced; the queue never breaks. */
  while (now_us() < lx->deadline_us) {
    multi_io io = {queue, NULL, NULL, q};
    if (!queue) {
      int rc = pc_pipe(&io.r, &io.w, PC_SHARED | PC_SIMPLEX);
      if (rc != 0) {
        record(st, rc, false);
        break;
      }
    }
    atomic_store(&ms->stop, 0);
    atomic_store(&ms->broken, 0);
    uint32_t first_slot = atomic_load(&ms->nslots);
    uint64_t consumer_kills = 0;
    member m[NPROD + NCONS];
    for (int i = 0; i < NPROD + NCONS; i++) {
      m[i].producer = i < NPROD;
      m[i].pid = start_member(&io, ms, st, m[i].producer, key_base);
    }
    int64_t kill_at = now_us() + kill_delay_us(&rs);
    while (now_us() < lx->deadline_us && !atomic_load(&ms->broken)) {
      /* Children that ended on their own: a full slot or a broken stream
       * is expected, anything else is a failure. Restart them. */
      for (int i = 0; i < NPROD + NCONS; i++) {
        int status;
        if (m[i].pid > 0 && waitpid(m[i].pid, &status, WNOHANG) == m[i].pid) {
          int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
          if (code != EXIT_FULL && code != EXIT_BROKEN)
            atomic_fetch_add(&st->child_failures, 1);
          m[i].pid = start_member(&io, ms, st, m[i].producer, key_base);
          atomic_fetch_add(&st->restarts, 1);
        }
      }
      if (now_us() >= kill_at) {
        rs = mix64(rs);
        int i = (int)(rs % (NPROD + NCONS));
        if (m[i].pid > 0) {
          kill(m[i].pid, SIGKILL);
          waitpid(m[i].pid, NULL, 0);
          atomic_fetch_add(&st->kills, 1);
          if (m[i].producer) {
            atomic_fetch_add(&st->producer_kills, 1);
          } else {
            atomic_fetch_add(&st->consumer_kills, 1);
            consumer_kills++;
          }
          m[i].pid = start_member(&io, ms, st, m[i].producer, key_base);
          atomic_fetch_add(&st->restarts, 1);
        }
        kill_at = now_us() + kill_delay_us(&rs);
      }
      sleep_us(10000); /* the supervisor's pace, not a wait for a result */
    }
    bool broken = atomic_load(&ms->broken) != 0;
    /* Stop: producers finish their message and leave; then the consumers
     * drain what is left and see the end (EOF, or the closed queue). */
    atomic_store(&ms->stop, 1);
    for (int i = 0; i < NPROD; i++) {
      if (m[i].pid <= 0)
        continue;
      int status = wait_bounded(m[i].pid, broken ? 1000 : GUARD_MS);
      int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (code != 0 && code != EXIT_FULL && code != EXIT_BROKEN && !broken)
        atomic_fetch_add(&st->child_failures, 1);
    }
    if (queue)
      pc_queue_close(q);
    else
      pc_close(io.w);
    for (int i = NPROD; i < NPROD + NCONS; i++) {
      if (m[i].pid <= 0)
        continue;
      int status = wait_bounded(m[i].pid, broken ? 1000 : GUARD_MS);
      int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (code != 0 && code != EXIT_BROKEN && !broken)
        atomic_fetch_add(&st->child_failures, 1);
    }
    broken = atomic_load(&ms->broken) != 0;
    uint32_t last_slot = atomic_load(&ms->nslots);
    uint64_t missing = multi_missing(ms, first_slot, last_slot);
    atomic_fetch_add(&st->sent, multi_sent(ms, first_slot, last_slot));
    if (broken) {
      atomic_fetch_add(&st->broken_streams, 1);
      atomic_fetch_add(&st->lost_broken, missing);
    } else if (missing > consumer_kills) {
      atomic_fetch_add(&st->lost_allowed, consumer_kills);
      atomic_fetch_add(&st->missing, missing - consumer_kills);
    } else {
      atomic_fetch_add(&st->lost_allowed, missing);
    }
    if (!queue)
      pc_close(io.r);
    if (atomic_load(&ms->nslots) + NPROD + 8 >= MAX_SLOTS)
      break; /* out of producer slots: end the lane early */
  }
  if (queue)
    pc_queue_free(q);
}

/* ------------------------------------------------------------ main */

static int run_lane(lane *lx) {
  setpgid(0, 0); /* so that the supervisor can end the lane as a whole */
  switch (lx->id) {
  case 0:
    lane_duplex(lx);
    break;
  case 1:
    lane_simplex(lx);
    break;
  case 2:
    lane_multi(lx, false);
    break;
  default:
    lane_multi(lx, true);
    break;
  }
  atomic_store(&lx->st->finished, 1);
  return 0;
}

static uint64_t sum_codes(const _Atomic uint64_t *a) {
  uint64_t n = 0;
  for (int i = 0; i < NCODES; i++)
    n += atomic_load(&a[i]);
  return n;
}

static void print_codes(bool after_kills, lane_stats *st) {
  printf("  %s:", after_kills ? "after kills" : "unexpected");
  bool any = false;
  for (int i = 0; i < NCODES; i++) {
    uint64_t after = 0;
    for (int l = 0; l < NLANES; l++)
      after += atomic_load(after_kills ? &st[l].after_kill[i]
                                       : &st[l].unexpected[i]);
    if (after > 0) {
      int code = known_codes[i];
      if (i == NCODES - 1)
        for (int l = 0; l < NLANES; l++)
          if (atomic_load(&st[l].other_code) != 0)
            code = atomic_load(&st[l].other_code);
      printf(" %s %llu", pc_errname(code), (unsigned long long)after);
      any = true;
    }
  }
  printf("%s\n", any ? "" : " none");
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--seconds N] [--seed S] [--quiet]\n", argv0);
}

int main(int argc, char **argv) {
  long seconds = 60;
  uint64_t seed = (uint64_t)time(NULL);
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      char *end;
      seconds = strtol(argv[++i], &end, 10);
      if (*end != '\0' || seconds < 1 || seconds > 7 * 24 * 3600) {
        usage(argv[0]);
        return 2;
      }
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--quiet") == 0) {
      quiet = true;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  /* A killed child must never take the supervisor with it. */
  signal(SIGPIPE, SIG_IGN);
  lane_stats *st = shared_map(NLANES * sizeof *st);
  simplex_state *ss = shared_map(sizeof *ss);
  multi_state *ms[2] = {shared_map(sizeof(multi_state)),
                        shared_map(sizeof(multi_state))};
  if (st == NULL || ss == NULL || ms[0] == NULL || ms[1] == NULL) {
    fprintf(stderr, "soak: cannot map shared memory\n");
    return 1;
  }
  printf("soak: %ld s, seed %llu, lanes: duplex, simplex, shared (%dx%d), "
         "queue (%dx%d)\n",
         seconds, (unsigned long long)seed, NPROD, NCONS, NPROD, NCONS);
  fflush(stdout);
  int64_t start = now_us();
  int64_t deadline = start + (int64_t)seconds * 1000000;
  pid_t pids[NLANES];
  for (int l = 0; l < NLANES; l++) {
    lane lx = {l, mix64(seed + (uint64_t)l), deadline, &st[l],
               l == 1   ? (void *)ss
               : l >= 2 ? (void *)ms[l - 2]
                        : NULL};
    fflush(NULL);
    pids[l] = fork();
    if (pids[l] < 0) {
      perror("soak: fork");
      return 1;
    }
    if (pids[l] == 0)
      _exit(run_lane(&lx));
    setpgid(pids[l], pids[l]);
  }
  /* Progress every 10 s; each lane gets its run plus a grace period. */
  int hung = 0, failed_lanes = 0;
  bool done[NLANES] = {false};
  int64_t limit = deadline + 120 * 1000000LL, next_report = start + 10000000;
  for (int left = NLANES; left > 0;) {
    for (int l = 0; l < NLANES; l++) {
      int status;
      if (!done[l] && waitpid(pids[l], &status, WNOHANG) == pids[l]) {
        done[l] = true;
        left--;
        if (!exited_ok(status) || !atomic_load(&st[l].finished))
          failed_lanes++;
        kill(-pids[l], SIGKILL); /* any straggler of that lane */
      }
    }
    if (left == 0)
      break;
    int64_t t = now_us();
    if (t > limit) {
      for (int l = 0; l < NLANES; l++)
        if (!done[l]) {
          fprintf(stderr, "soak: lane %s hung; killing it\n", lane_names[l]);
          kill(-pids[l], SIGKILL);
          waitpid(pids[l], NULL, 0);
          done[l] = true;
          hung++;
        }
      break;
    }
    if (!quiet && t >= next_report) {
      uint64_t msgs = 0, kills = 0;
      for (int l = 0; l < NLANES; l++) {
        msgs += atomic_load(&st[l].messages);
        kills += atomic_load(&st[l].kills);
      }
      printf("  %3lld s: %llu messages, %llu kills\n",
             (long long)((t - start) / 1000000), (unsigned long long)msgs,
             (unsigned long long)kills);
      fflush(stdout);
      next_report += 10000000;
    }
    sleep_us(20000);
  }
  double secs = (double)(now_us() - start) / 1e6;

  printf("%-8s %10s %10s %10s %6s %8s %8s %9s\n", "lane", "messages", "MB",
         "sent", "kills", "restarts", "lost-ok", "lost-brk");
  uint64_t tot_msgs = 0, tot_bytes = 0, tot_kills = 0, bad = 0;
  for (int l = 0; l < NLANES; l++) {
    lane_stats *s = &st[l];
    printf("%-8s %10llu %10.1f %10llu %6llu %8llu %8llu %9llu\n", lane_names[l],
           (unsigned long long)atomic_load(&s->messages),
           (double)atomic_load(&s->bytes) / 1e6,
           (unsigned long long)atomic_load(&s->sent),
           (unsigned long long)atomic_load(&s->kills),
           (unsigned long long)atomic_load(&s->restarts),
           (unsigned long long)atomic_load(&s->lost_allowed),
           (unsigned long long)atomic_load(&s->lost_broken));
    tot_msgs += atomic_load(&s->messages);
    tot_bytes += atomic_load(&s->bytes);
    tot_kills += atomic_load(&s->kills);
    uint64_t lane_bad = atomic_load(&s->corrupt) + atomic_load(&s->duplicate) +
                        atomic_load(&s->missing) + atomic_load(&s->phantom) +
                        atomic_load(&s->child_failures) +
                        sum_codes(s->unexpected);
    /* Each PC_EPEERDIED outside a broken stream stands for one sender
     * killed mid-frame. */
    if (atomic_load(&s->broken_streams) == 0 &&
        atomic_load(&s->peerdied) > atomic_load(&s->producer_kills))
      lane_bad++;
    if (lane_bad > 0)
      printf("         corrupt %llu, duplicate %llu, missing %llu, phantom "
             "%llu, child failures %llu, unexpected errors %llu\n",
             (unsigned long long)atomic_load(&s->corrupt),
             (unsigned long long)atomic_load(&s->duplicate),
             (unsigned long long)atomic_load(&s->missing),
             (unsigned long long)atomic_load(&s->phantom),
             (unsigned long long)atomic_load(&s->child_failures),
             (unsigned long long)sum_codes(s->unexpected));
    bad += lane_bad;
  }
  printf("total: %llu messages, %.1f MB verified in %.1f s; %llu kills "
         "(shared: %llu producers, %llu consumers; queue: %llu producers, "
         "%llu consumers); %llu PC_EPEERDIED, %llu broken shared streams\n",
         (unsigned long long)tot_msgs, (double)tot_bytes / 1e6, secs,
         (unsigned long long)tot_kills,
         (unsigned long long)atomic_load(&st[2].producer_kills),
         (unsigned long long)atomic_load(&st[2].consumer_kills),
         (unsigned long long)atomic_load(&st[3].producer_kills),
         (unsigned long long)atomic_load(&st[3].consumer_kills),
         (unsigned long long)atomic_load(&st[2].peerdied),
         (unsigned long long)atomic_load(&st[2].broken_streams));
  printf("errors by code:\n");
  print_codes(true, st);
  print_codes(false, st);
  bool pass = bad == 0 && hung == 0 && failed_lanes == 0;
  if (hung > 0 || failed_lanes > 0)
    printf("lanes hung: %d, lanes failed: %d\n", hung, failed_lanes);
  printf("result: %s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
