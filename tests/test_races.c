/* SPDX-License-Identifier: MIT */
/* Regression tests for data races found by ThreadSanitizer. They check
 * their outcome in every build; under -DPIPECONN_SANITIZER=thread (label
 * `threads`) TSan also reports the race itself if it comes back. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

/* Shared writable mappings of this process (/proc/self/maps lines with
 * "rw-s"): a PC_SHARED pipe has one while any of its ends is open here. */
static int count_shared_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int n = 0;
  assert_non_null(f);
  while (fgets(line, sizeof line, f) != NULL)
    n += strstr(line, " rw-s ") != NULL;
  fclose(f);
  return n;
}

typedef struct closer {
  pthread_barrier_t *start;
  pc_conn *c;
  int rc;
} closer;

static void *close_main(void *arg) {
  closer *k = arg;
  pthread_barrier_wait(k->start);
  k->rc = pc_close(k->c);
  return NULL;
}

/* The two ends of a PC_SHARED pipe share one record of this process's
 * mapping; closing them from two threads at once raced on its count of
 * open ends (a plain int), which could leak the mapping or unmap it twice.
 * Each round closes both ends at the same moment. */
static void test_shared_ends_closed_by_two_threads(void **state) {
  (void)state;
  pthread_barrier_t start;
  int before = count_shared_mappings();
  for (int round = 0; round < 200; round++) {
    pc_conn *a, *b;
    pthread_t t[2];
    closer k[2];
    assert_rc(0,
              pc_pipe(&a, &b, round % 2 ? PC_SHARED | PC_SIMPLEX : PC_SHARED));
    if (round == 0) /* the count does see a pipe's mapping */
      assert_int_equal(count_shared_mappings(), before + 1);
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    k[0] = (closer){&start, a, -1};
    k[1] = (closer){&start, b, -1};
    for (int i = 0; i < 2; i++)
      assert_int_equal(pthread_create(&t[i], NULL, close_main, &k[i]), 0);
    for (int i = 0; i < 2; i++) {
      assert_int_equal(pthread_join(t[i], NULL), 0);
      assert_rc(0, k[i].rc);
    }
    pthread_barrier_destroy(&start);
  }
  /* Every pipe is closed: its mapping is gone, exactly once. */
  assert_int_equal(count_shared_mappings(), before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_ends_closed_by_two_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
