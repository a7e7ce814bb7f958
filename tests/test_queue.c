/* SPDX-License-Identifier: MIT */
/* pc_queue: API, blocking and timeouts, close, JoinableQueue, processes
 * that exit or are killed (SIGKILL) at exact points of a put or a get. */
#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/internal.h"

/* ------------------------------------------------------------ helpers */

/* A forked child dies with the test process, so that a failing test never
 * leaves children behind (blocked in the queue, holding ctest's pipes). */
static void die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }

static int64_t ms_now(void) { return pc__now_ns() / 1000000; }

/* Waits (bounded) until pid sleeps in a futex system call: blocked in a
 * queue wait. Reads /proc/<pid>/syscall, which names the system call a
 * blocked task is in. */
static void wait_blocked_in_futex(pid_t pid) {
  char path[64], line[256];
  int64_t end = ms_now() + 5000;
  bool blocked = false;
  snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
  while (!blocked && ms_now() < end) {
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      if (fgets(line, sizeof line, f) != NULL)
        blocked = atol(line) == SYS_futex;
      fclose(f);
    }
    if (!blocked)
      sched_yield();
  }
  assert_true(blocked);
}

static void put_str(pc_queue *q, const char *s) {
  assert_rc(0, pc_queue_put_bytes(q, s, strlen(s), 0));
}

/* Gets one item (bounded) and asserts it equals s. */
static void get_str(pc_queue *q, const char *s) {
  void *buf = NULL;
  size_t len = 0;
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 5000));
  assert_int_equal(len, strlen(s));
  assert_memory_equal(buf, s, len);
  free(buf);
}

static void assert_qsize(pc_queue *q, ssize_t n) {
  assert_int_equal(pc_queue_qsize(q), n);
}

/* A tiny serializer for the tests: NUL-terminated strings. Encoding a
 * string that starts with '!' fails; decoding bytes that start with '?'
 * fails. */
static int str_encode(void *ctx, const void *obj, pc_buffer *out) {
  const char *s = obj;
  (void)ctx;
  return s[0] == '!' ? PC_EENCODE : pc_buffer_append(out, s, strlen(s));
}

static int str_decode(void *ctx, const void *data, size_t len, void **obj) {
  char *s;
  (void)ctx;
  if (len > 0 && ((const char *)data)[0] == '?')
    return PC_EPROTO;
  s = malloc(len + 1);
  if (s == NULL)
    return -ENOMEM;
  memcpy(s, data, len);
  s[len] = '\0';
  *obj = s;
  return 0;
}

static void str_release(void *ctx, void *obj) {
  (void)ctx;
  free(obj);
}

static const pc_serializer str_serializer = {"str", str_encode, str_decode,
                                             str_release};

static pc_queue *new_queue(size_t maxsize, size_t capacity) {
  pc_queue *q = NULL;
  pc_queue_options o = {maxsize, capacity, NULL, NULL};
  assert_rc(0, pc_queue_new_ex(&q, &o));
  assert_non_null(q);
  return q;
}

/* ------------------------------------------------------------ API basics */

static void test_new_and_free_arguments(void **state) {
  pc_queue *q = (pc_queue *)&q; /* must stay untouched on failure */
  pc_queue *before = q;
  pc_serializer half = {"half", str_encode, NULL, str_release};
  pc_queue_options o = {0, 0, &half, NULL};
  (void)state;
  assert_rc(-EINVAL, pc_queue_new(NULL, 0));
  assert_rc(-EINVAL, pc_queue_new_ex(NULL, NULL));
  assert_rc(-EINVAL, pc_queue_new_ex(&q, &o));
  assert_ptr_equal(q, before);
  o.serializer = NULL;
  o.capacity = SIZE_MAX - 10;
  assert_rc(-EINVAL, pc_queue_new_ex(&q, &o));
  o.capacity = (size_t)1 << 60; /* more address space than exists */
  int rc = pc_queue_new_ex(&q, &o);
  if (!(pc_test_valgrind() && rc == -EINVAL)) /* valgrind's mmap says so */
    assert_rc(-ENOMEM, rc);
  assert_ptr_equal(q, before);
  pc_queue_free(NULL);

  q = NULL;
  assert_rc(0, pc_queue_new(&q, 0));
  assert_non_null(q);
  assert_qsize(q, 0);
  pc_queue_free(q);
  q = NULL;
  assert_rc(0, pc_queue_new_ex(&q, NULL));
  pc_queue_free(q);
}

/* The queue's own codes have names and descriptions. */
static void test_queue_error_codes_are_described(void **state) {
  (void)state;
  assert_string_equal(pc_errname(PC_EFULL), "PC_EFULL");
  assert_string_equal(pc_errname(PC_EEMPTY), "PC_EEMPTY");
  assert_string_equal(pc_errname(PC_ETASKDONE), "PC_ETASKDONE");
  assert_string_equal(pc_strerror(PC_EFULL), "queue is full");
  assert_string_equal(pc_strerror(PC_EEMPTY), "queue is empty");
  assert_string_not_equal(pc_strerror(PC_ETASKDONE), "unknown error");
  assert_string_not_equal(pc_strerror(PC_ECLOSED), "unknown error");
  assert_string_not_equal(pc_strerror(PC_ETOOBIG), "unknown error");
}

