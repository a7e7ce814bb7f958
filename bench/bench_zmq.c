/* SPDX-License-Identifier: MIT */
/*
 * bench_zmq: the core benchmark's workloads over ZeroMQ PAIR sockets on
 * ipc://, between this process and a forked child; a point of comparison
 * only (libpipeconn never depends on ZeroMQ). Built when pkg-config finds
 * libzmq (Debian: libzmq3-dev).
 *
 *   bench_zmq [-w W] stream SIZE COUNT     zmq_send per message, child
 *                                          zmq_recv
 *   bench_zmq [-w W] pingpong SIZE COUNT   parent sends, child echoes
 *
 * -w W sends W untimed warm-up messages (round trips) first (default 0); -c
 * P,C pins the parent to CPU P and the child to CPU C; -u N spins N loop
 * iterations after each received message (see bench_common.h).
 * Default socket options (high-water marks of 1000
 * messages), as a user gets them. Prints one JSON line (see bench_common.h).
 */
#include <signal.h>
#include <zmq.h>

#include "bench_common.h"

static const char *const modes[] = {"stream", "pingpong", NULL};

/* The end of one process: its context and PAIR socket. */
typedef struct zend {
  void *ctx;
  void *sock;
} zend;

/* zend_close gives queued messages up to a second to leave, then closes. */
static void zend_close(zend *z) {
  int linger = 1000;
  if (z->sock != NULL) {
    zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(z->sock);
  }
  if (z->ctx != NULL)
    zmq_ctx_term(z->ctx);
  z->sock = NULL;
  z->ctx = NULL;
}

/* zend_open creates the context and socket and binds (parent) or connects
 * (child) to endpoint. Returns 0 or -1. */
static int zend_open(zend *z, const char *endpoint, bool bind) {
  int rc = -1;
  z->ctx = zmq_ctx_new();
  z->sock = z->ctx != NULL ? zmq_socket(z->ctx, ZMQ_PAIR) : NULL;
  if (z->sock == NULL) {
    fprintf(stderr, "zmq_socket: %s\n", zmq_strerror(zmq_errno()));
    goto out;
  }
  if ((bind ? zmq_bind(z->sock, endpoint) : zmq_connect(z->sock, endpoint)) !=
      0) {
    fprintf(stderr, "zmq_%s %s: %s\n", bind ? "bind" : "connect", endpoint,
            zmq_strerror(zmq_errno()));
    goto out;
  }
  rc = 0;
out:
  return rc;
}

static bool zsend(zend *z, const void *buf, size_t len) {
  int n;
  do {
    n = zmq_send(z->sock, buf, len, 0);
  } while (n < 0 && zmq_errno() == EINTR);
  if (n < 0)
    fprintf(stderr, "zmq_send: %s\n", zmq_strerror(zmq_errno()));
  return n >= 0;
}

/* zrecv receives one message into buf[0..cap) and checks its length is
 * want (zmq_recv reports the full length even when it truncates). */
static bool zrecv(zend *z, void *buf, size_t cap, size_t want) {
  int n;
  bool ok = false;
  do {
    n = zmq_recv(z->sock, buf, cap, 0);
  } while (n < 0 && zmq_errno() == EINTR);
  if (n < 0)
    fprintf(stderr, "zmq_recv: %s\n", zmq_strerror(zmq_errno()));
  else if ((size_t)n != want)
    fprintf(stderr, "zmq_recv: %d bytes, expected %zu\n", n, want);
  else
    ok = true;
  return ok;
}

/* The child: receives (and in ping-pong echoes) every message, checking
 * each; in a stream it acknowledges the last warm-up message and the last
 * message. Returns the exit code. */
