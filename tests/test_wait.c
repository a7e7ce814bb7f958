/* SPDX-License-Identifier: MIT */
/* pc_wait and pc_wait_items: multiprocessing.connection.wait() over
 * connections and plain descriptors (CPython's TestWait, F1-F7, adapted to
 * forked children ordered by sync pipes instead of sleeps). */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Generous bound for "this must become ready"; never reached when the
 * library works. */
#define READY_BOUND_MS 10000
/* Short timeout for "this must not become ready". */
#define IDLE_MS 50

/* ------------------------------------------------------------ utilities */

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void raw_write(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t k = write(fd, b, n);
    assert_true(k > 0 || errno == EINTR);
    if (k > 0) {
      b += k;
      n -= (size_t)k;
    }
  }
}

/* Whether the raw descriptor has bytes (or a hang-up) right now. */
static bool fd_readable_now(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do {
    r = poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  assert_true(r >= 0);
  return r > 0;
}

/* pc_wait returning exactly want[0..nwant) (in input order). */
static void expect_ready(pc_conn **conns, size_t n, int timeout_ms,
                         pc_conn *const *want, size_t nwant) {
  pc_conn *ready[64];
  size_t nready = 99;
  assert_true(n <= 64);
  assert_rc((long)nwant, pc_wait(conns, n, timeout_ms, ready, &nready));
  assert_int_equal(nready, nwant);
  for (size_t i = 0; i < nwant; i++)
    assert_ptr_equal(ready[i], want[i]);
}

static void expect_bytes(pc_conn *c, const char *text) {
  void *buf = NULL;
  size_t len = 0;
  assert_rc(0, pc_recv_bytes(c, &buf, &len, PC_NOLIMIT));
  assert_int_equal(len, strlen(text));
  assert_memory_equal(buf, text, len);
  free(buf);
}

static void send_text(pc_conn *c, const char *text) {
  assert_rc(0, pc_send_bytes(c, text, strlen(text)));
}

/* ------------------------------------------------------------ F1: 4 x 10 */

typedef struct sender_arg {
  pc_conn *w;
  int index;
} sender_arg;

/* Child: sends (index, j) for j in 0..9 as pickled tuples, then closes. */
static int send_ten_tuples(void *p) {
  sender_arg *a = p;
  int code = 0;
  for (int j = 0; j < 10 && code == 0; j++) {
    pc_value *t =
        pc_value_tuple_pack(2, pc_value_int(a->index), pc_value_int(j));
    if (t == NULL || pc_send(a->w, t) != 0)
      code = 10 + j;
    pc_value_free(t);
  }
  if (pc_close(a->w) != 0 && code == 0)
    code = 3;
  return code;
}

static void test_wait_four_children_forty_messages_exactly_once(void **state) {
  (void)state;
  enum { CHILDREN = 4, PER_CHILD = 10 };
  pc_conn *readers[CHILDREN];
  pid_t pids[CHILDREN];
  int seen[CHILDREN][PER_CHILD] = {{0}};
  int next[CHILDREN] = {0};
  int fds_before = pc_test_count_fds();

  for (int i = 0; i < CHILDREN; i++) {
    pc_conn *w;
    assert_rc(0, pc_pipe(&readers[i], &w, PC_SIMPLEX));
    sender_arg a = {w, i};
    pids[i] = pc_test_fork(send_ten_tuples, &a);
    assert_rc(0, pc_close(w)); /* else the reader never sees end of stream */
  }

  size_t live = CHILDREN, total = 0;
  while (live > 0) {
    pc_conn *ready[CHILDREN];
    size_t nready = 0;
    int rc = pc_wait(readers, live, READY_BOUND_MS, ready, &nready);
    assert_true(rc > 0); /* 0 would mean a timeout: something was lost */
    assert_int_equal((size_t)rc, nready);
    for (size_t k = 0; k < nready; k++) {
      pc_value *v = NULL;
      rc = pc_recv(ready[k], (void **)&v);
      if (rc == PC_EOF) {
        /* Drop this reader: swap it with the last live one. */
        size_t at = 0;
        while (readers[at] != ready[k])
          at++;
        assert_rc(0, pc_close(readers[at]));
        readers[at] = readers[--live];
        continue;
      }
      assert_rc(0, rc);
      int64_t i, j;
      assert_int_equal(pc_value_len(v), 2);
      assert_rc(0, pc_value_get_int(pc_value_item(v, 0), &i));
      assert_rc(0, pc_value_get_int(pc_value_item(v, 1), &j));
      pc_value_free(v);
      assert_true(i >= 0 && i < CHILDREN && j >= 0 && j < PER_CHILD);
      seen[i][j]++;
      assert_int_equal(j, next[i]); /* one child's messages stay in order */
      next[i]++;
      total++;
    }
  }
  assert_int_equal(total, CHILDREN * PER_CHILD);
  for (int i = 0; i < CHILDREN; i++)
    for (int j = 0; j < PER_CHILD; j++)
      assert_int_equal(seen[i][j], 1);
  for (int i = 0; i < CHILDREN; i++)
    pc_test_wait_ok(pids[i], 30);
  assert_int_equal(pc_test_count_fds(), fds_before);
}

/* ------------------------------------- F2 without sleeps: driven order */

typedef struct driven_arg {
  pc_conn *w;
  pc_test_sync *go;
  int index;
} driven_arg;

/* Child: for each token from the parent, sends one message "index:j"; an
 * eleventh token makes it close (end of stream is ready too, so it must not
 * come before the parent asks for it). */
static int send_on_token(void *p) {
  driven_arg *a = p;
  for (int j = 0; j < 10; j++) {
    char msg[32];
    if (pc_test_sync_wait(a->go, READY_BOUND_MS) != 0)
      return 2;
    int n = snprintf(msg, sizeof msg, "%d:%d", a->index, j);
    if (pc_send_bytes(a->w, msg, (size_t)n) != 0)
      return 3;
  }
  if (pc_test_sync_wait(a->go, READY_BOUND_MS) != 0)
    return 2;
  return pc_close(a->w) == 0 ? 0 : 4;
}

/* The parent wakes one child at a time, in a scrambled order, and pc_wait
 * must report exactly that child's reader -- the deterministic version of
 * CPython's "random delays" variant. */
static void
test_wait_reports_exactly_the_reader_that_got_a_message(void **state) {
  (void)state;
  enum { CHILDREN = 4, PER_CHILD = 10 };
  pc_conn *readers[CHILDREN];
  pc_test_sync go[CHILDREN];
  pid_t pids[CHILDREN];
  int sent[CHILDREN] = {0};

  for (int i = 0; i < CHILDREN; i++) {
    pc_conn *w;
    pc_test_sync_init(&go[i]);
    assert_rc(0, pc_pipe(&readers[i], &w, PC_SIMPLEX));
    driven_arg a = {w, &go[i], i};
    pids[i] = pc_test_fork(send_on_token, &a);
    assert_rc(0, pc_close(w));
  }
  /* Nothing sent yet: a short wait times out with nothing ready. */
  expect_ready(readers, CHILDREN, IDLE_MS, NULL, 0);

  uint32_t rnd = 12345;
  for (int step = 0; step < CHILDREN * PER_CHILD; step++) {
    int i;
    do {
      rnd = rnd * 1103515245u + 12345u;
      i = (int)((rnd >> 16) % CHILDREN);
    } while (sent[i] == PER_CHILD);
    pc_test_sync_post(&go[i]);
    expect_ready(readers, CHILDREN, READY_BOUND_MS, &readers[i], 1);
    char text[32];
    snprintf(text, sizeof text, "%d:%d", i, sent[i]);
    expect_bytes(readers[i], text);
    sent[i]++;
  }
  /* Now every child closes: end of stream is ready. */
  for (int i = 0; i < CHILDREN; i++) {
    pc_test_sync_post(&go[i]);
    pc_test_wait_ok(pids[i], 30);
  }
  expect_ready(readers, CHILDREN, 0, readers, CHILDREN);
  for (int i = 0; i < CHILDREN; i++) {
    void *buf;
    size_t len;
    assert_rc(PC_EOF, pc_recv_bytes(readers[i], &buf, &len, PC_NOLIMIT));
    assert_rc(0, pc_close(readers[i]));
    pc_test_sync_close(&go[i]);
  }
}

/* ------------------------------------------------ F5: idle pair, timeout */

static void
test_wait_idle_pair_times_out_then_only_the_receiver_is_ready(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_conn *both[2] = {a, b};

  /* A correctness bound, not a speed test: a timeout must not return early
   * (1 ms of slack for clock granularity). */
  int64_t t0 = now_us();
  expect_ready(both, 2, IDLE_MS, NULL, 0);
  int64_t elapsed = now_us() - t0;
  assert_true(elapsed >= (IDLE_MS - 1) * 1000);

  /* Zero never blocks. */
  expect_ready(both, 2, 0, NULL, 0);

  /* b sends: only a (its peer) has something to read. */
  assert_rc(0, pc_send(b, pc_value_none()));
  expect_ready(both, 2, READY_BOUND_MS, &a, 1);
  expect_ready(both, 2, 0, &a, 1); /* waiting consumes nothing */
  pc_value *v = NULL;
  assert_rc(0, pc_recv(a, (void **)&v));
  assert_int_equal(pc_value_type(v), PC_TYPE_NONE);
  pc_value_free(v);
  expect_ready(both, 2, 0, NULL, 0);

  /* Both directions at once: both reported, in input order. */
  send_text(a, "to b");
  send_text(b, "to a");
  expect_ready(both, 2, READY_BOUND_MS, both, 2);
  pc_conn *swapped[2] = {b, a};
  expect_ready(swapped, 2, 0, swapped, 2);
  expect_bytes(a, "to a");
  expect_bytes(b, "to b");
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
}

static void test_wait_with_zero_connections_just_times_out(void **state) {
  (void)state;
  pc_conn *ready[1];
  size_t nready = 99;
  assert_rc(0, pc_wait(NULL, 0, 0, ready, &nready));
  assert_int_equal(nready, 0);
  pc_wait_item none[1];
  assert_rc(0, pc_wait_items(none, 0, 0));
}

/* ------------------------------------------- F6: plain descriptors mixed */

static int exit_on_token(void *p) {
  return pc_test_sync_wait(p, READY_BOUND_MS) == 0 ? 0 : 2;
}

static void test_wait_items_pidfd_ready_when_child_exits(void **state) {
  (void)state;
  pc_conn *a, *b;
  pc_test_sync go;
  pc_test_sync_init(&go);
  pid_t pid = pc_test_fork(exit_on_token, &go);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    int err = errno;
    pc_test_sync_post(&go);
    pc_test_wait_ok(pid, 30);
    pc_test_sync_close(&go);
    print_message("pidfd_open failed (%s): this kernel or sandbox has no "
                  "pidfds; the pipe-descriptor test covers plain fds\n",
                  strerror(err));
    skip();
  }
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_wait_item items[3] = {{.conn = a, .fd = -1},
                           {.conn = NULL, .fd = pidfd},
                           {.conn = b, .fd = -1}};

  /* Child alive, nothing sent: nothing is ready. */
  assert_rc(0, pc_wait_items(items, 3, IDLE_MS));
  assert_false(items[0].ready || items[1].ready || items[2].ready);

  /* The child exits: only its pidfd (Python: the process sentinel). */
  pc_test_sync_post(&go);
  assert_rc(1, pc_wait_items(items, 3, READY_BOUND_MS));
  assert_false(items[0].ready);
  assert_true(items[1].ready);
  assert_false(items[2].ready);

  /* a sends: {sentinel, b}; then b sends: {a, sentinel, b}. */
  assert_rc(0, pc_send(a, pc_value_none()));
  assert_rc(2, pc_wait_items(items, 3, READY_BOUND_MS));
  assert_false(items[0].ready);
  assert_true(items[1].ready && items[2].ready);
  assert_rc(0, pc_send(b, pc_value_none()));
  assert_rc(3, pc_wait_items(items, 3, READY_BOUND_MS));
  assert_true(items[0].ready && items[1].ready && items[2].ready);

  pc_test_wait_ok(pid, 30);
  close(pidfd);
  pc_test_sync_close(&go);
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
}

