/* SPDX-License-Identifier: MIT */
/* PC_SHARED ends: many processes on one end, and processes that die holding
 * its locks. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../src/internal.h"

/* Per-message counters shared with the children. */
typedef struct board {
  atomic_int seen[20000];
  atomic_int bad;
  atomic_int got;
} board;

static board *board_new(void) {
  board *b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(b != MAP_FAILED);
  memset(b, 0, sizeof *b);
  return b;
}

/* Message i: 8-byte header (index, producer) then a pattern. Sizes mix
 * tiny frames with frames far larger than the pipe's buffer, where an
 * unlocked sender would interleave and an unlocked reader would split. */
static size_t msg_len(uint32_t i) {
  static const size_t sizes[] = {8, 9, 100, 4096, 70000, 300000, 1u << 20};
  return sizes[(i * 2654435761u >> 7) % 7];
}

static unsigned char *make_msg(uint32_t i, size_t *len) {
  *len = msg_len(i);
  unsigned char *m = malloc(*len);
  memcpy(m, &i, 4);
  memset(m + 4, 0, 4);
  pc_test_pattern(m + 8, *len - 8, i);
  return m;
}

static bool check_msg(const unsigned char *m, size_t n, uint32_t *idx) {
  if (n < 8)
    return false;
  memcpy(idx, m, 4);
  return n == msg_len(*idx) && pc_test_pattern_ok(m + 8, n - 8, *idx);
}

typedef struct role {
  pc_conn *use, *drop;
  board *b;
  uint32_t first, count; /* producer: the messages it sends */
} role;

static int consumer(void *p) {
  role *r = p;
  pc_close(r->drop);
  for (;;) {
    void *buf;
    size_t n;
    uint32_t idx;
    int rc = pc_recv_bytes(r->use, &buf, &n, PC_NOLIMIT);
    if (rc == PC_EOF)
      break;
    if (rc != 0)
      return 10;
    if (!check_msg(buf, n, &idx) || idx >= 20000) {
      atomic_fetch_add(&r->b->bad, 1);
    } else {
      atomic_fetch_add(&r->b->seen[idx], 1);
      atomic_fetch_add(&r->b->got, 1);
    }
    free(buf);
  }
  pc_close(r->use);
  return 0;
}

static int producer(void *p) {
  role *r = p;
  pc_close(r->drop);
  for (uint32_t i = r->first; i < r->first + r->count; i++) {
    size_t len;
    unsigned char *m = make_msg(i, &len);
    int rc = pc_send_bytes(r->use, m, len);
    free(m);
    if (rc != 0)
      return 20;
  }
  pc_close(r->use);
  return 0;
}

static void run_many(int nprod, int ncons, uint32_t per_producer) {
  pc_conn *r, *w;
  board *b = board_new();
  pid_t pids[16];
  role roles[16];
  int n = 0;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX | PC_SHARED));
  for (int i = 0; i < ncons; i++) {
    roles[n] = (role){r, w, b, 0, 0};
    pids[n] = pc_test_fork(consumer, &roles[n]);
    n++;
  }
  for (int i = 0; i < nprod; i++) {
    roles[n] = (role){w, r, b, (uint32_t)i * per_producer, per_producer};
    pids[n] = pc_test_fork(producer, &roles[n]);
    n++;
  }
  pc_close(r);
  pc_close(w);
  for (int i = 0; i < n; i++)
    pc_test_wait_ok(pids[i], 120);
  uint32_t total = (uint32_t)nprod * per_producer;
  assert_int_equal(atomic_load(&b->bad), 0);
  assert_int_equal(atomic_load(&b->got), (int)total);
  for (uint32_t i = 0; i < total; i++)
    assert_int_equal(atomic_load(&b->seen[i]), 1);
  munmap(b, sizeof *b);
}

static void test_one_producer_five_consumers_each_message_once(void **state) {
  (void)state;
  run_many(1, 5, 600);
}

static void test_four_producers_four_consumers_mixed_sizes(void **state) {
  (void)state;
  run_many(4, 4, 200);
}