static void test_no_descriptor_is_created(void **state) {
  int fds = pc_test_count_fds();
  pc_queue *q = NULL;
  (void)state;
  assert_rc(0, pc_queue_new(&q, 0));
  assert_int_equal(pc_test_count_fds(), fds);
  pc_queue_free(q);
  assert_int_equal(pc_test_count_fds(), fds);
}

static void test_null_arguments_are_einval(void **state) {
  pc_queue *q = new_queue(0, 0);
  void *buf = NULL;
  size_t len = 0;
  (void)state;
  assert_rc(-EINVAL, pc_queue_put_bytes(NULL, "x", 1, 0));
  assert_rc(-EINVAL, pc_queue_put_bytes(q, NULL, 1, 0));
  assert_rc(-EINVAL, pc_queue_get_bytes(NULL, &buf, &len, 0));
  assert_rc(-EINVAL, pc_queue_get_bytes(q, NULL, &len, 0));
  assert_rc(-EINVAL, pc_queue_get_bytes(q, &buf, NULL, 0));
  assert_rc(-EINVAL, pc_queue_put(NULL, "x", 0));
  assert_rc(-EINVAL, pc_queue_get(NULL, &buf, 0));
  assert_rc(-EINVAL, pc_queue_get(q, NULL, 0));
  assert_rc(-EINVAL, pc_queue_qsize(NULL));
  assert_rc(-EINVAL, pc_queue_empty(NULL));
  assert_rc(-EINVAL, pc_queue_full(NULL));
  assert_rc(-EINVAL, pc_queue_close(NULL));
  assert_rc(-EINVAL, pc_queue_task_done(NULL));
  assert_rc(-EINVAL, pc_queue_join(NULL, 0));
  /* NULL with length 0 is an empty item. */
  assert_rc(0, pc_queue_put_bytes(q, NULL, 0, 0));
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
  assert_non_null(buf);
  assert_int_equal(len, 0);
  free(buf);
  pc_queue_free(q);
}

static void test_round_trip_bytes_and_empty_item(void **state) {
  pc_queue *q = new_queue(0, 0);
  unsigned char bin[300];
  void *buf = NULL;
  size_t len = 99;
  (void)state;
  pc_test_pattern(bin, sizeof bin, 7);
  bin[0] = 0;
  assert_rc(0, pc_queue_put_bytes(q, bin, sizeof bin, -1));
  assert_rc(0, pc_queue_put_bytes(q, "", 0, -1));
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, -1));
  assert_int_equal(len, sizeof bin);
  assert_memory_equal(buf, bin, sizeof bin);
  free(buf);
  buf = NULL;
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, -1));
  assert_non_null(buf); /* never NULL, even for an empty item */
  assert_int_equal(len, 0);
  free(buf);
  pc_queue_free(q);
}

/* Python: qsize() 0, 1, 2, 1, 0; empty() and full(). */
static void test_fifo_qsize_empty_full(void **state) {
  pc_queue *q = new_queue(2, 0);
  (void)state;
  assert_qsize(q, 0);
  assert_int_equal(pc_queue_empty(q), 1);
  assert_int_equal(pc_queue_full(q), 0);
  put_str(q, "one");
  assert_qsize(q, 1);
  assert_int_equal(pc_queue_empty(q), 0);
  assert_int_equal(pc_queue_full(q), 0);
  put_str(q, "two");
  assert_qsize(q, 2);
  assert_int_equal(pc_queue_full(q), 1);
  get_str(q, "one");
  assert_qsize(q, 1);
  assert_int_equal(pc_queue_full(q), 0);
  get_str(q, "two");
  assert_qsize(q, 0);
  assert_int_equal(pc_queue_empty(q), 1);
  pc_queue_free(q);
}

/* Python's Queue(6) test: full at once for non-blocking puts, after about
 * the timeout for blocking ones; nothing is put either way. */
static void test_put_full_nonblocking_and_timeout(void **state) {
  pc_queue *q = new_queue(6, 0);
  int64_t t0;
  (void)state;
  for (int i = 0; i < 6; i++)
    assert_rc(0, pc_queue_put_bytes(q, &i, sizeof i, i % 2 ? -1 : 0));
  assert_int_equal(pc_queue_full(q), 1);
  t0 = ms_now();
  assert_rc(PC_EFULL, pc_queue_put_bytes(q, "7", 1, 0));
  assert_true(ms_now() - t0 < 100);
  t0 = ms_now();
  assert_rc(PC_EFULL, pc_queue_put_bytes(q, "7", 1, 150));
  assert_true(ms_now() - t0 >= 150);
  assert_true(ms_now() - t0 < 3000);
  assert_qsize(q, 6);
  for (int i = 0; i < 6; i++) {
    void *buf = NULL;
    size_t len = 0;
    assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
    assert_int_equal(len, sizeof i);
    assert_memory_equal(buf, &i, sizeof i);
    free(buf);
  }
  pc_queue_free(q);
}

