/* SPDX-License-Identifier: MIT */
/* The allocation-failure sweep. Each workload below (creating pipes and
 * queues, small and large messages both ways, a send cut by its deadline,
 * buffered sends, pickled nested values, queue puts and gets, shared ends)
 * is run again and again: in run n the library's n-th allocation fails
 * (mode "one"), or the n-th and every later one until a call gives up
 * (mode "from"), for every n until a run completes without reaching n.
 * Every library call must either succeed with the right result (some calls
 * have a slower way that needs no memory) or return -ENOMEM exactly; memory
 * then comes back and the same call, retried on the same objects, must
 * succeed. After every run no block and no descriptor is left behind. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/* ---------------------------------------------------------------- failing allocator
 * tests/CMakeLists.txt links this executable with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free, so the calls
 * the static library (and this file) make to them land here, while the
 * library itself carries no hook and pays nothing. Only a thread that armed
 * itself (around one library call) counts and fails allocations: the peer
 * threads below allocate normally. `live` counts every block made through
 * the wrappers and not yet freed, whoever made it. tests/check_alloc_calls.sh
 * checks that the library allocates through nothing else. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static _Thread_local bool armed;
static long seen;          /* allocations of armed calls in this run */
static long fail_at = -1;  /* the allocation that fails; -1: none */
static bool fail_from;     /* every later one fails too (mode "from") */
static long injected;      /* failures injected in this run */
static long injected_at;   /* index of the first failure injected */
static long retried;       /* calls retried after -ENOMEM, all runs */
static int notify_fd = -1; /* written to at each injected failure */
static atomic_long live;

static bool inject(void) {
  bool fail = false;
  if (armed) {
    long i = seen++;
    fail = fail_at >= 0 && (i == fail_at || (fail_from && i > fail_at));
    if (fail) {
      if (injected == 0)
        injected_at = i;
      injected++;
      if (notify_fd >= 0) {
        char b = 1;
        ssize_t w = write(notify_fd, &b, 1);
        (void)w; /* a full pipe means the peer is already awake */
      }
    }
  }
  return fail;
}

void *__wrap_malloc(size_t n) {
  void *p = NULL;
  if (inject())
    errno = ENOMEM;
  else if ((p = __real_malloc(n)) != NULL)
    atomic_fetch_add(&live, 1);
  return p;
}

void *__wrap_calloc(size_t n, size_t size) {
  void *p = NULL;
  if (inject())
    errno = ENOMEM;
  else if ((p = __real_calloc(n, size)) != NULL)
    atomic_fetch_add(&live, 1);
  return p;
}

void *__wrap_realloc(void *p, size_t n) {
  void *q = NULL;
  if (inject()) {
    errno = ENOMEM;
  } else {
    q = __real_realloc(p, n);
    if (p == NULL && q != NULL)
      atomic_fetch_add(&live, 1);
    else if (p != NULL && n == 0 && q == NULL)
      atomic_fetch_sub(&live, 1); /* glibc's realloc(p, 0) frees p */
  }
  return q;
}

void __wrap_free(void *p) {
  if (p != NULL)
    atomic_fetch_sub(&live, 1);
  __real_free(p);
}

/* ---------------------------------------------------------------- calling armed
 * ONCE(rc, expr) runs one library call armed and tells whether it reported
 * an injected failure: -ENOMEM exactly, and only when a failure was
 * injected during the call. Memory then comes back (fail_at = -1) for the
 * retry. Any other negative code fails the test. TRY(rc, expr) retries the
 * call once after -ENOMEM, which must then succeed. */
static long inj_mark;
static long shared_lost; /* wl_huge_shared: messages lost to -ENOMEM */

