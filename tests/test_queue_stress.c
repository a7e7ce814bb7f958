/* SPDX-License-Identifier: MIT */
/* pc_queue under load: 4 producer x 4 consumer processes with items of
 * 0 B to 1 MiB (every item exactly once and intact), threads, and random
 * SIGKILLs of producers and consumers while they work. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A forked child dies with the test process, so that a failing test never
 * leaves children behind (blocked in the queue, holding ctest's pipes). */
static void die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }

static int64_t ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *shared_zeroed(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  assert_true(p != MAP_FAILED);
  return p;
}

static uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/* ------------------------------------------------------------ 4 x 4 */

#define S_PRODUCERS 4
#define S_CONSUMERS 4
#define S_ITEMS 400
#define S_TINY 8 /* items 0..7 of each producer are 0..7 bytes long */

struct stress_results {
  _Atomic uint32_t seen[S_PRODUCERS][S_ITEMS];
  _Atomic uint32_t tiny[S_PRODUCERS][S_TINY]; /* [p][len], len 1..7 */
  _Atomic uint32_t empty_items;               /* 0-byte items */
  _Atomic uint32_t bad;                       /* corrupt or unknown items */
};

/* Length of item seq of producer p: 0..7 bytes for the first ones, then
 * mostly up to 4 KiB, and every 50th between 256 KiB and exactly 1 MiB. */
static size_t item_len(uint32_t p, uint32_t seq) {
  uint32_t h = mix(p * 100003u + seq);
  size_t n;
  if (seq < S_TINY)
    n = seq;
  else if (seq == 50)
    n = (size_t)1 << 20;
  else if (seq % 50 == 0)
    n = ((size_t)256 << 10) + h % ((size_t)768 << 10);
  else
    n = 8 + h % 4096;
  return n;
}

static uint32_t item_seed(uint32_t p, uint32_t seq) {
  return p * 100003u + seq;
}

/* Items of 8 bytes or more carry (p, seq) then a pattern; shorter ones
 * are bytes of value p + 1. */
static void make_item(unsigned char *buf, uint32_t p, uint32_t seq, size_t n) {
  if (n < 8) {
    memset(buf, (int)(p + 1), n);
  } else {
    memcpy(buf, &p, 4);
    memcpy(buf + 4, &seq, 4);
    pc_test_pattern(buf + 8, n - 8, item_seed(p, seq));
  }
}

static void check_item(struct stress_results *r, const unsigned char *buf,
                       size_t n) {
  if (n == 0) {
    atomic_fetch_add(&r->empty_items, 1);
  } else if (n < 8) {
    uint32_t v = buf[0];
    bool same = true;
    for (size_t i = 1; i < n; i++)
      same = same && buf[i] == v;
    if (same && v >= 1 && v <= S_PRODUCERS)
      atomic_fetch_add(&r->tiny[v - 1][n], 1);
    else
      atomic_fetch_add(&r->bad, 1);
  } else {
    uint32_t p, seq;
    memcpy(&p, buf, 4);
    memcpy(&seq, buf + 4, 4);
    if (p < S_PRODUCERS && seq >= S_TINY && seq < S_ITEMS &&
        n == item_len(p, seq) &&
        pc_test_pattern_ok(buf + 8, n - 8, item_seed(p, seq)))
      atomic_fetch_add(&r->seen[p][seq], 1);
    else
      atomic_fetch_add(&r->bad, 1);
  }
}

struct stress_arg {
  pc_queue *q;
  struct stress_results *r;
  uint32_t id;
};

static int stress_producer(void *p) {
  die_with_parent();
  struct stress_arg *a = p;
  unsigned char *buf = malloc((size_t)1 << 20);
  if (buf == NULL)
    return 3;
  for (uint32_t seq = 0; seq < S_ITEMS; seq++) {
    size_t n = item_len(a->id, seq);
    make_item(buf, a->id, seq, n);
    if (pc_queue_put_bytes(a->q, buf, n, -1) != 0)
      return 1;
  }
  free(buf);
  return 0;
}