static void
test_wait_items_plain_pipe_ready_on_data_and_on_hangup(void **state) {
  (void)state;
  pc_conn *a, *b;
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_wait_item items[2] = {{.conn = a, .fd = -1}, {.conn = NULL, .fd = fds[0]}};

  assert_rc(0, pc_wait_items(items, 2, IDLE_MS));
  assert_false(items[0].ready || items[1].ready);

  raw_write(fds[1], "x", 1);
  assert_rc(1, pc_wait_items(items, 2, READY_BOUND_MS));
  assert_false(items[0].ready);
  assert_true(items[1].ready);
  /* pc_wait_items never reads a plain descriptor: still ready. */
  assert_rc(1, pc_wait_items(items, 2, 0));
  assert_true(items[1].ready);
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  assert_rc(0, pc_wait_items(items, 2, 0));
  assert_false(items[1].ready);

  /* The writer goes away: hang-up counts as ready. */
  close(fds[1]);
  assert_rc(1, pc_wait_items(items, 2, READY_BOUND_MS));
  assert_true(items[1].ready);

  close(fds[0]);
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
}

/* ------------------------------------------------------------- fairness */

/* A connection whose buffer is full of messages does not hide another one
 * that has a single message: one call reports both, whatever their order. */
static void test_wait_flooded_connection_does_not_hide_another(void **state) {
  (void)state;
  pc_conn *fa, *fb, *qa, *qb;
  assert_rc(0, pc_pipe(&fa, &fb, 0)); /* flood: fb -> fa */
  assert_rc(0, pc_pipe(&qa, &qb, 0)); /* quiet: qb -> qa */

  char msg[64];
  memset(msg, 'f', sizeof msg);
  assert_rc(0, pc_set_timeout(fb, 0));
  size_t flood = 0;
  for (;;) {
    int rc = pc_send_bytes(fb, msg, sizeof msg);
    if (rc == -EAGAIN)
      break;
    assert_rc(0, rc);
    flood++;
  }
  assert_true(flood > 100);
  send_text(qb, "quiet");

  pc_conn *order1[2] = {fa, qa}, *order2[2] = {qa, fa};
  expect_ready(order1, 2, READY_BOUND_MS, order1, 2);
  expect_ready(order2, 2, READY_BOUND_MS, order2, 2);

  /* Serve one message from each ready connection per call: the quiet one is
   * served by the first call, the flooded one keeps being reported. */
  expect_bytes(qa, "quiet");
  for (size_t i = 0; i < flood; i++) {
    expect_ready(order1, 2, READY_BOUND_MS, &fa, 1);
    void *buf;
    size_t len;
    assert_rc(0, pc_recv_bytes(fa, &buf, &len, PC_NOLIMIT));
    assert_int_equal(len, sizeof msg);
    free(buf);
  }
  expect_ready(order1, 2, 0, NULL, 0);
  assert_rc(0, pc_close(fa));
  assert_rc(0, pc_close(fb));
  assert_rc(0, pc_close(qa));
  assert_rc(0, pc_close(qb));
}

