/* SPDX-License-Identifier: MIT */
/*
 * bench_raw: the kernel's limit for the core benchmark. The same workloads as
 * bench_conn over a bare AF_UNIX socketpair with no framing: one write and
 * one read per message of exactly SIZE bytes (looping only on short reads and
 * writes), between this process and a forked child.
 *
 *   bench_raw [-w W] stream SIZE COUNT     parent writes COUNT messages,
 *                                          child reads
 *   bench_raw [-w W] pingpong SIZE COUNT   parent writes, child echoes,
 *                                          COUNT times
 *
 * -w W sends W untimed warm-up messages (round trips) first (default 0); -c
 * P,C pins the parent to CPU P and the child to CPU C; -u N spins N loop
 * iterations after each received message (see bench_common.h).
 * Prints one JSON line (see bench_common.h).
 * bench/run_bench.py runs it together with the other implementations and
 * prints the ratios.
 */
#include <signal.h>
#include <sys/socket.h>

#include "bench_common.h"

static const char *const modes[] = {"stream", "pingpong", NULL};

/* write_all writes buf[0..len), finishing short writes. 0 or -1. */
static int write_all(int fd, const unsigned char *buf, size_t len) {
  int rc = 0;
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      perror("write");
      rc = -1;
      break;
    }
    buf += n;
    len -= (size_t)n;
  }
  return rc;
}

/* read_all reads exactly len bytes, finishing short reads. 0 or -1 (error
 * or end of stream). */
static int read_all(int fd, unsigned char *buf, size_t len) {
  int rc = 0;
  while (len > 0) {
    ssize_t n = read(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        fprintf(stderr, "read: unexpected end of stream\n");
      else
        perror("read");
      rc = -1;
      break;
    }
    buf += n;
    len -= (size_t)n;
  }
  return rc;
}

/* The child: receives (and in ping-pong echoes) every message, checking
 * each; in a stream it acknowledges the last warm-up message and the last
 * message. Returns the exit code. */
static int child(int fd, const bench_opts *o, const unsigned char *ref) {
  int rc = 1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  long total = o->warmup + o->count;
  unsigned char *buf = malloc(o->size);
  unsigned char ready = 'r', warm = 'w';
  if (buf == NULL)
    goto out;
  if (write_all(fd, &ready, 1) != 0)
    goto out;
  for (long i = 0; i < total; i++) {
    if (read_all(fd, buf, o->size) != 0)
      goto out;
    if (!bench_check(buf, o->size, o->size, (uint64_t)i, ref, i == total - 1))
      goto out;
    if (pingpong && write_all(fd, buf, o->size) != 0)
      goto out;
    if (!pingpong && i == o->warmup - 1 && write_all(fd, &warm, 1) != 0)
      goto out;
  }
  if (!pingpong && write_all(fd, &ready, 1) != 0)
    goto out;
  rc = 0;
out:
  free(buf);
  return rc;
}

/* send_range sends the messages with indexes first..first+n-1 from buf
 * and, in ping-pong, receives the echo of each into echo and checks it.
 * Returns 0 or -1. */
static int send_range(int fd, const bench_opts *o, const unsigned char *ref,
                      unsigned char *buf, unsigned char *echo, long first,
                      long n) {
  int rc = -1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  long last = o->warmup + o->count - 1;
  for (long i = first; i < first + n; i++) {
    bench_stamp(buf, (uint64_t)i);
    if (write_all(fd, buf, o->size) != 0)
      goto out;
    if (!pingpong)
      continue;
    if (read_all(fd, echo, o->size) != 0)
      goto out;
    if (!bench_check(echo, o->size, o->size, (uint64_t)i, ref, i == last))
      goto out;
  }
  rc = 0;
out:
  return rc;
}

/* The parent: sends the warm-up messages, then the timed ones, and times
 * the run from the child's acknowledgement of the warm-up (its ready byte
 * when there is none; in ping-pong, the last warm-up echo) to its final
 * acknowledgement (stream) or the last echo (ping-pong). */
static int parent(int fd, const bench_opts *o, const unsigned char *ref,
                  bench_span *timed) {
  int rc = -1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  unsigned char *buf = malloc(o->size);
  unsigned char *echo = malloc(o->size);
  unsigned char ack;
  bench_span t0;
  if (buf == NULL || echo == NULL)
    goto out;
  memcpy(buf, ref, o->size);
  if (read_all(fd, &ack, 1) != 0)
    goto out;
  if (send_range(fd, o, ref, buf, echo, 0, o->warmup) != 0)
    goto out;
  if (o->warmup > 0 && !pingpong && read_all(fd, &ack, 1) != 0)
    goto out;
  t0 = bench_mark();
  if (send_range(fd, o, ref, buf, echo, o->warmup, o->count) != 0)
    goto out;
  if (!pingpong && read_all(fd, &ack, 1) != 0)
    goto out;
  *timed = bench_since(t0);
  rc = 0;
out:
  free(buf);
  free(echo);
  return rc;
}

int main(int argc, char **argv) {
  int rc = 1;
  int sv[2] = {-1, -1};
  bench_opts o;
  unsigned char *ref = NULL;
  bench_span timed = {0, 0};
  pid_t pid;
  if (bench_parse(argc, argv, modes, &o) != 0 || bench_no_spin(&o) != 0)
    goto out;
  /* A broken child must end the run with an error, not a SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  alarm(BENCH_ALARM_S);
  ref = malloc(o.size);
  if (ref == NULL)
    goto out;
  bench_pattern(ref, o.size);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    perror("socketpair");
    goto out;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    goto out;
  }
  if (pid == 0) {
    alarm(BENCH_ALARM_S);
    close(sv[0]);
    _exit(bench_pin(&o, 1) == 0 ? child(sv[1], &o, ref) : 1);
  }
  close(sv[1]);
  sv[1] = -1;
  if (bench_pin(&o, 0) != 0 || parent(sv[0], &o, ref, &timed) != 0) {
    close(sv[0]);
    sv[0] = -1;
    bench_wait_child(pid);
    goto out;
  }
  if (bench_wait_child(pid) != 0)
    goto out;
  bench_report("raw", &o, timed, strcmp(o.mode, "pingpong") == 0);
  rc = 0;
out:
  if (sv[0] >= 0)
    close(sv[0]);
  if (sv[1] >= 0)
    close(sv[1]);
  free(ref);
  return rc;
}