static bool reported(long rc, const char *expr, int line) {
  bool hit = injected > inj_mark;
  bool enomem = false;
  if (rc == -ENOMEM) {
    if (!hit)
      fail_msg("line %d: %s: -ENOMEM, but no allocation failed", line, expr);
    enomem = true;
    fail_at = -1;
    retried++;
  } else if (rc < 0) {
    fail_msg("line %d: %s: %s (%ld) %s (run: fail_at %ld%s)", line, expr,
             pc_errname((int)rc), rc,
             hit ? "after an injected allocation failure, want -ENOMEM"
                 : "with no allocation failure",
             fail_at, fail_from ? " and on" : "");
  }
  return enomem;
}

static void retried_ok(long rc, const char *expr, int line) {
  if (rc < 0)
    fail_msg("line %d: %s: retry after -ENOMEM failed: %s (%ld)", line, expr,
             pc_errname((int)rc), rc);
}

#define ONCE(rc, expr)                                                         \
  (inj_mark = injected, armed = true, (rc) = (expr), armed = false,            \
   reported((long)(rc), #expr, __LINE__))

#define TRY(rc, expr)                                                          \
  do {                                                                         \
    if (ONCE(rc, expr)) {                                                      \
      (rc) = (expr);                                                           \
      retried_ok((long)(rc), #expr, __LINE__);                                 \
    }                                                                          \
  } while (0)

/* ---------------------------------------------------------------- helpers */

/* Every connection gets a bound, so a call that lost its message shows up
 * as -ETIMEDOUT instead of a hang. */
#define BOUND_MS 10000

static void pair(pc_conn **a, pc_conn **b, int flags) {
  assert_rc(0, pc_pipe(a, b, flags));
  assert_rc(0, pc_set_timeout(*a, BOUND_MS));
  assert_rc(0, pc_set_timeout(*b, BOUND_MS));
}

static void close_pair(pc_conn *a, pc_conn *b) {
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
}

/* A fast pattern (also under valgrind): 64-bit words from seed. */
static void fill(unsigned char *p, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    memcpy(p + i, &w, len - i < 8 ? len - i : 8);
  }
}

static bool filled(const unsigned char *p, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    if (memcmp(p + i, &w, len - i < 8 ? len - i : 8) != 0)
      return false;
  }
  return true;
}

static unsigned char *pattern(size_t len, uint64_t seed) {
  unsigned char *p = malloc(len > 0 ? len : 1);
  assert_non_null(p);
  fill(p, len, seed);
  return p;
}

/* Receives one message unarmed and checks it. */
static void expect_msg(pc_conn *c, const void *want, size_t len) {
  void *p = NULL;
  size_t n = 0;
  assert_rc(0, pc_recv_bytes(c, &p, &n, PC_NOLIMIT));
  assert_int_equal(n, len);
  if (len > 0)
    assert_memory_equal(p, want, len);
  free(p);
}

/* The peer: a thread that sends or receives one pattern message of `len`
 * bytes, unarmed, optionally after a byte on wait_fd. */
typedef struct peer {
  pthread_t thread;
  pc_conn *c;
  bool send;
  size_t len;
  uint64_t seed;
  unsigned char *buf; /* a sender's bytes */
  int wait_fd;        /* -1: start at once */
  const char *then;   /* a sender sends this text next, unless NULL */
  int rc;             /* 0, a library code, or 1 for wrong bytes */
} peer;

static void *peer_main(void *arg) {
  peer *p = arg;
  if (p->wait_fd >= 0) {
    struct pollfd w = {.fd = p->wait_fd, .events = POLLIN};
    if (poll(&w, 1, BOUND_MS) != 1) {
      p->rc = -ETIMEDOUT;
      return NULL;
    }
  }
  if (p->send) {
    p->rc = pc_send_bytes(p->c, p->buf, p->len);
    if (p->rc == 0 && p->then != NULL)
      p->rc = pc_send_bytes(p->c, p->then, strlen(p->then));
  } else {
    void *buf = NULL;
    size_t n = 0;
    p->rc = pc_recv_bytes(p->c, &buf, &n, PC_NOLIMIT);
    if (p->rc == 0 && (n != p->len || !filled(buf, n, p->seed)))
      p->rc = 1;
    free(buf);
  }
  return NULL;
}

/* The sender's bytes are made before the thread starts, so a slow build
 * (sanitizers, valgrind) does not eat into the receiver's bound. */
static void peer_start(peer *p, pc_conn *c, bool send, size_t len,
                       uint64_t seed, int wait_fd, const char *then) {
  p->c = c;
  p->send = send;
  p->len = len;
  p->seed = seed;
  p->buf = send ? pattern(len, seed) : NULL;
  p->wait_fd = wait_fd;
  p->then = then;
  p->rc = 0;
  assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_join(peer *p) {
  assert_int_equal(pthread_join(p->thread, NULL), 0);
  free(p->buf);
  if (p->rc != 0)
    fail_msg("peer thread: %s (%d)",
             p->rc == 1 ? "wrong bytes" : pc_errname(p->rc), p->rc);
}

/* ---------------------------------------------------------------- the sweep */

typedef void (*workload_fn)(void);

/* Runs fn with the n-th allocation failing, for n = 0, 1, ... until a run
 * has fewer allocations than n: in mode "one", then (if both) in mode
 * "from". Returns the number of allocations of a clean run. */
static long sweep(const char *name, workload_fn fn, bool both) {
  long allocs = 0, runs = 0, failures = 0;
  retried = 0;
  for (int mode = 0; mode < (both ? 2 : 1); mode++) {
    for (long n = 0;; n++) {
      int fds = pc_test_count_fds();
      long blocks = atomic_load(&live);
      seen = 0;
      injected = 0;
      injected_at = -1;
      fail_at = n;
      fail_from = mode == 1;
      fn();
      fail_at = -1;
      runs++;
      if (atomic_load(&live) != blocks)
        fail_msg("%s: allocation %ld failing%s: %ld blocks leaked", name, n,
                 fail_from ? " and on" : "", atomic_load(&live) - blocks);
      if (pc_test_count_fds() != fds)
        fail_msg("%s: allocation %ld failing%s: %d descriptors leaked", name, n,
                 fail_from ? " and on" : "", pc_test_count_fds() - fds);
      failures += injected;
      if (injected == 0) {
        allocs = seen;
        break;
      }
    }
  }
  print_message("%s: %ld allocations, %ld runs, %ld failures injected, %ld "
                "calls retried after -ENOMEM\n",
                name, allocs, runs, failures, retried);
  return allocs;
}

/* ---------------------------------------------------------------- workloads */

/* pc_pipe in every flavour, pc_conn_from_fd and pc_queue_new: on failure
 * nothing is created, no descriptor stays open and the outputs are
 * untouched. */
static void wl_create(void) {
  static const int flags[] = {0, PC_SIMPLEX, PC_SHARED, PC_SIMPLEX | PC_SHARED,
                              PC_INHERIT};
  int rc;
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    pc_conn *a = NULL, *b = NULL;
    int fds = pc_test_count_fds();
    if (ONCE(rc, pc_pipe(&a, &b, flags[i]))) {
      assert_null(a);
      assert_null(b);
      assert_int_equal(pc_test_count_fds(), fds);
      rc = pc_pipe(&a, &b, flags[i]);
      retried_ok(rc, "pc_pipe", __LINE__);
    }
    assert_rc(0, pc_set_timeout(a, BOUND_MS));
    assert_rc(0, pc_set_timeout(b, BOUND_MS));
    /* simplex: a reads, b writes */
    assert_rc(0, pc_send_bytes(b, "ping", 4));
    expect_msg(a, "ping", 4);
    close_pair(a, b);
  }

  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pc_conn *c = NULL;
  int fd = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
  if (ONCE(rc, pc_conn_from_fd(fd, PC_READABLE | PC_WRITABLE, &c))) {
    /* A failing call closes the descriptor it was given. */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_null(c);
    fd = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
    rc = pc_conn_from_fd(fd, PC_READABLE | PC_WRITABLE, &c);
    retried_ok(rc, "pc_conn_from_fd", __LINE__);
  }
  assert_rc(0, pc_set_timeout(c, BOUND_MS));
  assert_int_equal(write(sv[1], "\0\0\0\2hi", 6), 6);
  expect_msg(c, "hi", 2);
  assert_rc(0, pc_close(c));
  close(sv[0]);
  close(sv[1]);

  pc_queue *q = NULL;
  if (ONCE(rc, pc_queue_new(&q, 0))) {
    assert_null(q);
    rc = pc_queue_new(&q, 0);
    retried_ok(rc, "pc_queue_new", __LINE__);
  }
  assert_rc(0, pc_queue_put_bytes(q, "item", 4, 0));
  void *p = NULL;
  size_t n = 0;
  assert_rc(0, pc_queue_get_bytes(q, &p, &n, 0));
  assert_int_equal(n, 4);
  assert_memory_equal(p, "item", 4);
  free(p);
  pc_queue_free(q);
}

/* Small messages through every send and receive call, both directions,
 * then pc_wait over more connections than fit its stack arrays. */
static void wl_small(void) {
  pc_conn *a, *b, *r, *w;
  int rc;
  ssize_t sz;
  pair(&a, &b, 0);

  TRY(rc, pc_send_bytes(a, "hello", 5));
  TRY(rc, pc_poll(b, 0));
  assert_int_equal(rc, 1);
  TRY(sz, pc_next_size(b));
  assert_int_equal(sz, 5);
  void *p = NULL;
  size_t n = 0;
  TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
  assert_int_equal(n, 5);
  assert_memory_equal(p, "hello", 5);
  free(p);

  /* More iovecs than the send keeps on its stack. */
  struct iovec iov[12];
  char parts[12][2];
  char want[24];
  for (int i = 0; i < 12; i++) {
    parts[i][0] = (char)('a' + i);
    parts[i][1] = (char)('A' + i);
    iov[i].iov_base = parts[i];
    iov[i].iov_len = 2;
    memcpy(want + 2 * i, parts[i], 2);
  }
  TRY(rc, pc_send_bytesv(b, iov, 12));
  char buf[64];
  TRY(sz, pc_recv_bytes_into(a, buf, sizeof buf));
  assert_int_equal(sz, 24);
  assert_memory_equal(buf, want, 24);

  /* A batch, an empty message, then pc_wait over 17 entries (more than it
   * keeps on its stack), and pc_wait_items mixing in a plain descriptor. */
  struct iovec msgs[3] = {{PC_TEST_STR("one"), 3},
                          {PC_TEST_STR("two"), 3},
                          {PC_TEST_STR("three"), 5}};
  TRY(sz, pc_send_batch(a, msgs, 3));
  assert_int_equal(sz, 3);
  TRY(rc, pc_send_bytes(a, NULL, 0));
  pc_conn *conns[17], *ready[17];
  size_t nready = 0;
  for (int i = 0; i < 17; i++)
    conns[i] = b;
  TRY(rc, pc_wait(conns, 17, 0, ready, &nready));
  assert_int_equal(rc, 17);
  assert_int_equal(nready, 17);
  int pfd[2];
  assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
  assert_int_equal(write(pfd[1], "", 1), 1);
  pc_wait_item items[17];
  for (int i = 0; i < 17; i++)
    items[i] = (pc_wait_item){i % 2 ? b : NULL, i % 2 ? -1 : pfd[0], false};
  TRY(rc, pc_wait_items(items, 17, 0));
  assert_int_equal(rc, 17);
  close(pfd[0]);
  close(pfd[1]);
  for (int i = 0; i < 3; i++) {
    TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
    assert_int_equal(n, msgs[i].iov_len);
    assert_memory_equal(p, msgs[i].iov_base, n);
    free(p);
  }
  TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
  assert_non_null(p);
  assert_int_equal(n, 0);
  free(p);
  close_pair(a, b);

  /* A one-way pipe (Python's Pipe(duplex=False)). */
  pair(&r, &w, PC_SIMPLEX);
  TRY(rc, pc_send_bytes(w, "simplex", 7));
  TRY(rc, pc_recv_bytes(r, &p, &n, 100));
  assert_int_equal(n, 7);
  assert_memory_equal(p, "simplex", 7);
  free(p);
  close_pair(r, w);
}

/* 1 MiB messages: received by pc_recv_bytes and pc_recv_bytes_into (both
 * through the library's message buffer, since the connection has a
 * timeout) while a peer thread sends, and sent while a peer receives. */
static void wl_large(void) {
  pc_conn *a, *b;
  peer pr;
  int rc;
  ssize_t sz;
  size_t len = pc_test_scaled(1u << 20);
  pair(&a, &b, 0);

  peer_start(&pr, a, true, len, 1, -1, NULL);
  void *p = NULL;
  size_t n = 0;
  TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
  assert_int_equal(n, len);
  assert_true(filled(p, n, 1));
  free(p);
  peer_join(&pr);

  unsigned char *buf = malloc(len);
  assert_non_null(buf);
  peer_start(&pr, a, true, len, 2, -1, NULL);
  TRY(sz, pc_recv_bytes_into(b, buf, len));
  assert_int_equal(sz, len);
  assert_true(filled(buf, len, 2));
  peer_join(&pr);

  fill(buf, len, 3);
  peer_start(&pr, a, false, len, 3, -1, NULL);
  TRY(rc, pc_send_bytes(b, buf, len));
  peer_join(&pr);
  free(buf);
  close_pair(a, b);
}

/* Over 64 MiB (what the receiver allocates before any byte arrives), so
 * the message buffer grows as bytes arrive: a failure after the first
 * 64 MiB are in must keep them, and the retry resume. Under PC_TEST_SCALE
 * the message is smaller and only the first allocation is exercised. */
static void wl_huge(void) {
  pc_conn *a, *b;
  peer pr;
  int rc;
  size_t len = pc_test_scaled((64u << 20) + 4096);
  pair(&a, &b, 0);
  peer_start(&pr, a, true, len, 4, -1, NULL);
  void *p = NULL;
  size_t n = 0;
  TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
  assert_int_equal(n, len);
  assert_true(filled(p, n, 4));
  free(p);
  peer_join(&pr);
  close_pair(a, b);
}

/* The same on a PC_SHARED end, followed by a small message. Its receive
 * holds the shared lock only during the call, so a failure to grow the
 * buffer after the first 64 MiB arrived cannot keep them: that message is
 * lost (skipped to its end), and the next receive gets the next message,
 * intact. A failure before any byte was read keeps the message. */
static void wl_huge_shared(void) {
  pc_conn *a, *b;
  peer pr;
  int rc;
  size_t len = pc_test_scaled((64u << 20) + 4096);
  void *p = NULL;
  size_t n = 0;
  pair(&a, &b, PC_SHARED);
  peer_start(&pr, a, true, len, 8, -1, "next"); /* then "next" */
  long start = seen;
  if (ONCE(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT))) {
    bool first = injected_at == start;
    ssize_t next = pc_next_size(b);
    if (first || next != 4)
      assert_int_equal(next, len);
    if (next == 4) {
      shared_lost++;
    } else {
      rc = pc_recv_bytes(b, &p, &n, PC_NOLIMIT);
      retried_ok(rc, "pc_recv_bytes", __LINE__);
    }
  }
  if (p != NULL) {
    assert_int_equal(n, len);
    assert_true(filled(p, n, 8));
    free(p);
  }
  expect_msg(b, "next", 4);
  peer_join(&pr);
  close_pair(a, b);
}