static void test_get_empty_nonblocking_and_timeout(void **state) {
  pc_queue *q = new_queue(0, 0);
  void *buf = (void *)&buf;
  size_t len = 42;
  int64_t t0;
  (void)state;
  t0 = ms_now();
  assert_rc(PC_EEMPTY, pc_queue_get_bytes(q, &buf, &len, 0));
  assert_true(ms_now() - t0 < 100);
  t0 = ms_now();
  assert_rc(PC_EEMPTY, pc_queue_get_bytes(q, &buf, &len, 200));
  assert_true(ms_now() - t0 >= 200);
  assert_true(ms_now() - t0 < 3000);
  /* Outputs are untouched on failure. */
  assert_ptr_equal(buf, (void *)&buf);
  assert_int_equal(len, 42);
  pc_queue_free(q);
}

/* An item that can never fit is PC_ETOOBIG; one that exactly fills the
 * ring (8-byte length + payload) is accepted. */
static void test_item_larger_than_capacity_is_etoobig(void **state) {
  size_t page = pc__page_size();
  pc_queue *q = new_queue(0, 1); /* rounded up to one page */
  unsigned char *big = malloc(page);
  void *buf = NULL;
  size_t len = 0;
  (void)state;
  assert_non_null(big);
  pc_test_pattern(big, page, 3);
  assert_rc(PC_ETOOBIG, pc_queue_put_bytes(q, big, page - 7, -1));
  assert_rc(PC_ETOOBIG, pc_queue_put_bytes(q, big, page, 0));
  assert_rc(PC_ETOOBIG, pc_queue_put_bytes(q, big, SIZE_MAX, 0));
  assert_qsize(q, 0);
  assert_rc(0, pc_queue_put_bytes(q, big, page - 8, 0));
  assert_int_equal(pc_queue_full(q), 0); /* full() counts items */
  assert_rc(PC_EFULL, pc_queue_put_bytes(q, "", 0, 0)); /* no byte left */
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
  assert_int_equal(len, page - 8);
  assert_true(pc_test_pattern_ok(buf, len, 3));
  free(buf);
  free(big);
  pc_queue_free(q);
}

/* The ring's bytes bound the queue as well as maxsize: a put that does not
 * fit waits or fails with PC_EFULL, and fits again once an item left. */
static void test_byte_capacity_bounds_the_queue(void **state) {
  size_t page = pc__page_size();
  size_t half = page / 2 - 48;
  pc_queue *q = new_queue(0, page);
  char *item = calloc(1, half);
  void *buf = NULL;
  size_t len = 0;
  (void)state;
  assert_non_null(item);
  assert_rc(0, pc_queue_put_bytes(q, item, half, 0));
  assert_rc(0, pc_queue_put_bytes(q, item, half, 0));
  assert_rc(PC_EFULL, pc_queue_put_bytes(q, item, 100, 0));
  assert_rc(PC_EFULL, pc_queue_put_bytes(q, item, 100, 50));
  assert_rc(0, pc_queue_put_bytes(q, item, 16, 0)); /* a small one fits */
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
  free(buf);
  assert_rc(0, pc_queue_put_bytes(q, item, 100, 0));
  assert_qsize(q, 3);
  free(item);
  pc_queue_free(q);
}

/* Records wrap around the end of the ring, payloads split in two; every
 * item comes out intact and in order. */
static void test_wraparound_keeps_items_intact(void **state) {
  size_t page = pc__page_size();
  pc_queue *q = new_queue(0, page);
  unsigned char item[1000];
  uint32_t next_put = 0, next_get = 0;
  (void)state;
  /* Keep two items in the queue so it never empties (an empty queue
   * restarts at the beginning of the ring). */
  for (int round = 0; round < 200; round++) {
    while (next_put - next_get < 3) {
      size_t n = 1 + (next_put * 37) % 997;
      pc_test_pattern(item, n, next_put);
      if (pc_queue_put_bytes(q, item, n, 0) != 0)
        break;
      next_put++;
    }
    void *buf = NULL;
    size_t len = 0;
    assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
    assert_int_equal(len, 1 + (next_get * 37) % 997);
    assert_true(pc_test_pattern_ok(buf, len, next_get));
    free(buf);
    next_get++;
  }
  assert_true(next_get >= 200);
  pc_queue_free(q);
}

/* Resident shared memory of this process, in KiB (RssShmem). */
static long rss_shmem_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  assert_non_null(f);
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "RssShmem:", 9) == 0)
      kib = atol(line + 9);
  fclose(f);
  return kib;
}

/* Memory follows the data: an 8 MiB item makes 8 MiB resident, and taking
 * it out gives the pages back (the 64 MiB ring itself costs nothing). */
