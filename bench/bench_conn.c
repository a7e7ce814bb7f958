/* SPDX-License-Identifier: MIT */
/*
 * bench_conn: the core benchmark of libpipeconn. A duplex pc_pipe() between
 * this process and a forked child, one workload per run:
 *
 *   bench_conn [-w W] stream SIZE COUNT       pc_send_bytes per message; the
 *                                             child receives with
 *                                             pc_recv_bytes (a new buffer per
 *                                             message, freed)
 *   bench_conn [-w W] stream_into SIZE COUNT  the same; the child receives
 *                                             with pc_recv_bytes_into (one
 *                                             buffer)
 *   bench_conn [-w W] batch SIZE COUNT [B]    pc_send_batch of B messages per
 *                                             call (default 256); the child
 *                                             receives with
 *                                             pc_recv_bytes_into
 *   bench_conn [-w W] pingpong SIZE COUNT     parent sends, child echoes;
 *                                             both receive with
 *                                             pc_recv_bytes_into
 *
 * -w W sends W untimed warm-up messages (round trips) first, the same way as
 * the timed ones (in batch mode with pc_send_batch too); default 0. -c P,C
 * pins the parent to CPU P and the child to CPU C; -u N spins N loop
 * iterations after each received message; -s US sets pc_set_spin on both
 * ends. See bench_common.h. Prints one JSON line (see bench_common.h);
 * bench/run_bench.py compares it with a raw socketpair (bench_raw), Python's
 * multiprocessing.Pipe (conn_python.py) and ZeroMQ (bench_zmq).
 */
#include <sys/uio.h>

#include "bench_common.h"
#include "pipeconn.h"

static const char *const modes[] = {"stream", "stream_into", "batch",
                                    "pingpong", NULL};

static bool failed(const char *what, long rc) {
  bool bad = rc < 0;
  if (bad)
    fprintf(stderr, "%s: %s (%s)\n", what, pc_errname((int)rc),
            pc_strerror((int)rc));
  return bad;
}

/* recv_exact receives one message into buf[0..cap) and checks its length
 * is want. Returns true on success. */
static bool recv_exact(pc_conn *c, unsigned char *buf, size_t cap,
                       size_t want) {
  ssize_t n = pc_recv_bytes_into(c, buf, cap);
  bool ok = !failed("pc_recv_bytes_into", (long)n);
  if (ok && (size_t)n != want) {
    fprintf(stderr, "received %zd bytes, expected %zu\n", n, want);
    ok = false;
  }
  return ok;
}

/* The child: receives (and in ping-pong echoes) every message, checking
 * each; in a stream it acknowledges the last warm-up message and the last
 * message. Returns the exit code. */
static int child(pc_conn *c, const bench_opts *o, const unsigned char *ref) {
  int rc = 1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  bool into = strcmp(o->mode, "stream") != 0;
  long total = o->warmup + o->count;
  unsigned char *buf = malloc(o->size);
  if (buf == NULL)
    goto out;
  if (failed("pc_send_bytes", pc_send_bytes(c, "r", 1)))
    goto out;
  for (long i = 0; i < total; i++) {
    bool last = i == total - 1;
    if (into) {
      if (!recv_exact(c, buf, o->size, o->size))
        goto out;
      if (!bench_check(buf, o->size, o->size, (uint64_t)i, ref, last))
        goto out;
    } else {
      void *msg = NULL;
      size_t len = 0;
      bool ok;
      if (failed("pc_recv_bytes", pc_recv_bytes(c, &msg, &len, PC_NOLIMIT)))
        goto out;
      ok = bench_check(msg, len, o->size, (uint64_t)i, ref, last);
      free(msg);
      if (!ok)
        goto out;
    }
    if (pingpong && failed("pc_send_bytes", pc_send_bytes(c, buf, o->size)))
      goto out;
    if (!pingpong && i == o->warmup - 1 &&
        failed("pc_send_bytes", pc_send_bytes(c, "w", 1)))
      goto out;
  }
  if (!pingpong && failed("pc_send_bytes", pc_send_bytes(c, "a", 1)))
    goto out;
  rc = 0;
out:
  free(buf);
  return rc;
}

/* send_batches sends the messages with indexes first..first+n-1 as
 * pc_send_batch calls of up to o->batch messages, iov[j] pointing to the
 * buffer of the j-th message of a batch. Returns true on success. */
static bool send_batches(pc_conn *c, const bench_opts *o, struct iovec *iov,
                         long first, long n) {
  bool ok = true;
  long end = first + n;
  for (long i = first; ok && i < end; i += o->batch) {
    long k = end - i < o->batch ? end - i : o->batch;
    ssize_t sent;
    for (long j = 0; j < k; j++)
      bench_stamp(iov[j].iov_base, (uint64_t)(i + j));
    sent = pc_send_batch(c, iov, (size_t)k);
    ok = !failed("pc_send_batch", (long)sent);
    if (ok && sent != k) {
      fprintf(stderr, "pc_send_batch sent %zd of %ld\n", sent, k);
      ok = false;
    }
  }
  return ok;
}