/* A send cut by its deadline: the library keeps the frame's tail
 * (allocating it). Without memory for it, it finishes the frame without a
 * deadline instead; the peer starts reading when the send returned or an
 * allocation failed, whichever comes first. Either way the peer then
 * gets the whole message and the one after it. */
static void wl_cut(void) {
  pc_conn *a, *b;
  peer pr;
  int rc;
  int fds[2];
  size_t len = 1u << 20;
  pair(&a, &b, 0);
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  unsigned char *buf = pattern(len, 5);
  peer_start(&pr, b, false, len, 5, fds[0], NULL);
  notify_fd = fds[1];
  assert_rc(0, pc_set_timeout(a, 0));
  TRY(rc, pc_send_bytes(a, buf, len));
  notify_fd = -1;
  assert_int_equal(write(fds[1], "", 1), 1);
  assert_rc(0, pc_set_timeout(a, BOUND_MS));
  TRY(rc, pc_flush(a));
  peer_join(&pr);
  TRY(rc, pc_send_bytes(a, "after", 5));
  expect_msg(b, "after", 5);
  free(buf);
  close(fds[0]);
  close(fds[1]);
  close_pair(a, b);
}

/* Buffered sends (pc_set_buffered): without memory for the buffer a
 * message is written directly; it must still arrive in order, after the
 * messages buffered before it, also when the buffer has to grow while it
 * holds messages (4 frames of 13 bytes fill 52 of 64 bytes; after the
 * resize to 4096 the fifth needs more room). */
