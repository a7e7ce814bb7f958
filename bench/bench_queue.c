/* SPDX-License-Identifier: MIT */
/*
 * pc_queue throughput: P producer and C consumer processes, forked after
 * pc_queue_new, move COUNT byte items of SIZE bytes through one queue with
 * pc_queue_put_bytes / pc_queue_get_bytes.
 *
 *   bench_queue PRODUCERS CONSUMERS SIZE COUNT
 *
 * prints one JSON line:
 *   {"impl": "pc_queue", "producers": P, "consumers": C, "size": S,
 *    "count": N, "seconds": ..., "items_per_s": ...}
 * The clock starts when every process is forked and released at once, and
 * stops when the last consumer has exited (producers finish, the parent
 * closes the queue, consumers drain it and stop).
 * bench/queue_python.py runs the same workload with multiprocessing.Queue
 * and, with --compare, runs both in turn and prints medians and ratios.
 *
 * Honesty: every item carries its producer and index in its first 8 bytes;
 * each consumer checks the length of every item, that each producer's
 * indices arrive in increasing order, and the whole payload of every 64th
 * item; the parent checks that exactly COUNT items arrived.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pipeconn.h"

#define MAX_PROCS 64
#define SAMPLE 64u
#define ALARM_S 120u

struct shared_counts {
  _Atomic long received;
  _Atomic int failed;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned char pattern_byte(size_t i) {
  return (unsigned char)((i * 2654435761u) >> 13);
}

/* Blocks until the parent closes the start pipe (all children at once). */
static void wait_start(int fd) {
  char c;
  while (read(fd, &c, 1) < 0 && errno == EINTR) {
  }
}

static int producer(pc_queue *q, uint32_t id, long count, size_t size) {
  unsigned char *buf = malloc(size);
  int rc = 0;
  if (buf == NULL)
    return 3;
  for (size_t i = 0; i < size; i++)
    buf[i] = pattern_byte(i);
  memcpy(buf, &id, 4);
  for (long i = 0; i < count && rc == 0; i++) {
    uint32_t idx = (uint32_t)i;
    memcpy(buf + 4, &idx, 4);
    rc = pc_queue_put_bytes(q, buf, size, -1);
  }
  free(buf);
  if (rc != 0)
    fprintf(stderr, "put: %s\n", pc_strerror(rc));
  return rc == 0 ? 0 : 1;
}

static int consumer(pc_queue *q, size_t size, int producers,
                    struct shared_counts *counts) {
  int64_t next[MAX_PROCS];
  long got = 0;
  int rc;
  for (int i = 0; i < producers; i++)
    next[i] = 0;
  for (;;) {
    void *item = NULL;
    size_t len = 0;
    uint32_t id, idx;
    rc = pc_queue_get_bytes(q, &item, &len, -1);
    if (rc != 0)
      break;
    memcpy(&id, item, 4);
    memcpy(&idx, (unsigned char *)item + 4, 4);
    if (len != size || id >= (uint32_t)producers || idx < next[id]) {
      rc = 1;
      free(item);
      break;
    }
    next[id] = (int64_t)idx + 1;
    if (idx % SAMPLE == 0)
      for (size_t i = 8; i < size && rc == 0; i++)
        rc = ((unsigned char *)item)[i] == pattern_byte(i) ? 0 : 1;
    free(item);
    if (rc != 0)
      break;
    got++;
  }
  atomic_fetch_add(&counts->received, got);
  if (rc == PC_ECLOSED)
    rc = 0;
  else
    fprintf(stderr, "consumer: bad item or %s\n", pc_strerror(rc));
  return rc == 0 ? 0 : 1;
}

static long parse_long(const char *s, long lo, long hi) {
  char *end = NULL;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    v = -1;
  return v;
}

int main(int argc, char **argv) {
  long producers, consumers, size, count;
  pc_queue *q = NULL;
  struct shared_counts *counts;
  pid_t pids[2 * MAX_PROCS];
  int start[2], nproc = 0, failed = 0, rc;
  double t0, t1;
  if (argc != 5 || (producers = parse_long(argv[1], 1, MAX_PROCS)) < 0 ||
      (consumers = parse_long(argv[2], 1, MAX_PROCS)) < 0 ||
      (size = parse_long(argv[3], 8, 1L << 26)) < 0 ||
      (count = parse_long(argv[4], 1, 1L << 31)) < 0) {
    fprintf(stderr,
            "usage: %s PRODUCERS CONSUMERS SIZE COUNT\n"
            "  SIZE >= 8 bytes, COUNT items in total\n",
            argv[0]);
    return 2;
  }
  rc = pc_queue_new(&q, 0);
  counts = mmap(NULL, sizeof *counts, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (rc != 0 || counts == MAP_FAILED || pipe(start) != 0) {
    fprintf(stderr, "setup failed: %s\n", pc_strerror(rc));
    return 1;
  }
  fflush(NULL);
  for (long i = 0; i < producers + consumers; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      int code;
      alarm(ALARM_S); /* never hang */
      close(start[1]);
      wait_start(start[0]);
      if (i < producers) {
        /* The count is split evenly; the first ones take the rest. */
        long share = count / producers + (i < count % producers);
        code = producer(q, (uint32_t)i, share, (size_t)size);
      } else {
        code = consumer(q, (size_t)size, (int)producers, counts);
      }
      _exit(code);
    }
    pids[nproc++] = pid;
  }
  close(start[0]);
  t0 = now_s();
  close(start[1]); /* go */
  for (int i = 0; i < nproc; i++) {
    int st;
    if (i == producers)
      pc_queue_close(q); /* every producer is done: consumers drain, stop */
    while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {
    }
    failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
  }
  t1 = now_s();
  if (failed || atomic_load(&counts->received) != count) {
    fprintf(stderr, "failed: %ld of %ld items received\n",
            (long)atomic_load(&counts->received), count);
    return 1;
  }
  printf("{\"impl\": \"pc_queue\", \"producers\": %ld, \"consumers\": %ld, "
         "\"size\": %ld, \"count\": %ld, \"seconds\": %.6f, "
         "\"items_per_s\": %.1f}\n",
         producers, consumers, size, count, t1 - t0, (double)count / (t1 - t0));
  pc_queue_free(q);
  munmap(counts, sizeof *counts);
  return 0;
}