static void test_duplex_shared_end_used_by_children_both_ways(void **state) {
  (void)state;
  /* Children share end `a`: each sends a request and takes a reply; the
   * parent answers on `b`. Replies may reach any child, never half. */
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, PC_SHARED));
  board *bd = board_new();
  pid_t pids[3];
  for (int k = 0; k < 3; k++) {
    fflush(NULL);
    pids[k] = fork();
    assert_true(pids[k] >= 0);
    if (pids[k] == 0) {
      pc_close(b);
      for (uint32_t i = 0; i < 50; i++) {
        uint32_t v = (uint32_t)k * 1000 + i;
        if (pc_send_bytes(a, &v, 4) != 0)
          _exit(30);
        void *buf;
        size_t n;
        uint32_t idx;
        if (pc_recv_bytes(a, &buf, &n, PC_NOLIMIT) != 0)
          _exit(31);
        if (!check_msg(buf, n, &idx))
          _exit(32);
        atomic_fetch_add(&bd->seen[idx], 1);
        free(buf);
      }
      _exit(0);
    }
  }
  pc_close(a);
  for (int i = 0; i < 150; i++) {
    uint32_t v;
    assert_int_equal(pc_recv_bytes_into(b, &v, 4), 4);
    assert_true(v % 1000 < 50 && v / 1000 < 3);
    size_t len;
    unsigned char *m = make_msg((uint32_t)i, &len);
    assert_rc(0, pc_send_bytes(b, m, len));
    free(m);
  }
  for (int k = 0; k < 3; k++)
    pc_test_wait_ok(pids[k], 60);
  for (int i = 0; i < 150; i++)
    assert_int_equal(atomic_load(&bd->seen[i]), 1);
  pc_close(b);
  munmap(bd, sizeof *bd);
}

/* ------------------------------------------------------------ deaths */

static void die(int point) {
  static int armed_point;
  if (point < 0) {
    armed_point = -point;
    return;
  }
  if (point == armed_point)
    raise(SIGKILL);
}

static void send_msg(pc_conn *c, uint32_t i) {
  size_t len;
  unsigned char *m = make_msg(i, &len);
  assert_rc(0, pc_send_bytes(c, m, len));
  free(m);
}

/* A 1 MiB frame: far more than a pipe holds, so a sender is cut off in
 * the middle and a receiver reads it in many pieces. */
static void send_big(pc_conn *c) {
  size_t len = 1u << 20;
  unsigned char *m = calloc(1, len);
  pc_send_bytes(c, m, len);
  free(m);
}

static void *big_then_two(void *p) {
  pc_conn *w = p;
  send_big(w);
  send_msg(w, 1);
  send_msg(w, 2);
  return NULL;
}

static void expect_msg(pc_conn *c, uint32_t want) {
  void *buf;
  size_t n;
  uint32_t idx;
  assert_rc(0, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_true(check_msg(buf, n, &idx));
  assert_int_equal(idx, want);
  free(buf);
}

static void
test_receiver_killed_mid_message_loses_only_that_message(void **state) {
  (void)state;
  pc_conn *r, *w;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX | PC_SHARED));
  /* Message 5 is 1 MiB; the child dies after reading part of it. */
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    pc_close(w);
    die(-PC__SHOOK_RX_PARTIAL);
    pc__shared_hook = die;
    void *buf;
    size_t n;
    pc_recv_bytes(r, &buf, &n, PC_NOLIMIT);
    _exit(40); /* not reached: killed inside */
  }
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, big_then_two, w), 0);
  int st = pc_test_wait(pid, 30);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  /* The survivor skips the dead one's leftovers and is in sync. */
  expect_msg(r, 1);
  expect_msg(r, 2);
  pthread_join(t, NULL);
  pc_close(r);
  pc_close(w);
}

static void test_sender_killed_mid_frame_next_sender_repairs(void **state) {
  (void)state;
  pc_conn *r, *w;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX | PC_SHARED));
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    pc_close(r);
    die(-PC__SHOOK_TX_PARTIAL);
    pc__shared_hook = die;
    send_big(w);
    _exit(41);
  }
  /* Nobody reads yet: the child fills the pipe, is cut off, dies. */
  int st = pc_test_wait(pid, 30);
  assert_true(WIFSIGNALED(st));
  /* This process's next send completes the dead frame with padding while
   * a reader drains it. */
  pid_t reader;
  fflush(NULL);
  reader = fork();
  assert_true(reader >= 0);
  if (reader == 0) {
    pc_close(w);
    void *buf;
    size_t n;
    uint32_t idx;
    if (pc_recv_bytes(r, &buf, &n, PC_NOLIMIT) != PC_EPEERDIED)
      _exit(42);
    if (pc_recv_bytes(r, &buf, &n, PC_NOLIMIT) != 0 ||
        !check_msg(buf, n, &idx) || idx != 3)
      _exit(43);
    free(buf);
    _exit(pc_recv_bytes(r, &buf, &n, PC_NOLIMIT) == PC_EOF ? 0 : 44);
  }
  pc_close(r);
  send_msg(w, 3);
  pc_close(w);
  pc_test_wait_ok(reader, 30);
}