static void wl_buffered(void) {
  pc_conn *a, *b;
  int rc;
  char msg[32];
  pair(&a, &b, 0);
  assert_rc(0, pc_set_buffered(a, 64));
  for (int i = 0; i < 8; i++) {
    int len = snprintf(msg, sizeof msg, "message %d", i);
    if (i == 4)
      assert_rc(0, pc_set_buffered(a, 4096));
    TRY(rc, pc_send_bytes(a, msg, (size_t)len));
  }
  TRY(rc, pc_flush(a));
  for (int i = 0; i < 8; i++) {
    int len = snprintf(msg, sizeof msg, "message %d", i);
    expect_msg(b, msg, (size_t)len);
  }
  assert_rc(0, pc_set_buffered(a, 0));
  close_pair(a, b);
}

/* A nested value with every container kind, shared references, big ints,
 * floats, text, bytes, a long list and deep nesting. */
static pc_value *nested_value(size_t big_bytes) {
  pc_value *root = pc_value_list();
  pc_value *d = pc_value_dict();
  pc_value *s = pc_value_set();
  unsigned char big[20];
  for (int i = 0; i < 20; i++)
    big[i] = (unsigned char)(i * 37 + 1);
  assert_non_null(root);
  assert_non_null(d);
  assert_non_null(s);
  assert_rc(0, pc_value_dict_set_str_steal(d, "int", pc_value_int(-42)));
  assert_rc(0, pc_value_dict_set_str_steal(
                   d, "big", pc_value_int_from_bytes(big, sizeof big, true)));
  assert_rc(0, pc_value_dict_set_str_steal(d, "float", pc_value_float(2.5)));
  assert_rc(
      0, pc_value_dict_set_str_steal(d, "text", pc_value_str("h\xc3\xa9llo")));
  unsigned char *bytes = pattern(big_bytes, 6);
  assert_rc(0, pc_value_dict_set_str_steal(d, "bytes",
                                           pc_value_bytes(bytes, big_bytes)));
  free(bytes);
  assert_rc(0, pc_value_set_add_steal(s, pc_value_int(1)));
  assert_rc(0, pc_value_set_add_steal(s, pc_value_str("x")));
  assert_rc(0, pc_value_dict_set_str_steal(d, "set", s));
  pc_value *t = pc_value_str("t");
  assert_rc(
      0, pc_value_dict_set_str_steal(
             d, "tuple",
             pc_value_tuple_pack(3, pc_value_none(), pc_value_bool(true), t)));
  pc_value_free(t);
  assert_rc(0, pc_value_list_append(root, d));
  assert_rc(0, pc_value_list_append(root, d)); /* shared reference */
  pc_value_free(d);
  pc_value *l = pc_value_list();
  /* Most of the sweep's runs come from this list (each run encodes and
   * decodes all of it): PC_TEST_SCALE shortens it. */
  for (int i = 0; i < (int)pc_test_scaled(300); i++)
    assert_rc(0, pc_value_list_append_steal(l, i % 3 ? pc_value_int(i)
                                                     : pc_value_str("item")));
  assert_rc(0, pc_value_list_append_steal(root, l));
  pc_value *deep = pc_value_list();
  for (int i = 0; i < 20; i++) {
    pc_value *up = pc_value_list();
    assert_rc(0, pc_value_list_append_steal(up, deep));
    deep = up;
  }
  assert_rc(0, pc_value_list_append_steal(root, deep));
  return root;
}