static int child(const char *endpoint, const bench_opts *o,
                 const unsigned char *ref) {
  int rc = 1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  long total = o->warmup + o->count;
  zend z = {NULL, NULL};
  unsigned char *buf = malloc(o->size);
  if (buf == NULL || zend_open(&z, endpoint, false) != 0)
    goto out;
  if (!zsend(&z, "r", 1))
    goto out;
  for (long i = 0; i < total; i++) {
    if (!zrecv(&z, buf, o->size, o->size))
      goto out;
    if (!bench_check(buf, o->size, o->size, (uint64_t)i, ref, i == total - 1))
      goto out;
    if (pingpong && !zsend(&z, buf, o->size))
      goto out;
    if (!pingpong && i == o->warmup - 1 && !zsend(&z, "w", 1))
      goto out;
  }
  if (!pingpong && !zsend(&z, "a", 1))
    goto out;
  rc = 0;
out:
  zend_close(&z);
  free(buf);
  return rc;
}

/* send_range sends the messages with indexes first..first+n-1 from buf
 * and, in ping-pong, receives the echo of each into echo and checks it.
 * Returns true on success. */
static bool send_range(zend *z, const bench_opts *o, const unsigned char *ref,
                       unsigned char *buf, unsigned char *echo, long first,
                       long n) {
  bool ok = false;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  long last = o->warmup + o->count - 1;
  for (long i = first; i < first + n; i++) {
    bench_stamp(buf, (uint64_t)i);
    if (!zsend(z, buf, o->size))
      goto out;
    if (!pingpong)
      continue;
    if (!zrecv(z, echo, o->size, o->size))
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
static int parent(zend *z, const bench_opts *o, const unsigned char *ref,
                  bench_span *timed) {
  int rc = -1;
  bool pingpong = strcmp(o->mode, "pingpong") == 0;
  unsigned char *buf = malloc(o->size);
  unsigned char *echo = malloc(o->size);
  unsigned char ack[1];
  bench_span t0;
  if (buf == NULL || echo == NULL)
    goto out;
  memcpy(buf, ref, o->size);
  if (!zrecv(z, ack, sizeof ack, 1))
    goto out;
  if (!send_range(z, o, ref, buf, echo, 0, o->warmup))
    goto out;
  if (o->warmup > 0 && !pingpong && !zrecv(z, ack, sizeof ack, 1))
    goto out;
  t0 = bench_mark();
  if (!send_range(z, o, ref, buf, echo, o->warmup, o->count))
    goto out;
  if (!pingpong && !zrecv(z, ack, sizeof ack, 1))
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
  bench_opts o;
  unsigned char *ref = NULL;
  bench_span timed = {0, 0};
  const char *tmp = getenv("TMPDIR");
  char dir[256] = "", sockpath[300] = "", endpoint[320];
  zend z = {NULL, NULL};
  pid_t pid = -1;
  if (bench_parse(argc, argv, modes, &o) != 0 || bench_no_spin(&o) != 0)
    goto out;
  alarm(BENCH_ALARM_S);
  ref = malloc(o.size);
  if (ref == NULL)
    goto out;
  bench_pattern(ref, o.size);
  snprintf(dir, sizeof dir, "%s/pc-bench-zmq-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : P_tmpdir);
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    dir[0] = '\0';
    goto out;
  }
  snprintf(sockpath, sizeof sockpath, "%s/sock", dir);
  snprintf(endpoint, sizeof endpoint, "ipc://%s", sockpath);
  /* Fork before any ZeroMQ context exists: contexts do not survive fork.
   * The child's connect retries until the parent has bound. */
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    goto out;
  }
  if (pid == 0) {
    alarm(BENCH_ALARM_S);
    _exit(bench_pin(&o, 1) == 0 ? child(endpoint, &o, ref) : 1);
  }
  if (bench_pin(&o, 0) != 0 || zend_open(&z, endpoint, true) != 0 ||
      parent(&z, &o, ref, &timed) != 0) {
    zend_close(&z);
    kill(pid, SIGTERM);
    bench_wait_child(pid);
    goto out;
  }
  zend_close(&z);
  if (bench_wait_child(pid) != 0)
    goto out;
  bench_report("zmq", &o, timed, strcmp(o.mode, "pingpong") == 0);
  rc = 0;
out:
  if (sockpath[0] != '\0')
    unlink(sockpath);
  if (dir[0] != '\0')
    rmdir(dir);
  free(ref);
  return rc;
}