typedef struct flood_arg {
  pc_conn *flood_w, *quiet_w;
  pc_test_sync *sent_quiet;
} flood_arg;

enum { FLOOD_MESSAGES = 20000, QUIET_AFTER = 2000 };

/* Child: floods one pipe, and after QUIET_AFTER messages sends one message
 * on the other and tells the parent so; then keeps flooding. */
static int flood_child(void *p) {
  flood_arg *a = p;
  char msg[64];
  memset(msg, 'f', sizeof msg);
  for (int i = 0; i < FLOOD_MESSAGES; i++) {
    if (i == QUIET_AFTER) {
      if (pc_send_bytes(a->quiet_w, "quiet", 5) != 0)
        return 2;
      pc_test_sync_post(a->sent_quiet);
    }
    if (pc_send_bytes(a->flood_w, msg, sizeof msg) != 0)
      return 3;
  }
  if (pc_close(a->quiet_w) != 0 || pc_close(a->flood_w) != 0)
    return 4;
  return 0;
}

/* A child keeps a connection flooded while the parent serves every ready
 * connection once per call: as soon as the quiet message is known to be
 * sent, the very next call reports the quiet connection. */
static void test_wait_flooding_child_does_not_starve_quiet_one(void **state) {
  (void)state;
  pc_conn *fr, *fw, *qr, *qw;
  pc_test_sync sent_quiet;
  pc_test_sync_init(&sent_quiet);
  assert_rc(0, pc_pipe(&fr, &fw, PC_SIMPLEX));
  assert_rc(0, pc_pipe(&qr, &qw, PC_SIMPLEX));
  flood_arg arg = {fw, qw, &sent_quiet};
  pid_t pid = pc_test_fork(flood_child, &arg);
  assert_rc(0, pc_close(fw));
  assert_rc(0, pc_close(qw));

  pc_conn *conns[2] = {fr, qr};
  size_t live = 2;
  bool known_sent = false, got_quiet = false;
  size_t flood_got = 0, both_in_one_call = 0;
  while (live > 0) {
    if (!known_sent && pc_test_sync_wait(&sent_quiet, 0) == 0)
      known_sent = true;
    bool must_report_quiet = known_sent && !got_quiet;
    pc_conn *ready[2];
    size_t nready = 0;
    int rc = pc_wait(conns, live, READY_BOUND_MS, ready, &nready);
    assert_true(rc > 0);
    bool quiet_reported = false;
    if (nready == 2)
      both_in_one_call++;
    for (size_t k = 0; k < nready; k++) {
      void *buf = NULL;
      size_t len = 0;
      rc = pc_recv_bytes(ready[k], &buf, &len, PC_NOLIMIT);
      if (ready[k] == qr)
        quiet_reported = true;
      if (rc == PC_EOF) {
        /* Drop the reader at end of stream (it would stay ready). */
        if (conns[0] == ready[k])
          conns[0] = conns[1];
        live--;
        continue;
      }
      assert_rc(0, rc);
      if (ready[k] == qr) {
        assert_int_equal(len, 5);
        assert_false(got_quiet);
        got_quiet = true;
      } else {
        assert_int_equal(len, 64);
        flood_got++;
      }
      free(buf);
    }
    if (must_report_quiet)
      assert_true(quiet_reported);
  }
  assert_true(got_quiet);
  assert_int_equal(flood_got, FLOOD_MESSAGES);
  assert_true(both_in_one_call > 0);
  pc_test_wait_ok(pid, 60);
  pc_test_sync_close(&sent_quiet);
  assert_rc(0, pc_close(fr));
  assert_rc(0, pc_close(qr));
}