/* pc_recv after -ENOMEM: the message is consumed when decoding failed, or
 * still there when the payload could not be held; resend it if it is gone
 * (what the application would have to do), then the retry must succeed. */
static void recv_value(pc_conn *tx, pc_conn *rx, const pc_value *want) {
  int rc;
  void *obj = NULL;
  if (ONCE(rc, pc_recv(rx, &obj))) {
    assert_null(obj);
    if (pc_poll(rx, 0) == 0)
      assert_rc(0, pc_send(tx, want));
    rc = pc_recv(rx, &obj);
    retried_ok(rc, "pc_recv", __LINE__);
  }
  assert_int_equal(pc_value_equal(obj, want), 1);
  pc_value_free(obj);
}

static void send_value(pc_conn *tx, pc_conn *rx, const pc_value *v) {
  int rc;
  if (ONCE(rc, pc_send(tx, v))) {
    /* A failed encode sends nothing. */
    assert_int_equal(pc_poll(rx, 0), 0);
    rc = pc_send(tx, v);
    retried_ok(rc, "pc_send", __LINE__);
  }
}

/* pc_send / pc_recv (pickle) of nested values on private and shared ends;
 * the second value's payload is larger than the read-ahead buffer (unless
 * PC_TEST_SCALE shrinks it). */