static int stress_consumer(void *p) {
  die_with_parent();
  struct stress_arg *a = p;
  for (;;) {
    void *buf = NULL;
    size_t n = 0;
    int rc = pc_queue_get_bytes(a->q, &buf, &n, -1);
    if (rc == PC_ECLOSED)
      return 0;
    if (rc != 0)
      return 1;
    check_item(a->r, buf, n);
    free(buf);
  }
}

static void run_stress(size_t maxsize, size_t capacity) {
  pc_queue *q = NULL;
  pc_queue_options o = {maxsize, capacity, NULL, NULL};
  struct stress_results *r = shared_zeroed(sizeof *r);
  struct stress_arg args[S_PRODUCERS + S_CONSUMERS];
  pid_t pids[S_PRODUCERS + S_CONSUMERS];
  assert_rc(0, pc_queue_new_ex(&q, &o));
  for (uint32_t i = 0; i < S_PRODUCERS + S_CONSUMERS; i++) {
    args[i].q = q;
    args[i].r = r;
    args[i].id = i < S_PRODUCERS ? i : 0;
    pids[i] = pc_test_fork(i < S_PRODUCERS ? stress_producer : stress_consumer,
                           &args[i]);
  }
  for (int i = 0; i < S_PRODUCERS; i++)
    pc_test_wait_ok(pids[i], 60);
  /* Every producer is done: close, so that consumers drain and stop. */
  assert_rc(0, pc_queue_close(q));
  for (int i = S_PRODUCERS; i < S_PRODUCERS + S_CONSUMERS; i++)
    pc_test_wait_ok(pids[i], 60);
  assert_int_equal(atomic_load(&r->bad), 0);
  assert_int_equal(atomic_load(&r->empty_items), S_PRODUCERS);
  for (int p = 0; p < S_PRODUCERS; p++) {
    for (int n = 1; n < S_TINY; n++)
      assert_int_equal(atomic_load(&r->tiny[p][n]), 1);
    for (int seq = S_TINY; seq < S_ITEMS; seq++)
      assert_int_equal(atomic_load(&r->seen[p][seq]), 1);
  }
  assert_int_equal(pc_queue_qsize(q), 0);
  assert_rc(-EAGAIN, pc_queue_join(q, 0)); /* no task_done was called */
  pc_queue_free(q);
  munmap(r, sizeof *r);
}

/* 4 producers x 4 consumers, default capacity, no maxsize: nobody waits
 * for room, consumers often wait for items. */
static void test_stress_4x4_mixed_sizes(void **state) {
  (void)state;
  run_stress(0, 0);
}

/* Same with a 2 MiB ring and maxsize 16: producers keep waiting for room
 * (bytes or count), records wrap around constantly, 1 MiB items fill half
 * the ring. */
static void test_stress_4x4_small_ring(void **state) {
  (void)state;
  run_stress(16, (size_t)2 << 20);
}

/* ------------------------------------------------------------ threads */

#define T_THREADS 2
#define T_ITEMS 5000

struct thread_arg {
  pc_queue *q;
  uint32_t id;
  _Atomic uint32_t *seen; /* [T_THREADS * T_ITEMS] */
  _Atomic uint32_t *bad;
};

static void *thread_producer(void *p) {
  struct thread_arg *a = p;
  unsigned char buf[1024];
  for (uint32_t seq = 0; seq < T_ITEMS; seq++) {
    size_t n = 64 + mix(seq) % (sizeof buf - 64);
    memcpy(buf, &a->id, 4);
    memcpy(buf + 4, &seq, 4);
    pc_test_pattern(buf + 8, n - 8, a->id * 7919u + seq);
    if (pc_queue_put_bytes(a->q, buf, n, -1) != 0)
      atomic_fetch_add(a->bad, 1);
  }
  return NULL;
}

static void *thread_consumer(void *p) {
  struct thread_arg *a = p;
  for (;;) {
    void *buf = NULL;
    size_t n = 0;
    uint32_t id, seq;
    int rc = pc_queue_get_bytes(a->q, &buf, &n, -1);
    if (rc == PC_ECLOSED)
      break;
    if (rc != 0 || n < 64) {
      atomic_fetch_add(a->bad, 1);
      free(buf);
      continue;
    }
    memcpy(&id, buf, 4);
    memcpy(&seq, (unsigned char *)buf + 4, 4);
    if (id < T_THREADS && seq < T_ITEMS && n == 64 + mix(seq) % (1024 - 64) &&
        pc_test_pattern_ok((unsigned char *)buf + 8, n - 8, id * 7919u + seq))
      atomic_fetch_add(&a->seen[id * T_ITEMS + seq], 1);
    else
      atomic_fetch_add(a->bad, 1);
    free(buf);
  }
  return NULL;
}