static void test_big_item_pages_are_given_back(void **state) {
  size_t big = (size_t)8 << 20;
  unsigned char *item = malloc(big);
  pc_queue *q = new_queue(0, 0);
  long before = rss_shmem_kib(), during, after;
  void *buf = NULL;
  size_t len = 0;
  (void)state;
  assert_non_null(item);
  pc_test_pattern(item, big, 8);
  assert_rc(0, pc_queue_put_bytes(q, item, big, 0));
  during = rss_shmem_kib();
  assert_true(during - before >= 8 * 1024 - 8);
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
  assert_true(pc_test_pattern_ok(buf, len, 8));
  after = rss_shmem_kib();
  assert_true(after - before < 256);
  free(buf);
  free(item);
  pc_queue_free(q);
}

/* ------------------------------------------------------------ blocking */

struct child_arg {
  pc_queue *q;
  const char *expect;
  int expect_rc;
};

static int child_get_expect(void *p) {
  die_with_parent();
  struct child_arg *a = p;
  void *buf = NULL;
  size_t len = 0;
  int rc = pc_queue_get_bytes(a->q, &buf, &len, -1);
  if (rc != a->expect_rc)
    return 1;
  if (rc == 0 && (len != strlen(a->expect) || memcmp(buf, a->expect, len)))
    return 2;
  free(buf);
  return 0;
}

static int child_put_expect(void *p) {
  die_with_parent();
  struct child_arg *a = p;
  int rc = pc_queue_put_bytes(a->q, a->expect, strlen(a->expect), -1);
  return rc == a->expect_rc ? 0 : 1;
}

static void test_blocked_get_is_woken_by_put(void **state) {
  pc_queue *q = new_queue(0, 0);
  struct child_arg a = {q, "wake up", 0};
  pid_t pid;
  (void)state;
  pid = pc_test_fork(child_get_expect, &a);
  wait_blocked_in_futex(pid);
  put_str(q, "wake up");
  pc_test_wait_ok(pid, 10);
  assert_qsize(q, 0);
  pc_queue_free(q);
}

static void test_blocked_put_is_woken_by_get(void **state) {
  pc_queue *q = new_queue(1, 0);
  struct child_arg a = {q, "second", 0};
  pid_t pid;
  (void)state;
  put_str(q, "first");
  pid = pc_test_fork(child_put_expect, &a);
  wait_blocked_in_futex(pid);
  assert_qsize(q, 1);
  get_str(q, "first");
  pc_test_wait_ok(pid, 10);
  get_str(q, "second");
  pc_queue_free(q);
}

/* A bounded get waits for an item that arrives in time. */
static void test_timed_get_succeeds_when_item_arrives(void **state) {
  pc_queue *q = new_queue(0, 0);
  pid_t pid;
  void *buf = NULL;
  size_t len = 0;
  pc_test_sync sync;
  (void)state;
  pc_test_sync_init(&sync);
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    die_with_parent();
    int ok = pc_test_sync_wait(&sync, 5000) == 0 &&
             pc_queue_put_bytes(q, "late", 4, -1) == 0;
    _exit(ok ? 0 : 1);
  }
  pc_test_sync_post(&sync);
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 10000));
  assert_int_equal(len, 4);
  assert_memory_equal(buf, "late", 4);
  free(buf);
  pc_test_wait_ok(pid, 10);
  pc_test_sync_close(&sync);
  pc_queue_free(q);
}

/* ------------------------------------------------------------ close */

static void test_close_refuses_puts_and_drains_gets(void **state) {
  pc_queue *q = new_queue(0, 0);
  void *buf = NULL;
  size_t len = 0;
  (void)state;
  put_str(q, "a");
  put_str(q, "b");
  assert_rc(0, pc_queue_close(q));
  assert_rc(0, pc_queue_close(q)); /* idempotent */
  assert_rc(PC_ECLOSED, pc_queue_put_bytes(q, "c", 1, -1));
  assert_qsize(q, 2);
  get_str(q, "a");
  get_str(q, "b");
  /* Empty and closed: no wait, even with -1. */
  assert_rc(PC_ECLOSED, pc_queue_get_bytes(q, &buf, &len, -1));
  assert_rc(PC_ECLOSED, pc_queue_get_bytes(q, &buf, &len, 0));
  assert_int_equal(pc_queue_empty(q), 1);
  /* task_done and join keep working. */
  assert_rc(0, pc_queue_task_done(q));
  assert_rc(0, pc_queue_task_done(q));
  assert_rc(0, pc_queue_join(q, 0));
  pc_queue_free(q);
}

static void test_close_wakes_blocked_waiters(void **state) {
  pc_queue *q = new_queue(1, 0);
  pc_queue *full = new_queue(1, 0);
  struct child_arg g = {q, "", PC_ECLOSED};
  struct child_arg p = {full, "x", PC_ECLOSED};
  pid_t getter, putter;
  (void)state;
  put_str(full, "occupied");
  getter = pc_test_fork(child_get_expect, &g);
  putter = pc_test_fork(child_put_expect, &p);
  wait_blocked_in_futex(getter);
  wait_blocked_in_futex(putter);
  assert_rc(0, pc_queue_close(q));
  assert_rc(0, pc_queue_close(full));
  pc_test_wait_ok(getter, 10);
  pc_test_wait_ok(putter, 10);
  get_str(full, "occupied"); /* items in a closed queue stay deliverable */
  pc_queue_free(q);
  pc_queue_free(full);
}