static void wl_pickle(void) {
  static const int flags[] = {0, PC_SHARED};
  for (size_t i = 0; i < 2; i++) {
    pc_conn *a, *b;
    pair(&a, &b, flags[i]);
    for (size_t big = 100; big <= 100000; big *= 1000) {
      pc_value *v = nested_value(big == 100 ? big : pc_test_scaled(big));
      send_value(a, b, v);
      recv_value(a, b, v);
      send_value(b, a, v);
      recv_value(b, a, v);
      pc_value_free(v);
    }
    close_pair(a, b);
  }
}

/* Queue puts and gets, raw and pickled. */
static void wl_queue(void) {
  pc_queue *q;
  int rc;
  void *p = NULL;
  size_t n = 0;
  pc_queue_options o = {0, 1u << 20, NULL, NULL};
  assert_rc(0, pc_queue_new_ex(&q, &o));
  TRY(rc, pc_queue_put_bytes(q, "raw item", 8, 0));
  if (ONCE(rc, pc_queue_get_bytes(q, &p, &n, 0))) {
    /* The item stays in the queue. */
    assert_int_equal(pc_queue_qsize(q), 1);
    rc = pc_queue_get_bytes(q, &p, &n, 0);
    retried_ok(rc, "pc_queue_get_bytes", __LINE__);
  }
  assert_int_equal(n, 8);
  assert_memory_equal(p, "raw item", 8);
  free(p);

  pc_value *v = nested_value(1000);
  if (ONCE(rc, pc_queue_put(q, v, 0))) {
    assert_int_equal(pc_queue_qsize(q), 0); /* nothing was put */
    rc = pc_queue_put(q, v, 0);
    retried_ok(rc, "pc_queue_put", __LINE__);
  }
  void *obj = NULL;
  if (ONCE(rc, pc_queue_get(q, &obj, BOUND_MS))) {
    assert_null(obj);
    /* Either the copy failed (the item stays) or decoding did (consumed). */
    if (pc_queue_qsize(q) == 0)
      assert_rc(0, pc_queue_put(q, v, 0));
    rc = pc_queue_get(q, &obj, BOUND_MS);
    retried_ok(rc, "pc_queue_get", __LINE__);
  }
  assert_int_equal(pc_value_equal(obj, v), 1);
  pc_value_free(obj);
  pc_value_free(v);
  assert_int_equal(pc_queue_qsize(q), 0);
  pc_queue_free(q);
}