/* Producer and consumer threads of one process share the queue: every item
 * exactly once. (Run under -DPIPECONN_SANITIZER=thread too.) */
static void test_threads_share_a_queue(void **state) {
  pc_queue *q = NULL;
  pthread_t prod[T_THREADS], cons[T_THREADS];
  struct thread_arg pa[T_THREADS], ca[T_THREADS];
  _Atomic uint32_t *seen = calloc(T_THREADS * T_ITEMS, sizeof *seen);
  _Atomic uint32_t bad = 0;
  (void)state;
  assert_non_null(seen);
  assert_rc(0, pc_queue_new(&q, 100));
  for (uint32_t i = 0; i < T_THREADS; i++) {
    pa[i] = (struct thread_arg){q, i, seen, &bad};
    ca[i] = pa[i];
    assert_int_equal(pthread_create(&prod[i], NULL, thread_producer, &pa[i]),
                     0);
    assert_int_equal(pthread_create(&cons[i], NULL, thread_consumer, &ca[i]),
                     0);
  }
  for (int i = 0; i < T_THREADS; i++)
    pthread_join(prod[i], NULL);
  assert_rc(0, pc_queue_close(q));
  for (int i = 0; i < T_THREADS; i++)
    pthread_join(cons[i], NULL);
  assert_int_equal(atomic_load(&bad), 0);
  for (int i = 0; i < T_THREADS * T_ITEMS; i++)
    assert_int_equal(atomic_load(&seen[i]), 1);
  free(seen);
  pc_queue_free(q);
}

/* ------------------------------------------------------------ random kills */

#define K_IDS 64       /* producer ids (a replacement takes a new id) */
#define K_ITEMS 150000 /* most items per producer id */
#define K_ROUNDS 100
#define K_STEP 1000 /* items received between two kills */

struct kill_results {
  _Atomic uint8_t seen[K_IDS][K_ITEMS];
  _Atomic int64_t done[K_IDS]; /* last seq whose put returned, -1: none */
  _Atomic uint64_t received;
  _Atomic uint32_t bad;
  _Atomic uint32_t stop;
};

struct kill_arg {
  pc_queue *q;
  struct kill_results *r;
  uint32_t id;
};

static int kill_producer(void *p) {
  die_with_parent();
  struct kill_arg *a = p;
  unsigned char buf[256];
  for (uint32_t seq = 0; seq < K_ITEMS && !atomic_load(&a->r->stop); seq++) {
    size_t n = 8 + mix(seq ^ a->id) % (sizeof buf - 8);
    memcpy(buf, &a->id, 4);
    memcpy(buf + 4, &seq, 4);
    memset(buf + 8, (int)(seq & 0xff), n - 8);
    if (pc_queue_put_bytes(a->q, buf, n, -1) != 0)
      return 1;
    atomic_store(&a->r->done[a->id], (int64_t)seq);
  }
  return 0;
}

static int kill_consumer(void *p) {
  die_with_parent();
  struct kill_arg *a = p;
  for (;;) {
    void *buf = NULL;
    size_t n = 0;
    uint32_t id, seq;
    bool ok;
    int rc = pc_queue_get_bytes(a->q, &buf, &n, -1);
    if (rc == PC_ECLOSED)
      return 0;
    if (rc != 0)
      return 1;
    ok = n >= 8;
    if (ok) {
      memcpy(&id, buf, 4);
      memcpy(&seq, (unsigned char *)buf + 4, 4);
      ok = id < K_IDS && seq < K_ITEMS && n == 8 + mix(seq ^ id) % (256 - 8);
      for (size_t i = 8; ok && i < n; i++)
        ok = ((unsigned char *)buf)[i] == (seq & 0xff);
    }
    if (ok)
      atomic_fetch_add(&a->r->seen[id][seq], 1);
    else
      atomic_fetch_add(&a->r->bad, 1);
    atomic_fetch_add(&a->r->received, 1);
    free(buf);
  }
}