/* ------------------------------------------------------------ JoinableQueue */

static void test_task_done_and_join(void **state) {
  pc_queue *q = new_queue(0, 0);
  (void)state;
  assert_rc(PC_ETASKDONE, pc_queue_task_done(q));
  assert_rc(0, pc_queue_join(q, 0));
  assert_rc(0, pc_queue_join(q, -1));
  put_str(q, "x");
  put_str(q, "y");
  assert_rc(-EAGAIN, pc_queue_join(q, 0));
  assert_rc(-ETIMEDOUT, pc_queue_join(q, 50));
  get_str(q, "x");
  assert_rc(0, pc_queue_task_done(q));
  assert_rc(-EAGAIN, pc_queue_join(q, 0));
  get_str(q, "y");
  assert_rc(0, pc_queue_task_done(q));
  assert_rc(0, pc_queue_join(q, 0));
  assert_rc(PC_ETASKDONE, pc_queue_task_done(q));
  assert_rc(0, pc_queue_join(q, 0));
  pc_queue_free(q);
}

static int worker_get_task_done(void *p) {
  die_with_parent();
  pc_queue *q = p;
  for (;;) {
    void *buf = NULL;
    size_t len = 0;
    int rc = pc_queue_get_bytes(q, &buf, &len, -1);
    if (rc == PC_ECLOSED)
      return 0;
    if (rc != 0)
      return 1;
    free(buf);
    if (pc_queue_task_done(q) != 0)
      return 2;
  }
}

/* Python: JoinableQueue with 4 workers; join() returns after all
 * task_done() calls, which are made in other processes. */
static void test_join_across_processes(void **state) {
  pc_queue *q = new_queue(0, 0);
  pid_t pids[4];
  (void)state;
  for (int i = 0; i < 4; i++)
    pids[i] = pc_test_fork(worker_get_task_done, q);
  for (int i = 0; i < 1000; i++)
    assert_rc(0, pc_queue_put_bytes(q, &i, sizeof i, -1));
  assert_rc(0, pc_queue_join(q, 10000));
  assert_qsize(q, 0);
  assert_rc(PC_ETASKDONE, pc_queue_task_done(q));
  assert_rc(0, pc_queue_close(q));
  for (int i = 0; i < 4; i++)
    pc_test_wait_ok(pids[i], 10);
  pc_queue_free(q);
}

static int child_join(void *p) {
  die_with_parent();
  return pc_queue_join(p, -1) == 0 ? 0 : 1;
}

static void test_blocked_join_is_woken_by_task_done(void **state) {
  pc_queue *q = new_queue(0, 0);
  pid_t pid;
  (void)state;
  put_str(q, "job");
  pid = pc_test_fork(child_join, q);
  wait_blocked_in_futex(pid);
  get_str(q, "job");
  assert_rc(0, pc_queue_task_done(q));
  pc_test_wait_ok(pid, 10);
  pc_queue_free(q);
}

/* ------------------------------------------------------------ processes */

#define BIG_LEN ((size_t)10 << 20)

static int producer_then_exit(void *p) {
  die_with_parent();
  pc_queue *q = p;
  unsigned char *big = malloc(BIG_LEN);
  if (big == NULL)
    return 3;
  for (uint32_t i = 0; i < 100; i++)
    if (pc_queue_put_bytes(q, &i, sizeof i, 0) != 0)
      return 1;
  pc_test_pattern(big, BIG_LEN, 10);
  if (pc_queue_put_bytes(q, big, BIG_LEN, 0) != 0)
    return 2;
  free(big);
  pc_queue_free(q);
  return 0; /* exits at once: no feeder to flush, nothing to join */
}

/* The producer exits before anybody reads: every item, including a 10 MiB
 * one, is still there for the parent. Python deadlocks at the child's
 * exit in the same situation (its feeder thread waits for a reader). */
static void test_items_survive_the_producer_exiting(void **state) {
  pc_queue *q = new_queue(0, 0);
  pid_t pid;
  void *buf = NULL;
  size_t len = 0;
  (void)state;
  pid = pc_test_fork(producer_then_exit, q);
  pc_test_wait_ok(pid, 10); /* joined before any get */
  assert_qsize(q, 101);
  for (uint32_t i = 0; i < 100; i++) {
    assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
    assert_int_equal(len, sizeof i);
    assert_memory_equal(buf, &i, sizeof i);
    free(buf);
  }
  assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
  assert_int_equal(len, BIG_LEN);
  assert_true(pc_test_pattern_ok(buf, len, 10));
  free(buf);
  assert_rc(PC_EEMPTY, pc_queue_get_bytes(q, &buf, &len, 0));
  pc_queue_free(q);
}

/* Python: items put before a fork and by the child arrive in order. A
 * child may free its handle; the queue lives on in the parent. */