/* PC_SHARED ends: many iovecs, small and large messages. */
static void wl_shared(void) {
  pc_conn *a, *b;
  peer pr;
  int rc;
  ssize_t sz;
  void *p = NULL;
  size_t n = 0;
  pair(&a, &b, PC_SHARED);
  struct iovec iov[12];
  for (int i = 0; i < 12; i++) {
    iov[i].iov_base = PC_TEST_STR("0123456789ab") + i;
    iov[i].iov_len = 1;
  }
  TRY(rc, pc_send_bytesv(a, iov, 12));
  TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
  assert_int_equal(n, 12);
  assert_memory_equal(p, "0123456789ab", 12);
  free(p);
  struct iovec msgs[2] = {{PC_TEST_STR("x"), 1}, {PC_TEST_STR("yz"), 2}};
  TRY(sz, pc_send_batch(b, msgs, 2));
  assert_int_equal(sz, 2);
  expect_msg(a, "x", 1);
  expect_msg(a, "yz", 2);

  size_t len = pc_test_scaled(1u << 20);
  peer_start(&pr, a, true, len, 7, -1, NULL);
  TRY(rc, pc_recv_bytes(b, &p, &n, PC_NOLIMIT));
  assert_int_equal(n, len);
  assert_true(filled(p, n, 7));
  free(p);
  peer_join(&pr);
  close_pair(a, b);
}