/* Producers and consumers are killed with SIGKILL at random moments while
 * they work (many of the kills land with the lock held, in the middle of a
 * copy or a commit) and replaced. Afterwards: no item was received twice,
 * no item was corrupt, every item whose put returned arrived except at
 * most one per killed consumer, and nothing a producer never put appeared. */
static void test_random_kills_lose_at_most_one_item_per_kill(void **state) {
  pc_queue *q = NULL;
  struct kill_results *r = shared_zeroed(sizeof *r);
  struct kill_arg args[2 * K_ROUNDS + 4];
  pid_t prod[2], cons[2];
  uint32_t prod_id[2] = {0, 1}, next_id = 2, nargs = 0;
  int consumer_kills = 0;
  bool killed_id[K_IDS] = {false};
  (void)state;
  srand(12345);
  assert_rc(0, pc_queue_new(&q, 0));
  for (int i = 0; i < K_IDS; i++)
    atomic_store(&r->done[i], -1);
  for (int i = 0; i < 2; i++) {
    args[nargs] = (struct kill_arg){q, r, prod_id[i]};
    prod[i] = pc_test_fork(kill_producer, &args[nargs++]);
    args[nargs] = (struct kill_arg){q, r, 0};
    cons[i] = pc_test_fork(kill_consumer, &args[nargs++]);
  }
  for (int round = 0; round < K_ROUNDS; round++) {
    uint64_t target =
        atomic_load(&r->received) + K_STEP + (uint64_t)(rand() % K_STEP);
    int64_t end = ms_now() + 20000;
    int victim = rand() % 2, st;
    pid_t *pid;
    while (atomic_load(&r->received) < target && ms_now() < end)
      sched_yield();
    assert_true(atomic_load(&r->received) >= target);
    pid = round % 2 ? &prod[victim] : &cons[victim];
    assert_int_equal(kill(*pid, SIGKILL), 0);
    st = pc_test_wait(*pid, 10);
    assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
    if (round % 2) {
      assert_true(next_id < K_IDS);
      killed_id[prod_id[victim]] = true;
      prod_id[victim] = next_id++;
      args[nargs] = (struct kill_arg){q, r, prod_id[victim]};
      *pid = pc_test_fork(kill_producer, &args[nargs++]);
    } else {
      consumer_kills += WIFSIGNALED(st);
      args[nargs] = (struct kill_arg){q, r, 0};
      *pid = pc_test_fork(kill_consumer, &args[nargs++]);
    }
  }
  atomic_store(&r->stop, 1);
  for (int i = 0; i < 2; i++)
    pc_test_wait_ok(prod[i], 30);
  assert_rc(0, pc_queue_close(q));
  for (int i = 0; i < 2; i++)
    pc_test_wait_ok(cons[i], 30);

  assert_int_equal(atomic_load(&r->bad), 0);
  {
    int missing = 0;
    for (uint32_t id = 0; id < next_id; id++) {
      int64_t done = atomic_load(&r->done[id]);
      for (int64_t seq = 0; seq < K_ITEMS; seq++) {
        uint8_t n = atomic_load(&r->seen[id][seq]);
        assert_true(n <= 1); /* never duplicated */
        if (seq <= done)
          missing += n == 0;
        else if (seq > done + 1 || !killed_id[id])
          assert_int_equal(n, 0); /* never put, never seen */
        /* seq == done + 1 of a killed producer: its put may have
         * committed before the kill, or not. */
      }
    }
    assert_true(missing <= consumer_kills);
  }
  assert_int_equal(pc_queue_qsize(q), 0);
  pc_queue_free(q);
  munmap(r, sizeof *r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stress_4x4_mixed_sizes),
      cmocka_unit_test(test_stress_4x4_small_ring),
      cmocka_unit_test(test_threads_share_a_queue),
      cmocka_unit_test(test_random_kills_lose_at_most_one_item_per_kill),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