/* ---------------------------------------------------- read-ahead, partial */

/* The library reads ahead: after one receive, the next two messages sit in
 * the connection's buffer and the descriptor is empty. poll(2) cannot see
 * them; pc_wait must. */
static void test_wait_reports_message_held_in_read_ahead(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  send_text(b, "one");
  send_text(b, "two");
  send_text(b, "three");
  expect_ready(&a, 1, READY_BOUND_MS, &a, 1);
  expect_bytes(a, "one");
  /* The premise: the descriptor itself is drained. */
  assert_false(fd_readable_now(pc_fileno(a)));

  expect_ready(&a, 1, 0, &a, 1);
  pc_wait_item item = {.conn = a, .fd = -1};
  assert_rc(1, pc_wait_items(&item, 1, 0));
  assert_true(item.ready);
  expect_bytes(a, "two");
  expect_ready(&a, 1, -1, &a, 1); /* -1 must not block either */
  expect_bytes(a, "three");
  expect_ready(&a, 1, IDLE_MS, NULL, 0);
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
}

/* A frame that has only partly arrived is not ready (a receive would
 * block); it becomes ready when the rest arrives. */
static void test_wait_partial_frame_is_not_ready_until_complete(void **state) {
  (void)state;
  int fds[2];
  pc_conn *a;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  assert_rc(0, pc_conn_from_fd(fds[0], PC_READABLE | PC_WRITABLE, &a));
  const unsigned char head[] = {0, 0, 0, 6, 'h', 'e'};
  raw_write(fds[1], head, sizeof head);
  expect_ready(&a, 1, IDLE_MS, NULL, 0);
  raw_write(fds[1], "llo!", 4);
  expect_ready(&a, 1, READY_BOUND_MS, &a, 1);
  expect_bytes(a, "hello!");

  /* A peer that closes inside a frame: the stream has ended (truncated),
   * which counts as ready, and the receive says so. */
  raw_write(fds[1], head, sizeof head);
  close(fds[1]);
  expect_ready(&a, 1, READY_BOUND_MS, &a, 1);
  void *buf;
  size_t len;
  assert_rc(PC_ETRUNCATED, pc_recv_bytes(a, &buf, &len, PC_NOLIMIT));
  expect_ready(&a, 1, 0, &a, 1);
  assert_rc(0, pc_close(a));
}