static int child_sees_parent_items(void *p) {
  die_with_parent();
  pc_queue *q = p;
  void *buf = NULL;
  size_t len = 0;
  for (uint32_t i = 0; i < 10; i++) {
    if (pc_queue_get_bytes(q, &buf, &len, 0) != 0 || len != sizeof i ||
        memcmp(buf, &i, sizeof i) != 0)
      return 1;
    free(buf);
  }
  for (uint32_t i = 10; i < 20; i++)
    if (pc_queue_put_bytes(q, &i, sizeof i, 0) != 0)
      return 2;
  pc_queue_free(q);
  return 0;
}

static void test_items_cross_fork_both_ways(void **state) {
  pc_queue *q = new_queue(0, 0);
  pid_t pid;
  (void)state;
  for (uint32_t i = 0; i < 10; i++)
    assert_rc(0, pc_queue_put_bytes(q, &i, sizeof i, 0));
  pid = pc_test_fork(child_sees_parent_items, q);
  pc_test_wait_ok(pid, 10);
  for (uint32_t i = 10; i < 20; i++) {
    void *buf = NULL;
    size_t len = 0;
    assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 0));
    assert_memory_equal(buf, &i, sizeof i);
    free(buf);
  }
  assert_rc(1, pc_queue_empty(q));
  pc_queue_free(q);
}

#define ORDER_PRODUCERS 4
#define ORDER_ITEMS 5000

struct order_arg {
  pc_queue *q;
  uint32_t id;
};

static int ordered_producer(void *p) {
  die_with_parent();
  struct order_arg *a = p;
  for (uint32_t i = 0; i < ORDER_ITEMS; i++) {
    uint32_t item[2] = {a->id, i};
    if (pc_queue_put_bytes(a->q, item, sizeof item, -1) != 0)
      return 1;
  }
  return 0;
}

/* Several producers, one consumer: each producer's items arrive in the
 * order it put them, every one exactly once. maxsize 64 makes producers
 * block on a full queue too. */
static void test_per_producer_order(void **state) {
  pc_queue *q = new_queue(64, 0);
  struct order_arg args[ORDER_PRODUCERS];
  pid_t pids[ORDER_PRODUCERS];
  uint32_t next[ORDER_PRODUCERS] = {0};
  (void)state;
  for (uint32_t p = 0; p < ORDER_PRODUCERS; p++) {
    args[p].q = q;
    args[p].id = p;
    pids[p] = pc_test_fork(ordered_producer, &args[p]);
  }
  for (int n = 0; n < ORDER_PRODUCERS * ORDER_ITEMS; n++) {
    uint32_t item[2];
    void *buf = NULL;
    size_t len = 0;
    assert_rc(0, pc_queue_get_bytes(q, &buf, &len, 10000));
    assert_int_equal(len, sizeof item);
    memcpy(item, buf, sizeof item);
    free(buf);
    assert_true(item[0] < ORDER_PRODUCERS);
    assert_int_equal(item[1], next[item[0]]);
    next[item[0]]++;
  }
  for (int p = 0; p < ORDER_PRODUCERS; p++)
    pc_test_wait_ok(pids[p], 10);
  assert_rc(1, pc_queue_empty(q));
  pc_queue_free(q);
}

/* ------------------------------------------------------------ objects */

static void test_objects_through_a_serializer(void **state) {
  pc_queue *q = NULL;
  pc_queue_options o = {0, 0, &str_serializer, NULL};
  void *obj = NULL;
  (void)state;
  assert_rc(0, pc_queue_new_ex(&q, &o));
  assert_rc(0, pc_queue_put(q, "spam", 0));
  assert_rc(0, pc_queue_put(q, "", 0));
  /* Encoding failure: the encoder's code, nothing put. */
  assert_rc(PC_EENCODE, pc_queue_put(q, "!bad", 0));
  assert_qsize(q, 2);
  assert_rc(0, pc_queue_get(q, &obj, 0));
  assert_string_equal(obj, "spam");
  str_release(NULL, obj);
  assert_rc(0, pc_queue_get(q, &obj, 0));
  assert_string_equal(obj, "");
  str_release(NULL, obj);
  /* Decoding failure consumes that item only. */
  assert_rc(0, pc_queue_put_bytes(q, "?garbage", 8, 0));
  assert_rc(0, pc_queue_put(q, "eggs", 0));
  obj = NULL;
  assert_rc(PC_EPROTO, pc_queue_get(q, &obj, 0));
  assert_null(obj);
  assert_rc(0, pc_queue_get(q, &obj, 0));
  assert_string_equal(obj, "eggs");
  str_release(NULL, obj);
  assert_rc(PC_EEMPTY, pc_queue_get(q, &obj, 0));
  assert_rc(PC_EEMPTY, pc_queue_get(q, &obj, 100));
  assert_rc(0, pc_queue_close(q));
  assert_rc(PC_ECLOSED, pc_queue_put(q, "late", 0));
  assert_rc(PC_ECLOSED, pc_queue_get(q, &obj, 0));
  pc_queue_free(q);
}

/* The default serializer is pickle over pc_value: a value put in one
 * process comes out equal in another, and the item is a Python pickle. */
