/* SPDX-License-Identifier: MIT */
/*
 * What the core benchmark programs (bench_conn, bench_raw, bench_zmq) share:
 * command-line options, the clock, the payload pattern and its checks, the
 * JSON report and waiting for the forked child.
 *
 * Every program runs one workload per invocation between itself and a forked
 * child, and prints one JSON line:
 *   {"impl": ..., "mode": ..., "size": S, "count": N, "warmup": W,
 *    "seconds": ..., "msgs_per_s": ..., "mb_per_s": ..., "rtt_us": ...,
 *    "cpu_parent_s": ..., "cpu_child_s": ...}
 * mb_per_s counts payload bytes (10^6 bytes per MB) in every direction they
 * travel; rtt_us is null except for ping-pong, where msgs_per_s counts round
 * trips. cpu_parent_s is the CPU time (user + system) the parent used in the
 * timed part; cpu_child_s what the child used in its whole life, warm-up
 * included (getrusage RUSAGE_CHILDREN). A process that waits by spinning
 * (pc_set_spin) shows it there, not in the rates.
 *
 * Warm-up (-w W): W + N messages are sent, with indexes 0..W+N-1, and only
 * the last N are timed, so that the one-time costs of a run (first touch of
 * fresh buffers, growing socket buffers) stay out of the figures. In a stream
 * the child acknowledges the W-th message and the parent starts its clock
 * when that acknowledgement arrives; in a ping-pong the first W round trips
 * are untimed. With W = 0 there is no extra acknowledgement: the clock starts
 * at the child's ready message. conn_python.py does the same.
 *
 * Pinning (-c P,C): the parent runs on CPU P only and the child on CPU C
 * only (sched_setaffinity, right after the fork), so that a run does not
 * depend on where the scheduler happens to wake each process. On a shared VM
 * a ping-pong's round trip moves by tens of microseconds with that placement
 * alone (README). Without -c nothing is pinned.
 *
 * Work (-u N): after each message it receives, each side spins N iterations
 * of an empty loop (about 0.3 ns each here), as an application would do some
 * work per message. A control for the ping-pong: on this VM a round trip
 * across CPUs moves by tens of microseconds, up or down, with as little as
 * 100 iterations (README). Default 0.
 *
 * Spin (-s US, bench_conn only): pc_set_spin(US) on both ends; without -s
 * the library's default (PC_SPIN_DEFAULT). -s 0 makes every receive that
 * finds nothing sleep at once, as the raw socketpair's read does.
 *
 * Honesty: every message carries its index in its first bytes, the receiver
 * checks the length and index of every message (warm-up included) and the
 * whole payload of a sample (every 64th message and the last), so neither
 * side can skip work.
 */
#ifndef PC_BENCH_COMMON_H
#define PC_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity */
#endif
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every process gives up after this many seconds instead of hanging. */
#define BENCH_ALARM_S 120u

/* The payload is checked in full on every BENCH_SAMPLE-th message. */
#define BENCH_SAMPLE 64u

typedef struct bench_opts {
  const char *mode;
  size_t size;
  long count;  /* timed messages (or round trips) */
  long warmup; /* untimed messages sent first */
  long batch;  /* messages per pc_send_batch call */
  int cpu[2];  /* -c P,C: the parent's and the child's CPU; -1: not pinned */
  int spin;    /* -s US: pc_set_spin on both ends; -1: not given */
} bench_opts;

/* -u N: loop iterations of work after every received message. */
static long bench_work_iters;

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A part of the run: wall-clock seconds and this process's CPU seconds. */
typedef struct bench_span {
  double wall, cpu;
} bench_span;

static inline bench_span bench_mark(void) {
  struct timespec ts;
  bench_span s = {bench_now(), 0};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  s.cpu = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
  return s;
}

/* bench_since returns what passed since t0 (from bench_mark). */
static inline bench_span bench_since(bench_span t0) {
  bench_span s = bench_mark();
  s.wall -= t0.wall;
  s.cpu -= t0.cpu;
  return s;
}

/* bench_usage prints how to call the program; modes is a NULL-terminated
 * list. */