/* ---------------------------------------------------------- end of stream */

static void test_wait_end_of_stream_counts_as_ready(void **state) {
  (void)state;
  pc_conn *r, *w, *a, *b;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX));
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_conn *conns[2] = {r, a};
  expect_ready(conns, 2, IDLE_MS, NULL, 0);

  /* A message sent before the close is ready first, then end of stream. */
  send_text(w, "last words");
  assert_rc(0, pc_close(w));
  expect_ready(conns, 2, READY_BOUND_MS, &r, 1);
  expect_bytes(r, "last words");
  expect_ready(conns, 2, READY_BOUND_MS, &r, 1);
  void *buf;
  size_t len;
  assert_rc(PC_EOF, pc_recv_bytes(r, &buf, &len, PC_NOLIMIT));
  /* End of stream is sticky, and so is its readiness (as in Python). */
  expect_ready(conns, 2, -1, &r, 1);

  /* Duplex peer closed: ready too. */
  assert_rc(0, pc_close(b));
  expect_ready(conns, 2, READY_BOUND_MS, conns, 2);
  assert_rc(PC_EOF, pc_recv_bytes(a, &buf, &len, PC_NOLIMIT));
  assert_rc(0, pc_close(r));
  assert_rc(0, pc_close(a));
}

/* ------------------------------------------------------ many connections */