static int child_puts_a_list(void *p) {
  die_with_parent();
  pc_value *l = pc_value_list();
  int rc = pc_value_list_append_steal(l, pc_value_str("spam"));
  rc = rc ? rc : pc_value_list_append_steal(l, pc_value_int(42));
  rc = rc ? rc : pc_value_list_append_steal(l, pc_value_str("eggs"));
  rc = rc ? rc : pc_queue_put(p, l, -1);
  pc_value_free(l);
  return rc == 0 ? 0 : 1;
}

static void test_default_serializer_is_pickle_over_values(void **state) {
  pc_queue *q = new_queue(0, 0);
  void *obj = NULL;
  void *raw = NULL;
  size_t len = 0;
  char *repr;
  pid_t pid;
  (void)state;
  pid = pc_test_fork(child_puts_a_list, q);
  pc_test_wait_ok(pid, 10);
  assert_rc(0, pc_queue_get(q, &obj, 0));
  repr = pc_value_repr(obj);
  assert_string_equal(repr, "['spam', 42, 'eggs']");
  free(repr);
  /* Put it back: the bytes on the ring are a pickle (protocol 4 starts
   * with 0x80 0x04), decodable by Python. */
  assert_rc(0, pc_queue_put(q, obj, 0));
  assert_rc(0, pc_queue_get_bytes(q, &raw, &len, 0));
  assert_true(len > 2);
  assert_int_equal(((unsigned char *)raw)[0], 0x80);
  assert_int_equal(((unsigned char *)raw)[1], 4);
  /* Garbage is a decoding error, and the item is consumed. */
  assert_rc(0, pc_queue_put_bytes(q, "\x80\x04junk", 6, 0));
  pc_value_free(obj);
  obj = NULL;
  assert_true(pc_queue_get(q, &obj, 0) < 0);
  assert_null(obj);
  assert_rc(1, pc_queue_empty(q));
  free(raw);
  pc_queue_free(q);
}

/* ------------------------------------------------------------ SIGKILL */

/* The test hook of the killed child: at the chosen point it tells the
 * parent (sync pipe) and waits to be killed, with the queue lock held. */
static int kill_point;
static pc_test_sync kill_sync;

static void block_at_point(int point) {
  if (point == kill_point) {
    pc_test_sync_post(&kill_sync);
    for (;;)
      pause();
  }
}

struct kill_arg {
  pc_queue *q;
  bool put; /* put "C", or get */
};

static int child_op_then_die(void *p) {
  die_with_parent();
  struct kill_arg *a = p;
  void *buf = NULL;
  size_t len = 0;
  pc__queue_hook = block_at_point;
  if (a->put)
    (void)pc_queue_put_bytes(a->q, "C", 1, -1);
  else
    (void)pc_queue_get_bytes(a->q, &buf, &len, -1);
  return 99; /* never reached: killed at the hook */
}

/* Kills a child doing one put or get exactly at `point`, then checks what
 * the queue holds ("A", "B" were put before). */
static void kill_inside(bool put, int point, const char *const *expect) {
  pc_queue *q = new_queue(0, 0);
  struct kill_arg a = {q, put};
  pid_t pid;
  int st, n = 0;
  void *buf = NULL;
  size_t len = 0;
  put_str(q, "A");
  put_str(q, "B");
  pc_test_sync_init(&kill_sync);
  kill_point = point;
  pid = pc_test_fork(child_op_then_die, &a);
  assert_int_equal(pc_test_sync_wait(&kill_sync, 5000), 0);
  /* The child holds the lock: a bounded get gives up in time. */
  assert_rc(PC_EEMPTY, pc_queue_get_bytes(q, &buf, &len, 100));
  assert_rc(PC_EFULL, pc_queue_put_bytes(q, "x", 1, 100));
  assert_int_equal(kill(pid, SIGKILL), 0);
  st = pc_test_wait(pid, 10);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  while (expect[n] != NULL)
    n++;
  assert_qsize(q, n); /* the first lock after the death repairs */
  for (int i = 0; i < n; i++)
    get_str(q, expect[i]);
  assert_rc(PC_EEMPTY, pc_queue_get_bytes(q, &buf, &len, 0));
  /* Still fully usable, from this process and from a new child. */
  put_str(q, "after");
  get_str(q, "after");
  {
    struct child_arg g = {q, "child", 0};
    pid_t c = pc_test_fork(child_get_expect, &g);
    put_str(q, "child");
    pc_test_wait_ok(c, 10);
  }
  /* Mark done what was received: the n items, "after" and "child". */
  for (int i = 0; i < n + 2; i++)
    assert_rc(0, pc_queue_task_done(q));
  if (!put && n == 1) {
    /* The dead consumer's item was put but never marked done, so join
     * (as documented) waits for it. */
    assert_rc(-EAGAIN, pc_queue_join(q, 0));
    assert_rc(0, pc_queue_task_done(q));
  }
  assert_rc(0, pc_queue_join(q, 0));
  assert_rc(PC_ETASKDONE, pc_queue_task_done(q));
  pc_test_sync_close(&kill_sync);
  pc_queue_free(q);
}

static const char *const keep_ab[] = {"A", "B", NULL};
static const char *const keep_b[] = {"B", NULL};
static const char *const keep_abc[] = {"A", "B", "C", NULL};