static inline void bench_usage(const char *prog, const char *const *modes) {
  fprintf(stderr,
          "usage: %s [-w W] [-c P,C] [-u N] [-s US] MODE SIZE COUNT [BATCH]\n"
          "  MODE:",
          prog);
  for (size_t i = 0; modes[i] != NULL; i++)
    fprintf(stderr, " %s", modes[i]);
  fprintf(stderr,
          "\n  SIZE: payload bytes (>= 8), COUNT: timed messages or"
          " round trips,\n  BATCH: messages per batched send (default"
          " 256), W: untimed warm-up\n  messages or round trips sent"
          " before the clock starts (default 0),\n  P,C: run the"
          " parent on CPU P and the child on CPU C,\n  N: iterations of a busy"
          " loop after each received message,\n  US: pc_set_spin on both ends"
          " (bench_conn only)\n");
}

/* bench_parse_long reads a whole decimal number in [min, max] into *out.
 * Returns true on success. */
static inline bool bench_parse_long(const char *s, long min, long max,
                                    long *out) {
  char *end = NULL;
  long v;
  bool ok;
  errno = 0;
  v = strtol(s, &end, 10);
  ok = errno == 0 && end != s && *end == '\0' && v >= min && v <= max;
  if (ok)
    *out = v;
  return ok;
}

/* bench_parse_cpus reads "P,C" (two CPU numbers) into cpu[0], cpu[1]. */
static inline bool bench_parse_cpus(const char *s, int cpu[2]) {
  char first[16];
  const char *comma = strchr(s, ',');
  long p, c;
  bool ok = comma != NULL && (size_t)(comma - s) < sizeof first;
  if (ok) {
    memcpy(first, s, (size_t)(comma - s));
    first[comma - s] = '\0';
    ok = bench_parse_long(first, 0, CPU_SETSIZE - 1, &p) &&
         bench_parse_long(comma + 1, 0, CPU_SETSIZE - 1, &c);
  }
  if (ok) {
    cpu[0] = (int)p;
    cpu[1] = (int)c;
  }
  return ok;
}

/* bench_pin keeps the calling process on one CPU (who: 0 parent, 1 child)
 * when -c was given, and checks that it runs there. Returns 0, or -1 after
 * printing why. */
static inline int bench_pin(const bench_opts *o, int who) {
  int rc = 0;
  if (o->cpu[who] >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o->cpu[who], &set);
    rc = sched_setaffinity(0, sizeof set, &set);
    if (rc != 0) {
      fprintf(stderr, "sched_setaffinity(CPU %d): %s\n", o->cpu[who],
              strerror(errno));
    } else if (sched_getcpu() != o->cpu[who]) {
      /* The kernel moves the caller before sched_setaffinity returns. */
      fprintf(stderr, "pinned to CPU %d but running on CPU %d\n", o->cpu[who],
              sched_getcpu());
      rc = -1;
    }
  }
  return rc;
}

/* bench_parse reads [-w W] [-c P,C] [-u N] [-s US] MODE SIZE COUNT [BATCH].
 * Returns 0, or -1 after printing the usage. */
static inline int bench_parse(int argc, char **argv, const char *const *modes,
                              bench_opts *o) {
  const char *prog = argv[0];
  int rc = -1, opt, n;
  long size, count, warmup = 0, batch = 256, spin = -1;
  bool known = false;
  o->cpu[0] = o->cpu[1] = -1;
  while ((opt = getopt(argc, argv, "w:c:u:s:")) != -1) {
    if (opt == 'w' && bench_parse_long(optarg, 0, LONG_MAX - 1, &warmup))
      continue;
    if (opt == 'u' && bench_parse_long(optarg, 0, 1L << 30, &bench_work_iters))
      continue;
    if (opt == 'c' && bench_parse_cpus(optarg, o->cpu))
      continue;
    if (opt == 's' && bench_parse_long(optarg, 0, INT_MAX, &spin))
      continue;
    goto out;
  }
  argv += optind;
  n = argc - optind;
  if (n < 3 || n > 4)
    goto out;
  for (size_t i = 0; modes[i] != NULL; i++)
    known = known || strcmp(argv[0], modes[i]) == 0;
  if (!known)
    goto out;
  if (!bench_parse_long(argv[1], 8, 1L << 30, &size))
    goto out;
  /* W + COUNT message indexes must fit in a long. */
  if (!bench_parse_long(argv[2], 1, LONG_MAX - warmup, &count))
    goto out;
  if (n == 4 && !bench_parse_long(argv[3], 1, 1000, &batch))
    goto out;
  o->mode = argv[0];
  o->size = (size_t)size;
  o->count = count;
  o->warmup = warmup;
  o->batch = batch;
  o->spin = (int)spin;
  rc = 0;
out:
  if (rc != 0)
    bench_usage(prog, modes);
  return rc;
}