/* More entries than pc_wait keeps on its stack: ready ones come back in
 * input order, the others do not. */
static void
test_wait_many_connections_reports_ready_ones_in_input_order(void **state) {
  (void)state;
  enum { N = 40 };
  pc_conn *r[N], *w[N];
  for (int i = 0; i < N; i++)
    assert_rc(0, pc_pipe(&r[i], &w[i], PC_SIMPLEX));
  expect_ready(r, N, 0, NULL, 0);
  /* Send in reverse order: the report still follows the input order. */
  send_text(w[37], "37");
  send_text(w[20], "20");
  send_text(w[3], "3");
  pc_conn *want[3] = {r[3], r[20], r[37]};
  expect_ready(r, N, READY_BOUND_MS, want, 3);

  pc_wait_item items[N];
  for (int i = 0; i < N; i++)
    items[i] = (pc_wait_item){.conn = r[i], .fd = -1, .ready = true};
  assert_rc(3, pc_wait_items(items, N, 0));
  for (int i = 0; i < N; i++)
    assert_int_equal(items[i].ready, i == 3 || i == 20 || i == 37);
  for (int i = 0; i < N; i++) {
    assert_rc(0, pc_close(r[i]));
    assert_rc(0, pc_close(w[i]));
  }
}

/* ------------------------------------------------------ invalid arguments */