/* Consumer killed after copying the item out, before the commit point:
 * the item stays for the next consumer. */
static void test_kill_consumer_before_commit_keeps_item(void **state) {
  (void)state;
  kill_inside(false, PC__QHOOK_GET_COPIED, keep_ab);
}

/* Consumer killed after the commit point (redo log written, or half
 * applied, or all applied): the item is taken, lost with the consumer;
 * nothing else is lost or duplicated. */
static void test_kill_consumer_at_commit_point_loses_only_its_item(void **s) {
  (void)s;
  kill_inside(false, PC__QHOOK_COMMIT_LOGGED, keep_b);
}

static void test_kill_consumer_mid_commit_loses_only_its_item(void **s) {
  (void)s;
  kill_inside(false, PC__QHOOK_COMMIT_HALF, keep_b);
}

static void test_kill_consumer_after_commit_loses_only_its_item(void **s) {
  (void)s;
  kill_inside(false, PC__QHOOK_COMMITTED, keep_b);
}

/* Producer killed after copying its item in, before the commit point:
 * nothing of the item is visible. */
static void test_kill_producer_before_commit_puts_nothing(void **state) {
  (void)state;
  kill_inside(true, PC__QHOOK_PUT_COPIED, keep_ab);
}

/* Producer killed at or after the commit point: the item is in, whole. */
static void test_kill_producer_at_commit_point_puts_item(void **state) {
  (void)state;
  kill_inside(true, PC__QHOOK_COMMIT_LOGGED, keep_abc);
}

static void test_kill_producer_mid_commit_puts_item(void **state) {
  (void)state;
  kill_inside(true, PC__QHOOK_COMMIT_HALF, keep_abc);
}

static void test_kill_producer_after_commit_puts_item(void **state) {
  (void)state;
  kill_inside(true, PC__QHOOK_COMMITTED, keep_abc);
}

/* A consumer killed while asleep in get leaves nothing behind that stops
 * the next sleeping consumer from being woken. */
static void test_kill_sleeping_consumer(void **state) {
  pc_queue *q = new_queue(0, 0);
  struct child_arg g = {q, "for the second", 0};
  pid_t first, second;
  int st;
  (void)state;
  first = pc_test_fork(child_get_expect, &g);
  wait_blocked_in_futex(first);
  assert_int_equal(kill(first, SIGKILL), 0);
  st = pc_test_wait(first, 10);
  assert_true(WIFSIGNALED(st));
  second = pc_test_fork(child_get_expect, &g);
  wait_blocked_in_futex(second);
  put_str(q, "for the second");
  pc_test_wait_ok(second, 10);
  pc_queue_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_and_free_arguments),
      cmocka_unit_test(test_queue_error_codes_are_described),
      cmocka_unit_test(test_no_descriptor_is_created),
      cmocka_unit_test(test_null_arguments_are_einval),
      cmocka_unit_test(test_round_trip_bytes_and_empty_item),
      cmocka_unit_test(test_fifo_qsize_empty_full),
      cmocka_unit_test(test_put_full_nonblocking_and_timeout),
      cmocka_unit_test(test_get_empty_nonblocking_and_timeout),
      cmocka_unit_test(test_item_larger_than_capacity_is_etoobig),
      cmocka_unit_test(test_byte_capacity_bounds_the_queue),
      cmocka_unit_test(test_wraparound_keeps_items_intact),
      cmocka_unit_test(test_big_item_pages_are_given_back),
      cmocka_unit_test(test_blocked_get_is_woken_by_put),
      cmocka_unit_test(test_blocked_put_is_woken_by_get),
      cmocka_unit_test(test_timed_get_succeeds_when_item_arrives),
      cmocka_unit_test(test_close_refuses_puts_and_drains_gets),
      cmocka_unit_test(test_close_wakes_blocked_waiters),
      cmocka_unit_test(test_task_done_and_join),
      cmocka_unit_test(test_join_across_processes),
      cmocka_unit_test(test_blocked_join_is_woken_by_task_done),
      cmocka_unit_test(test_items_survive_the_producer_exiting),
      cmocka_unit_test(test_items_cross_fork_both_ways),
      cmocka_unit_test(test_per_producer_order),
      cmocka_unit_test(test_objects_through_a_serializer),
      cmocka_unit_test(test_default_serializer_is_pickle_over_values),
      cmocka_unit_test(test_kill_consumer_before_commit_keeps_item),
      cmocka_unit_test(test_kill_consumer_at_commit_point_loses_only_its_item),
      cmocka_unit_test(test_kill_consumer_mid_commit_loses_only_its_item),
      cmocka_unit_test(test_kill_consumer_after_commit_loses_only_its_item),
      cmocka_unit_test(test_kill_producer_before_commit_puts_nothing),
      cmocka_unit_test(test_kill_producer_at_commit_point_puts_item),
      cmocka_unit_test(test_kill_producer_mid_commit_puts_item),
      cmocka_unit_test(test_kill_producer_after_commit_puts_item),
      cmocka_unit_test(test_kill_sleeping_consumer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