/* send_each sends the messages with indexes first..first+n-1 from buf, one
 * pc_send_bytes each, and in ping-pong receives the echo of each into echo
 * and checks it. Returns true on success. */
static bool send_each(pc_conn *c, const bench_opts *o, const unsigned char *ref,
                      unsigned char *buf, unsigned char *echo, long first,
                      long n) {
  bool ok = false;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  long last = o->warmup + o->count - 1;
  for (long i = first; i < first + n; i++) {
    bench_stamp(buf, (uint64_t)i);
    if (failed("pc_send_bytes", pc_send_bytes(c, buf, o->size)))
      goto out;
    if (!pingpong)
      continue;
    if (!recv_exact(c, echo, o->size, o->size))
      goto out;
    if (!bench_check(echo, o->size, o->size, (uint64_t)i, ref, i == last))
      goto out;
  }
  ok = true;
out:
  return ok;
}

/* The parent: sends the warm-up messages, then the timed ones, and times
 * the run from the child's acknowledgement of the warm-up (its ready
 * message when there is none; in ping-pong, the last warm-up echo) to its
 * final acknowledgement (stream) or the last echo (ping-pong). */
static int parent(pc_conn *c, const bench_opts *o, const unsigned char *ref,
                  bench_span *timed) {
  int rc = -1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  bool batch = strcmp(o->mode, "batch") == 0, sent;
  size_t nbufs = batch ? (size_t)o->batch : 1;
  unsigned char *bufs = malloc(nbufs * o->size);
  unsigned char *echo = malloc(o->size);
  struct iovec *iov = calloc(nbufs, sizeof *iov);
  unsigned char ack[1];
  bench_span t0;
  if (bufs == NULL || echo == NULL || iov == NULL)
    goto out;
  for (size_t j = 0; j < nbufs; j++) {
    memcpy(bufs + j * o->size, ref, o->size);
    iov[j].iov_base = bufs + j * o->size;
    iov[j].iov_len = o->size;
  }
  if (!recv_exact(c, ack, sizeof ack, 1))
    goto out;
  sent = batch ? send_batches(c, o, iov, 0, o->warmup)
               : send_each(c, o, ref, bufs, echo, 0, o->warmup);
  if (!sent)
    goto out;
  if (o->warmup > 0 && !pingpong && !recv_exact(c, ack, sizeof ack, 1))
    goto out;
  t0 = bench_mark();
  sent = batch ? send_batches(c, o, iov, o->warmup, o->count)
               : send_each(c, o, ref, bufs, echo, o->warmup, o->count);
  if (!sent)
    goto out;
  if (!pingpong && !recv_exact(c, ack, sizeof ack, 1))
    goto out;
  *timed = bench_since(t0);
  rc = 0;
out:
  free(bufs);
  free(echo);
  free(iov);
  return rc;
}

int main(int argc, char **argv) {
  int rc = 1;
  pc_conn *mine = NULL, *theirs = NULL;
  bench_opts o;
  unsigned char *ref = NULL;
  bench_span timed = {0, 0};
  pid_t pid;
  if (bench_parse(argc, argv, modes, &o) != 0)
    goto out;
  alarm(BENCH_ALARM_S);
  ref = malloc(o.size);
  if (ref == NULL)
    goto out;
  bench_pattern(ref, o.size);
  if (failed("pc_pipe", pc_pipe(&mine, &theirs, 0)))
    goto out;
  if (o.spin >= 0 && (failed("pc_set_spin", pc_set_spin(mine, o.spin)) ||
                      failed("pc_set_spin", pc_set_spin(theirs, o.spin))))
    goto out;
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    goto out;
  }
  if (pid == 0) {
    int code = 1;
    alarm(BENCH_ALARM_S);
    pc_close(mine);
    if (bench_pin(&o, 1) == 0)
      code = child(theirs, &o, ref);
    pc_close(theirs);
    _exit(code);
  }
  pc_close(theirs);
  theirs = NULL;
  if (bench_pin(&o, 0) != 0 || parent(mine, &o, ref, &timed) != 0) {
    pc_close(mine);
    mine = NULL;
    bench_wait_child(pid);
    goto out;
  }
  if (bench_wait_child(pid) != 0)
    goto out;
  bench_report("pc", &o, timed, strcmp(o.mode, "pingpong") == 0);
  rc = 0;
out:
  pc_close(mine);
  pc_close(theirs);
  free(ref);
  return rc;
}