/* ---------------------------------------------------------------- tests */

#define SWEEP_TEST(wl, min_allocs, both)                                       \
  static void test_##wl(void **state) {                                        \
    (void)state;                                                               \
    assert_true(sweep(#wl, wl_##wl, both) >= (min_allocs));                    \
  }

SWEEP_TEST(create, 10, true)
SWEEP_TEST(small, 5, true)
SWEEP_TEST(large, 2, true)
/* Each run moves 64 MiB: mode "one" only (the failures are single
 * allocations in the receive anyway). */
SWEEP_TEST(huge, 2, false)
SWEEP_TEST(cut, 1, true)

static void test_huge_shared(void **state) {
  (void)state;
  shared_lost = 0;
  assert_true(sweep("huge_shared", wl_huge_shared, false) >= 1);
  print_message("huge_shared: %ld messages lost to a failure after their "
                "first 64 MiB\n",
                shared_lost);
}
SWEEP_TEST(buffered, 2, true)
SWEEP_TEST(pickle, 100, true)
SWEEP_TEST(queue, 10, true)
SWEEP_TEST(shared, 3, true)

/* The wrappers see the library's allocations: a pipe and a receive
 * allocate, and with the first allocation failing pc_pipe reports it. */
static void test_wrappers_are_live(void **state) {
  (void)state;
  pc_conn *a = NULL, *b = NULL;
  long before = atomic_load(&live);
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_true(atomic_load(&live) >= before + 2);
  close_pair(a, b);
  assert_int_equal(atomic_load(&live), before);
  seen = 0;
  injected = 0;
  fail_at = 0;
  fail_from = false;
  armed = true;
  int rc = pc_pipe(&a, &b, 0);
  armed = false;
  fail_at = -1;
  assert_rc(-ENOMEM, rc);
  assert_int_equal(injected, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wrappers_are_live),
      cmocka_unit_test(test_create),
      cmocka_unit_test(test_small),
      cmocka_unit_test(test_large),
      cmocka_unit_test(test_huge),
      cmocka_unit_test(test_huge_shared),
      cmocka_unit_test(test_cut),
      cmocka_unit_test(test_buffered),
      cmocka_unit_test(test_pickle),
      cmocka_unit_test(test_queue),
      cmocka_unit_test(test_shared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