/* ------------------------------------------------------------ spinning */

/* pc_wait keeps polling for as long as its most eager connection's spin,
 * and reports a message that arrives meanwhile on the next round: sent on
 * round 3, seen after exactly 3 rounds, although the other connection does
 * not spin at all. */
static void
test_wait_spins_and_sees_a_message_arriving_meanwhile(void **state) {
  (void)state;
  pc_conn *a, *b, *c, *d, *conns[2], *ready[2];
  size_t nready = 0;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_pipe(&c, &d, PC_SIMPLEX));
  assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
  assert_rc(0, pc_set_spin(c, 0));
  conns[0] = c;
  conns[1] = a;
  pc_test_spin_watch(b, 3, NULL);
  assert_int_equal(pc_wait(conns, 2, READY_BOUND_MS, ready, &nready), 1);
  pc_test_spin_unwatch();
  assert_int_equal(nready, 1);
  assert_ptr_equal(ready[0], a);
  assert_int_equal(pc_test_spin_rounds(), 3);
  pc_close(a);
  pc_close(b);
  pc_close(c);
  pc_close(d);
}

/* No spin when no connection asks for one (spin 0, PC_SHARED ends, plain
 * descriptors), and a spin never outlasts the timeout. */
static void test_wait_spin_only_when_asked_and_within_timeout(void **state) {
  (void)state;
  pc_conn *a, *b, *s1, *s2;
  int fds[2];
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_pipe(&s1, &s2, PC_SHARED));
  assert_int_equal(pipe(fds), 0);
  assert_rc(0, pc_set_spin(a, 0));
  pc_wait_item items[3] = {
      {a, -1, false}, {s1, -1, false}, {NULL, fds[0], false}};
  pc_test_spin_watch(NULL, 0, NULL);
  assert_int_equal(pc_wait_items(items, 3, IDLE_MS), 0);
  assert_int_equal(pc_test_spin_rounds(), 0);
  assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
  int64_t t0 = now_us();
  assert_int_equal(pc_wait_items(items, 3, IDLE_MS), 0);
  int64_t ms = (now_us() - t0) / 1000;
  pc_test_spin_unwatch();
  assert_true(pc_test_spin_rounds() > 0);
  assert_true(ms >= IDLE_MS && ms < 900);
  close(fds[0]);
  close(fds[1]);
  pc_close(a);
  pc_close(b);
  pc_close(s1);
  pc_close(s2);
}

