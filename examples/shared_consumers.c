/* SPDX-License-Identifier: MIT */
/*
 * shared_consumers: one producer, five consumers reading ONE pipe end --
 * the C version of
 *
 *     from multiprocessing import Lock, Pipe, Process
 *
 *     N, CONSUMERS = 150000, 5
 *
 *     def producer(writer):
 *         for i in range(N):
 *             writer.send(i)
 *
 *     def consumer(reader, lock, results):
 *         got = []
 *         for _ in range(N // CONSUMERS):
 *             with lock:          # without it the consumers corrupt the
 *                 got.append(reader.recv())   # stream (see below)
 *         results.send(got)
 *
 *     # main: start the producer and the consumers, collect every `got`
 *     # list, check that each number arrived exactly once, print totals.
 *
 * In Python the lock is the caller's job: five consumers sharing a reader
 * without it "received" about 230,000 messages out of 3,000 in a test, as
 * one took a header and another the payload. Here the end is made with
 * PC_SHARED: the library's process-shared lock hands each message, whole,
 * to exactly one consumer.
 *
 * Run:    ./build/examples/shared_consumers
 * Prints: one line per consumer ("consumer 1 took 30000 messages", ...),
 *         then the totals: 150000 sent, 150000 received, every number
 *         exactly once, and the sum of the numbers (11249925000).
 *         Exits with 1 if any number was lost or duplicated.
 * Shows:  pc_pipe(PC_SIMPLEX | PC_SHARED) shared by processes forked after
 *         it; pc_send/pc_recv of ints and of a list of 30000 ints.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

#define N 150000
#define CONSUMERS 5

/* Each process keeps only the ends it uses; ends it leaves open would keep
 * readers from ever seeing end of stream. */
static void close_all_but(pc_conn **ends, size_t n, const pc_conn *keep) {
  for (size_t i = 0; i < n; i++)
    if (ends[i] != keep)
      pc_close(ends[i]);
}

static int producer(pc_conn *writer) {
  for (int64_t i = 0; i < N; i++) {
    int rc = pc_send(writer, pc_value_int(i)); /* never allocates */
    if (rc != 0) {
      fprintf(stderr, "producer: %s\n", pc_strerror(rc));
      return 1;
    }
  }
  return 0;
}

static int consumer(pc_conn *reader, pc_conn *results) {
  int code = 1;
  pc_value *got = pc_value_list();
  if (got == NULL)
    goto out;
  for (int k = 0; k < N / CONSUMERS; k++) {
    pc_value *item = NULL;
    int rc = pc_recv(reader, (void **)&item); /* the shared lock is inside */
    if (rc != 0) {
      fprintf(stderr, "consumer: %s\n", pc_strerror(rc));
      goto out;
    }
    if (pc_value_list_append_steal(got, item) != 0)
      goto out;
  }
  int rc = pc_send(results, got);
  if (rc != 0) {
    fprintf(stderr, "consumer: sending results: %s\n", pc_strerror(rc));
    goto out;
  }
  code = 0;
out:
  pc_value_free(got);
  return code;
}

/* Checks one consumer's list and marks its numbers in seen[]. Returns the
 * number of items, or -1 if an item is not an int in range or was already
 * seen (delivered twice). */
static long check_results(const pc_value *got, unsigned char *seen,
                          int64_t *sum) {
  size_t n = pc_value_len(got);
  if (pc_value_type(got) != PC_TYPE_LIST)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    if (pc_value_get_int(pc_value_item(got, i), &v) != 0 || v < 0 || v >= N ||
        seen[v]) {
      fprintf(stderr, "bad or duplicated number in a consumer's results\n");
      return -1;
    }
    seen[v] = 1;
    *sum += v;
  }
  return (long)n;
}

int main(void) {
  pc_conn *ends[2 + 2 * CONSUMERS]; /* reader, writer, then result pairs */
  pc_conn **results = ends + 2; /* results[2 * i] reads, [2 * i + 1] writes */
  pid_t pids[1 + CONSUMERS];
  size_t nends = 0;
  int nstarted = 0, failed = 0;
  unsigned char *seen = calloc(N, 1);

  if (seen == NULL)
    return 1;
  int rc = pc_pipe(&ends[0], &ends[1], PC_SIMPLEX | PC_SHARED);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe(PC_SHARED): %s\n", pc_strerror(rc));
    free(seen);
    return 1;
  }
  nends = 2;
  for (int i = 0; i < CONSUMERS; i++) {
    /* Each consumer returns its list on a pipe of its own. */
    rc = pc_pipe(&results[2 * i], &results[2 * i + 1], PC_SIMPLEX);
    if (rc != 0) {
      fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
      close_all_but(ends, nends, NULL);
      free(seen);
      return 1;
    }
    nends += 2;
  }

  fflush(stdout);
  for (int i = 0; i <= CONSUMERS; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      failed = 1;
      break;
    }
    if (pid == 0) {
      int code;
      if (i == CONSUMERS) {
        close_all_but(ends, nends, ends[1]);
        code = producer(ends[1]);
        pc_close(ends[1]);
      } else {
        pc_conn *mine = results[2 * i + 1];
        for (size_t k = 0; k < nends; k++)
          if (ends[k] != ends[0] && ends[k] != mine)
            pc_close(ends[k]);
        code = consumer(ends[0], mine);
        pc_close(ends[0]);
        pc_close(mine);
      }
      _exit(code);
    }
    pids[nstarted++] = pid;
  }
  /* The parent only collects: it keeps the result readers. */
  pc_close(ends[0]);
  pc_close(ends[1]);
  for (int i = 0; i < CONSUMERS; i++)
    pc_close(results[2 * i + 1]);

  long total = 0;
  int64_t sum = 0;
  for (int i = 0; i < CONSUMERS && !failed; i++) {
    pc_value *got = NULL;
    rc = pc_recv(results[2 * i], (void **)&got);
    if (rc != 0) {
      fprintf(stderr, "consumer %d sent no results: %s\n", i + 1,
              pc_strerror(rc));
      failed = 1;
      break;
    }
    long n = check_results(got, seen, &sum);
    pc_value_free(got);
    if (n < 0) {
      failed = 1;
      break;
    }
    printf("consumer %d took %ld messages\n", i + 1, n);
    total += n;
  }
  for (int i = 0; i < CONSUMERS; i++)
    pc_close(results[2 * i]);
  for (int i = 0; i < nstarted; i++) {
    int status;
    if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      failed = 1;
  }
  if (!failed) {
    long missing = 0;
    for (long v = 0; v < N; v++)
      missing += !seen[v];
    printf("sent %d messages, received %ld: %s\n", N, total,
           missing == 0 && total == N ? "every number exactly once"
                                      : "some numbers are missing");
    printf("sum of the received numbers: %lld (expected %lld)\n",
           (long long)sum, (long long)N * (N - 1) / 2);
    failed = missing != 0 || total != N;
  }
  free(seen);
  return failed;
}