static void
test_receiver_waiting_on_dead_sender_is_told_in_bounded_time(void **state) {
  (void)state;
  pc_conn *r, *w;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX | PC_SHARED));
  pc_test_sync started;
  pc_test_sync_init(&started);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    pc_close(r);
    die(-PC__SHOOK_TX_PARTIAL);
    pc__shared_hook = die;
    send_big(w);
    _exit(45);
  }
  /* This process still holds the write end, so no end of stream comes:
   * only the dead-owner check can end the wait. */
  int64_t t0 = pc__now_ns();
  void *buf;
  size_t n;
  assert_rc(PC_EPEERDIED, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  int64_t ms = (pc__now_ns() - t0) / 1000000;
  int st = pc_test_wait(pid, 30);
  assert_true(WIFSIGNALED(st));
  print_message("receiver learned of the dead sender after %lld ms\n",
                (long long)ms);
  assert_true(ms < 20000); /* a bound, not a performance figure */
  /* The stream is in sync again. */
  send_msg(w, 2);
  expect_msg(r, 2);
  pc_test_sync_close(&started);
  pc_close(r);
  pc_close(w);
}

static void
test_death_inside_the_system_call_marks_stream_broken(void **state) {
  (void)state;
  pc_conn *r, *w;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX | PC_SHARED));
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    pc_close(r);
    die(-PC__SHOOK_TX_INFLIGHT);
    pc__shared_hook = die;
    send_msg(w, 1);
    _exit(46);
  }
  int st = pc_test_wait(pid, 30);
  assert_true(WIFSIGNALED(st));
  /* How much of the write happened is unknowable: a clear error, for
   * senders and receivers alike, never a corrupt message. */
  size_t len;
  unsigned char *m = make_msg(2, &len);
  assert_rc(PC_EPEERDIED, pc_send_bytes(w, m, len));
  free(m);
  void *buf;
  size_t n;
  assert_rc(PC_EPEERDIED, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_poll(r, 0), 1);
  pc_close(r);
  pc_close(w);
}

static void
test_too_short_buffer_leaves_message_for_another_receiver(void **state) {
  (void)state;
  pc_conn *r, *w;
  char small[4];
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX | PC_SHARED));
  assert_rc(0, pc_send_bytes(w, "0123456789", 10));
  assert_rc(PC_ETOOSHORT, pc_recv_bytes_into(r, small, sizeof small));
  assert_int_equal(pc_next_size(r), 10);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char big[16];
    _exit(pc_recv_bytes_into(r, big, sizeof big) == 10 &&
                  memcmp(big, "0123456789", 10) == 0
              ? 0
              : 47);
  }
  pc_test_wait_ok(pid, 30);
  assert_rc(0, pc_set_timeout(r, 0));
  assert_rc(-EAGAIN, pc_recv_bytes_into(r, small, sizeof small));
  pc_close(r);
  pc_close(w);
}

static void test_shared_end_reports_eof_and_timeouts(void **state) {
  (void)state;
  pc_conn *r, *w;
  void *buf;
  size_t n;
  assert_rc(0, pc_pipe(&r, &w, PC_SHARED));
  assert_rc(0, pc_set_timeout(r, 10));
  assert_rc(-ETIMEDOUT, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_poll(r, 0), 0);
  assert_rc(0, pc_send_bytes(w, "x", 1));
  assert_int_equal(pc_poll(r, 0), 1);
  assert_rc(0, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  assert_int_equal(n, 1);
  free(buf);
  pc_close(w);
  assert_rc(PC_EOF, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  assert_rc(PC_EOF, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  pc_close(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_producer_five_consumers_each_message_once),
      cmocka_unit_test(test_four_producers_four_consumers_mixed_sizes),
      cmocka_unit_test(test_duplex_shared_end_used_by_children_both_ways),
      cmocka_unit_test(
          test_receiver_killed_mid_message_loses_only_that_message),
      cmocka_unit_test(test_sender_killed_mid_frame_next_sender_repairs),
      cmocka_unit_test(
          test_receiver_waiting_on_dead_sender_is_told_in_bounded_time),
      cmocka_unit_test(test_death_inside_the_system_call_marks_stream_broken),
      cmocka_unit_test(
          test_too_short_buffer_leaves_message_for_another_receiver),
      cmocka_unit_test(test_shared_end_reports_eof_and_timeouts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