static void test_wait_rejects_invalid_arguments(void **state) {
  (void)state;
  pc_conn *a, *b, *r, *w;
  pc_conn *ready[4];
  size_t nready = 99;
  int fds_before = pc_test_count_fds();
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX));
  send_text(b, "pending"); /* a is ready: errors must still win */

  pc_conn *ok[1] = {a};
  assert_rc(-EINVAL, pc_wait(NULL, 1, 0, ready, &nready));
  assert_rc(-EINVAL, pc_wait(ok, 1, 0, NULL, &nready));
  assert_rc(-EINVAL, pc_wait(ok, 1, 0, ready, NULL));
  assert_rc(-EINVAL, pc_wait(ok, 1, -2, ready, &nready));
  assert_rc(-EINVAL, pc_wait(ok, 1, -1000, ready, &nready));
  pc_conn *with_null[2] = {a, NULL};
  assert_rc(-EINVAL, pc_wait(with_null, 2, 0, ready, &nready));
  pc_conn *with_writer[2] = {a, w}; /* write-only end */
  assert_rc(-EINVAL, pc_wait(with_writer, 2, 0, ready, &nready));
  assert_int_equal(nready, 99); /* outputs untouched on failure */

  pc_wait_item items[2] = {{.conn = a, .fd = -1}, {.conn = NULL, .fd = -1}};
  assert_rc(-EINVAL, pc_wait_items(items, 2, 0)); /* neither conn nor fd */
  assert_rc(-EINVAL, pc_wait_items(NULL, 1, 0));
  items[1] = (pc_wait_item){.conn = w, .fd = -1};
  assert_rc(-EINVAL, pc_wait_items(items, 2, 0));
  items[1] = (pc_wait_item){.conn = r, .fd = -1};
  assert_rc(-EINVAL, pc_wait_items(items, 2, -2));

  /* A read-only end closed by an oversize message (PC_ETOOBIG closes it,
   * as Python does) is a closed entry. */
  send_text(w, "far too long for the limit");
  void *buf;
  size_t len;
  assert_rc(PC_ETOOBIG, pc_recv_bytes(r, &buf, &len, 4));
  assert_true(pc_closed(r));
  pc_conn *with_closed[2] = {a, r};
  assert_rc(-EINVAL, pc_wait(with_closed, 2, 0, ready, &nready));
  items[1] = (pc_wait_item){.conn = r, .fd = -1};
  assert_rc(-EINVAL, pc_wait_items(items, 2, 0));

  /* A duplex end that can no longer receive is write-only. */
  send_text(a, "also too long");
  assert_rc(PC_ETOOBIG, pc_recv_bytes(b, &buf, &len, 4));
  assert_false(pc_readable(b));
  pc_conn *with_unreadable[2] = {a, b};
  assert_rc(-EINVAL, pc_wait(with_unreadable, 2, 0, ready, &nready));
  assert_int_equal(nready, 99);

  /* The valid call still works after all that. */
  expect_ready(ok, 1, 0, ok, 1);
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
  assert_rc(0, pc_close(r));
  assert_rc(0, pc_close(w));
  assert_int_equal(pc_test_count_fds(), fds_before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wait_four_children_forty_messages_exactly_once),
      cmocka_unit_test(test_wait_reports_exactly_the_reader_that_got_a_message),
      cmocka_unit_test(
          test_wait_idle_pair_times_out_then_only_the_receiver_is_ready),
      cmocka_unit_test(test_wait_with_zero_connections_just_times_out),
      cmocka_unit_test(test_wait_items_pidfd_ready_when_child_exits),
      cmocka_unit_test(test_wait_items_plain_pipe_ready_on_data_and_on_hangup),
      cmocka_unit_test(test_wait_flooded_connection_does_not_hide_another),
      cmocka_unit_test(test_wait_flooding_child_does_not_starve_quiet_one),
      cmocka_unit_test(test_wait_reports_message_held_in_read_ahead),
      cmocka_unit_test(test_wait_partial_frame_is_not_ready_until_complete),
      cmocka_unit_test(test_wait_end_of_stream_counts_as_ready),
      cmocka_unit_test(
          test_wait_many_connections_reports_ready_ones_in_input_order),
      cmocka_unit_test(test_wait_spins_and_sees_a_message_arriving_meanwhile),
      cmocka_unit_test(test_wait_spin_only_when_asked_and_within_timeout),
      cmocka_unit_test(test_wait_rejects_invalid_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