/* bench_pattern fills buf with the reference payload. */
static inline void bench_pattern(unsigned char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)((i * 2654435761u) >> 13);
}

/* bench_stamp writes the message index into the first 8 bytes. */
static inline void bench_stamp(unsigned char *buf, uint64_t index) {
  for (unsigned i = 0; i < 8; i++)
    buf[i] = (unsigned char)(index >> (8 * i));
}

/* bench_check verifies a received message: its length, its index and, on
 * the sample, the whole payload against ref; then it does the -u work.
 * Returns true when it is right, printing what is wrong otherwise. */
static inline bool bench_check(const unsigned char *buf, size_t len,
                               size_t want_len, uint64_t index,
                               const unsigned char *ref, bool last) {
  bool ok = false;
  uint64_t got = 0;
  for (volatile long k = 0; k < bench_work_iters; k = k + 1)
    ;
  if (len != want_len) {
    fprintf(stderr, "message %llu: length %zu, expected %zu\n",
            (unsigned long long)index, len, want_len);
    goto out;
  }
  for (unsigned i = 0; i < 8; i++)
    got |= (uint64_t)buf[i] << (8 * i);
  if (got != index) {
    fprintf(stderr, "message %llu: carries index %llu\n",
            (unsigned long long)index, (unsigned long long)got);
    goto out;
  }
  if ((index % BENCH_SAMPLE == 0 || last) &&
      memcmp(buf + 8, ref + 8, len - 8) != 0) {
    fprintf(stderr, "message %llu: payload differs\n",
            (unsigned long long)index);
    goto out;
  }
  ok = true;
out:
  return ok;
}

/* bench_report prints the JSON line of one run, after the child has been
 * waited for; timed covers the o->count timed messages only, and so do the
 * rates. */
static inline void bench_report(const char *impl, const bench_opts *o,
                                bench_span timed, bool pingpong) {
  double n = (double)o->count, seconds = timed.wall;
  double bytes = n * (double)o->size * (pingpong ? 2.0 : 1.0);
  char rtt[64] = "null";
  struct rusage ru;
  double child = 0;
  if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
    child = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
  if (pingpong)
    snprintf(rtt, sizeof rtt, "%.3f", seconds / n * 1e6);
  printf("{\"impl\": \"%s\", \"mode\": \"%s\", \"size\": %zu, \"count\": %ld, "
         "\"warmup\": %ld, \"seconds\": %.6f, \"msgs_per_s\": %.1f, "
         "\"mb_per_s\": %.1f, \"rtt_us\": %s, \"cpu_parent_s\": %.6f, "
         "\"cpu_child_s\": %.6f}\n",
         impl, o->mode, o->size, o->count, o->warmup, seconds, n / seconds,
         bytes / seconds / 1e6, rtt, timed.cpu, child);
  fflush(stdout);
}

/* bench_no_spin rejects -s in a program that has no pc_conn to set it on.
 * Returns 0, or -1 after saying so. */
static inline int bench_no_spin(const bench_opts *o) {
  int rc = 0;
  if (o->spin >= 0) {
    fprintf(stderr, "-s sets pc_set_spin: bench_conn only\n");
    rc = -1;
  }
  return rc;
}

/* bench_wait_child waits for the child and returns 0 if it exited with 0. */
static inline int bench_wait_child(pid_t pid) {
  int status = 0, rc = -1;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0)
    perror("waitpid");
  else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    rc = 0;
  else if (WIFEXITED(status))
    fprintf(stderr, "child exited with code %d\n", WEXITSTATUS(status));
  else
    fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
  return rc;
}

#endif
