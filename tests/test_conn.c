/* SPDX-License-Identifier: MIT */
/* The Connection: framing, end of stream, errors, timeouts, signals,
 * threads and descriptors. */
#include "helpers.h"

#include "../src/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ utilities */

/* Writes all of p[0..n) on fd, for a forked child or a helper thread, which
 * must not use cmocka's asserts: true when all n bytes were written. */
static bool write_fully(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t off = 0; off < n;) {
    ssize_t k = write(fd, b + off, n - off);
    if (k < 0 && errno != EINTR)
      return false;
    off += k > 0 ? (size_t)k : 0;
  }
  return true;
}

/* Writes raw bytes on a descriptor (a hostile or Python-like peer). */
static void raw_write(int fd, const void *p, size_t n) {
  assert_true(write_fully(fd, p, n));
}

/* Raw descriptor pair plus the library end wrapping fds[0]. */
static pc_conn *wrap_socket(int *peer_fd) {
  int fds[2];
  pc_conn *c = NULL;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  assert_rc(0, pc_conn_from_fd(fds[0], PC_READABLE | PC_WRITABLE, &c));
  *peer_fd = fds[1];
  return c;
}

static void expect_message(pc_conn *c, const void *data, size_t len) {
  void *buf = NULL;
  size_t n = 0;
  assert_rc(0, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_int_equal(n, len);
  if (len > 0)
    assert_memory_equal(buf, data, len);
  free(buf);
}

/* Forks a child that closes `drop` (the parent's end: a child holding it
 * would never see end of stream) and runs fn(use). */
typedef struct end_child {
  int (*fn)(pc_conn *c);
  pc_conn *use, *drop;
} end_child;

static int end_child_main(void *p) {
  end_child *e = p;
  pc_close(e->drop);
  return e->fn(e->use);
}

static pid_t fork_end(int (*fn)(pc_conn *c), pc_conn *use, pc_conn *drop) {
  end_child e = {fn, use, drop};
  return pc_test_fork(end_child_main, &e);
}

/* ------------------------------------------------------------ creation */

static void test_pipe_duplex_both_ends_send_and_receive(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_true(pc_readable(a) && pc_writable(a));
  assert_true(pc_readable(b) && pc_writable(b));
  assert_false(pc_closed(a));
  assert_rc(0, pc_send_bytes(a, "hello", 5));
  assert_rc(0, pc_send_bytes(b, "world!", 6));
  expect_message(b, "hello", 5);
  expect_message(a, "world!", 6);
  assert_rc(0, pc_close(a));
  assert_rc(0, pc_close(b));
}

static void test_pipe_simplex_c1_reads_c2_writes(void **state) {
  (void)state;
  pc_conn *r, *w;
  void *buf = NULL;
  size_t n;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX));
  assert_true(pc_readable(r) && !pc_writable(r));
  assert_true(!pc_readable(w) && pc_writable(w));
  assert_rc(PC_EREADONLY, pc_send_bytes(r, "x", 1));
  assert_rc(PC_EWRITEONLY, pc_recv_bytes(w, &buf, &n, PC_NOLIMIT));
  assert_rc(PC_EWRITEONLY, pc_poll(w, 0));
  assert_rc(PC_EWRITEONLY, pc_recv_bytes_into(w, NULL, 0));
  assert_rc(PC_EWRITEONLY, pc_next_size(w));
  assert_rc(0, pc_send_bytes(w, "one", 3));
  expect_message(r, "one", 3);
  pc_close(r);
  pc_close(w);
}

static void test_pipe_rejects_bad_arguments_and_leaves_outputs(void **state) {
  (void)state;
  pc_conn *a = (pc_conn *)0x1, *b = (pc_conn *)0x2;
  assert_rc(-EINVAL, pc_pipe(NULL, &b, 0));
  assert_rc(-EINVAL, pc_pipe(&a, NULL, 0));
  assert_rc(-EINVAL, pc_pipe(&a, &b, 1 << 20));
  assert_rc(-EINVAL, pc_pipe(&a, &b, PC_READABLE));
  assert_ptr_equal(a, (pc_conn *)0x1);
  assert_ptr_equal(b, (pc_conn *)0x2);
}

static void test_descriptors_are_cloexec_and_blocking_by_default(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (int k = 0; k < 2; k++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    assert_true(pc_test_is_cloexec(pc_fileno(a)));
    assert_true(pc_test_is_cloexec(pc_fileno(b)));
    assert_false(fcntl(pc_fileno(a), F_GETFL) & O_NONBLOCK);
    assert_false(fcntl(pc_fileno(b), F_GETFL) & O_NONBLOCK);
    pc_close(a);
    pc_close(b);
  }
}

static void test_inherit_flag_clears_cloexec(void **state) {
  (void)state;
  const int kinds[] = {PC_INHERIT, PC_SIMPLEX | PC_INHERIT};
  for (int k = 0; k < 2; k++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    assert_false(pc_test_is_cloexec(pc_fileno(a)));
    assert_false(pc_test_is_cloexec(pc_fileno(b)));
    pc_close(a);
    pc_close(b);
  }
}

static void test_conn_from_fd_validates_and_takes_ownership(void **state) {
  (void)state;
  pc_conn *c = NULL;
  int fds[2];
  assert_rc(-EINVAL, pc_conn_from_fd(-1, PC_READABLE, &c));
  assert_rc(-EBADF, pc_conn_from_fd(987, PC_READABLE, &c));
  assert_null(c);
  /* No direction: rejected, and the descriptor (owned now) is closed. */
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  assert_rc(-EINVAL, pc_conn_from_fd(fds[0], 0, &c));
  assert_int_equal(fcntl(fds[0], F_GETFD), -1);
  assert_null(c);
  /* A read-only pipe end behaves as Python's simplex reader. */
  assert_rc(0, pc_conn_from_fd(fds[1], PC_WRITABLE, &c));
  pc_conn *r = NULL;
  int p2[2];
  assert_int_equal(pipe2(p2, O_CLOEXEC), 0);
  assert_rc(0, pc_conn_from_fd(p2[0], PC_READABLE, &r));
  raw_write(p2[1],
            "\0\0\0\x03"
            "abc",
            7);
  assert_int_equal(pc_fileno(r), p2[0]);
  expect_message(r, "abc", 3);
  pc_close(r);
  assert_int_equal(fcntl(p2[0], F_GETFD), -1); /* pc_close closed it */
  close(p2[1]);
  pc_close(c);
}

static void test_no_descriptor_leaks_over_many_pipes(void **state) {
  (void)state;
  int before = pc_test_count_fds();
  for (int i = 0; i < 200; i++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, i % 2 ? PC_SIMPLEX : 0));
    pc_close(a);
    pc_close(b);
  }
  assert_int_equal(pc_test_count_fds(), before);
}

static int emfile_child(void *arg) {
  (void)arg;
  /* Exhaust descriptors, then check pc_pipe fails cleanly and recovers. */
  struct rlimit rl = {64, 64};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 10;
  int spare[64], n = 0;
  for (;;) {
    int fd = dup(0);
    if (fd < 0)
      break;
    spare[n++] = fd;
  }
  /* One descriptor free: a pair cannot be made. */
  close(spare[--n]);
  pc_conn *a = NULL, *b = NULL;
  for (int kind = 0; kind < 2; kind++) {
    int rc = pc_pipe(&a, &b, kind ? PC_SIMPLEX : 0);
    if (rc != -EMFILE || a != NULL || b != NULL)
      return 11;
  }
  int fd = dup(0); /* the free slot must still be free: nothing leaked */
  if (fd < 0)
    return 12;
  close(fd);
  while (n > 0)
    close(spare[--n]);
  if (pc_pipe(&a, &b, 0) != 0)
    return 13;
  pc_close(a);
  pc_close(b);
  return 0;
}

static void test_pipe_reports_emfile_and_leaks_nothing(void **state) {
  (void)state;
  if (pc_test_valgrind()) {
    print_message("under valgrind: skipped (it does not hold socketpair(2) "
                  "to a lowered RLIMIT_NOFILE)\n");
    skip();
  }
  pc_test_wait_ok(pc_test_fork(emfile_child, NULL), 30);
}

/* ------------------------------------------------------------ wire format */

static void test_wire_format_is_pythons(void **state) {
  (void)state;
  int peer;
  pc_conn *c = wrap_socket(&peer);
  unsigned char got[9];
  assert_rc(0, pc_send_bytes(c, "hello", 5));
  assert_rc(0, pc_send_bytes(c, "", 0));
  ssize_t n = read(peer, got, sizeof got);
  assert_int_equal(n, 9);
  assert_memory_equal(got, "\0\0\0\x05hello", 9);
  n = read(peer, got, sizeof got);
  assert_int_equal(n, 4);
  assert_memory_equal(got, "\0\0\0\0", 4);
  pc_close(c);
  close(peer);
}

static void test_minus_one_header_accepted_for_small_payload(void **state) {
  (void)state;
  int peer;
  pc_conn *c = wrap_socket(&peer);
  raw_write(peer, "\xff\xff\xff\xff\0\0\0\0\0\0\0\x05hello", 17);
  expect_message(c, "hello", 5);
  pc_close(c);
  close(peer);
}

static void test_negative_header_is_sticky_protocol_error(void **state) {
  (void)state;
  int peer;
  pc_conn *c = wrap_socket(&peer);
  void *buf;
  size_t n;
  raw_write(peer,
            "\0\0\0\x01"
            "a"
            "\x80\0\0\0"
            "\0\0\0\x01"
            "b",
            13);
  expect_message(c, "a", 1);
  assert_rc(PC_EPROTO, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  /* No further bytes are read as frames. */
  assert_rc(PC_EPROTO, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_poll(c, 0), 1);
  /* The end still sends. */
  assert_rc(0, pc_send_bytes(c, "ok", 2));
  pc_close(c);
  close(peer);
}

/* ------------------------------------------------------------ sizes */

static const size_t sizes[] = {
    0,     1,     100,   16383, 16384,    16385,          32767,    32768,
    32769, 65535, 65536, 65537, 1u << 20, (1u << 20) + 3, 16u << 20};

static int echo_child(pc_conn *c) {
  for (;;) {
    void *buf;
    size_t n;
    int rc = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT);
    if (rc == PC_EOF)
      return 0;
    if (rc != 0)
      return 20;
    rc = pc_send_bytes(c, buf, n);
    free(buf);
    if (rc != 0)
      return 21;
  }
}

static void test_every_size_round_trips_through_a_child(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (int k = 0; k < 2; k++) {
    pc_conn *a, *b, *a2 = NULL, *b2 = NULL, *child_end;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    if (kinds[k] & PC_SIMPLEX) {
      /* Two one-way pipes: parent -> child (a reads) and back (a2 reads). */
      assert_rc(0, pc_pipe(&a2, &b2, PC_SIMPLEX));
    }
    pid_t pid;
    if (kinds[k] & PC_SIMPLEX) {
      fflush(NULL);
      pid = fork();
      assert_true(pid >= 0);
      if (pid == 0) {
        pc_close(b);
        pc_close(a2);
        for (;;) {
          void *buf;
          size_t n;
          int rc = pc_recv_bytes(a, &buf, &n, PC_NOLIMIT);
          if (rc == PC_EOF)
            _exit(0);
          if (rc != 0 || pc_send_bytes(b2, buf, n) != 0)
            _exit(22);
          free(buf);
        }
      }
      pc_close(a);
      pc_close(b2);
      child_end = NULL;
    } else {
      pid = fork_end(echo_child, b, a);
      pc_close(b);
      child_end = a;
    }
    pc_conn *tx = child_end != NULL ? child_end : b;
    pc_conn *rx = child_end != NULL ? child_end : a2;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char *msg = malloc(sizes[i] + 1);
      pc_test_pattern(msg, sizes[i], (uint32_t)i);
      assert_rc(0, pc_send_bytes(tx, msg, sizes[i]));
      /* Alternate the two receive forms. */
      if (i % 2 == 0) {
        void *got;
        size_t n;
        assert_rc(0, pc_recv_bytes(rx, &got, &n, PC_NOLIMIT));
        assert_int_equal(n, sizes[i]);
        assert_true(pc_test_pattern_ok(got, n, (uint32_t)i));
        free(got);
      } else {
        unsigned char *got = malloc(sizes[i] + 1);
        assert_int_equal(pc_recv_bytes_into(rx, got, sizes[i] + 1), sizes[i]);
        assert_true(pc_test_pattern_ok(got, sizes[i], (uint32_t)i));
        free(got);
      }
      free(msg);
    }
    pc_close(tx);
    if (rx != tx)
      pc_close(rx);
    pc_test_wait_ok(pid, 60);
  }
}

/* ------------------------------------------------------------ guessed reads
 * After a large message the receiver reads the next header together with
 * the start of the payload, straight into where a payload as large as the
 * last would go (rx_spec in conn.c). Every way the guess can be wrong must
 * still give the right messages. The frames come from a raw peer, written
 * in one go by a child so that each guessed read finds the next frames too. */

typedef struct frames_blob {
  unsigned char *data;
  size_t len;
} frames_blob;

/* Appends a frame of len pattern bytes (seed) with the 4-byte header, or
 * Python's -1 + 8-byte form when large_form. */
static void add_frame(frames_blob *b, size_t len, bool large_form,
                      uint32_t seed) {
  size_t hl = large_form ? 12 : 4;
  b->data = realloc(b->data, b->len + hl + len);
  assert_non_null(b->data);
  if (large_form) {
    pc__put_be32(b->data + b->len, UINT32_MAX);
    pc__put_be64(b->data + b->len + 4, len);
  } else {
    pc__put_be32(b->data + b->len, (uint32_t)len);
  }
  pc_test_pattern(b->data + b->len + hl, len, seed);
  b->len += hl + len;
}

typedef struct blob_writer {
  const frames_blob *b;
  int fd;
} blob_writer;

static int write_blob(void *arg) {
  blob_writer *w = arg;
  return write_fully(w->fd, w->b->data, w->b->len) ? 0 : 1;
}

/* A connection whose peer, a child, writes b and closes. */
static pc_conn *conn_fed_by(const frames_blob *b, pid_t *pid) {
  int peer;
  pc_conn *c = wrap_socket(&peer);
  blob_writer w = {b, peer};
  *pid = pc_test_fork(write_blob, &w);
  close(peer);
  return c;
}

/* form 0: pc_recv_bytes, 1: pc_recv_bytes_into, 2: alternating. */
static void expect_frame(pc_conn *c, int form, int i, size_t len,
                         uint32_t seed) {
  static unsigned char into[300000];
  if (form == 1 || (form == 2 && i % 2 == 1)) {
    assert_int_equal(pc_recv_bytes_into(c, into, sizeof into), (ssize_t)len);
    assert_true(pc_test_pattern_ok(into, len, seed));
  } else {
    void *buf = NULL;
    size_t n = 0;
    assert_rc(0, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
    assert_int_equal(n, len);
    assert_true(pc_test_pattern_ok(buf, n, seed));
    free(buf);
  }
}

static void test_guessed_reads_survive_every_change_of_size(void **state) {
  (void)state;
  /* Equal, small after large, shorter but large (the guess read part of
   * the next frame), longer, and header forms changing both ways. */
  static const struct {
    size_t len;
    bool large_form;
  } frames[] = {{100000, false}, {100000, false}, {10, false},
                {100000, false}, {40000, false},  {70000, false},
                {200000, false}, {100000, true},  {100000, false},
                {100000, true},  {100000, true},  {0, false},
                {65536, false},  {65536, false},  {131060, false}};
  size_t nframes = sizeof frames / sizeof frames[0];
  frames_blob b = {NULL, 0};
  for (size_t i = 0; i < nframes; i++)
    add_frame(&b, frames[i].len, frames[i].large_form, (uint32_t)i + 40);
  for (int form = 0; form < 3; form++) {
    pid_t pid;
    pc_conn *c = conn_fed_by(&b, &pid);
    for (size_t i = 0; i < nframes; i++)
      expect_frame(c, form, (int)i, frames[i].len, (uint32_t)i + 40);
    void *buf;
    size_t n;
    assert_rc(PC_EOF, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
    pc_test_wait_ok(pid, 30);
    pc_close(c);
  }
  free(b.data);
}

/* The same, with every guess made at a known moment: a writer thread puts
 * one phase of frames into the socket (it fits the socket buffer) and says
 * so; only then are they received, so each guess sees exactly those bytes.
 * Each phase after the first starts right after a large message. */
typedef struct phase_writer {
  int fd;
  const frames_blob *phases;
  size_t nphases;
  pc_test_sync go, written;
} phase_writer;

static void *phase_writer_main(void *arg) {
  phase_writer *w = arg;
  for (size_t p = 0; p < w->nphases; p++) {
    if (pc_test_sync_wait(&w->go, 10000) != 0)
      break;
    if (!write_fully(w->fd, w->phases[p].data, w->phases[p].len))
      break;
    pc_test_sync_post(&w->written);
  }
  return NULL;
}

/* Ends a test that hangs in a receive (a broken guess can leave it waiting
 * for bytes that already went elsewhere): unless `done` is posted within
 * 20 s, it shuts the peer down, and the receive fails instead. */
typedef struct watchdog {
  int peer;
  pc_test_sync done;
} watchdog;

static void *watchdog_main(void *arg) {
  watchdog *w = arg;
  if (pc_test_sync_wait(&w->done, 20000) != 0)
    shutdown(w->peer, SHUT_RDWR);
  return NULL;
}

/* A phase writer and its watchdog, on the raw peer of a connection. */
typedef struct phased {
  phase_writer w;
  watchdog dog;
  pthread_t t, wd;
} phased;

static void phased_start(phased *ph, int peer, const frames_blob *phases,
                         size_t nphases) {
  int big = 1 << 20; /* room for a whole phase (the kernel may clamp) */
  setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  ph->w.fd = peer;
  ph->w.phases = phases;
  ph->w.nphases = nphases;
  ph->dog.peer = peer;
  pc_test_sync_init(&ph->w.go);
  pc_test_sync_init(&ph->w.written);
  pc_test_sync_init(&ph->dog.done);
  assert_int_equal(pthread_create(&ph->t, NULL, phase_writer_main, &ph->w), 0);
  assert_int_equal(pthread_create(&ph->wd, NULL, watchdog_main, &ph->dog), 0);
}

/* Lets the writer put the next phase into the socket, and waits for it. */
static void phased_next(phased *ph) {
  pc_test_sync_post(&ph->w.go);
  assert_int_equal(pc_test_sync_wait(&ph->w.written, 10000), 0);
}

static void phased_stop(phased *ph) {
  pc_test_sync_post(&ph->dog.done);
  pthread_join(ph->wd, NULL);
  pthread_join(ph->t, NULL);
  pc_test_sync_close(&ph->w.go);
  pc_test_sync_close(&ph->w.written);
  pc_test_sync_close(&ph->dog.done);
}

static void test_each_wrong_guess_at_a_known_moment(void **state) {
  (void)state;
  /* {phase, length, large header form}: what each phase tests. */
  static const struct {
    int phase;
    size_t len;
    bool large_form;
  } frames[] = {
      {0, 100000, false},                    /* arms the guess */
      {1, 10, false},                        /* small, all of it arrived */
      {2, 100000, false},                    /* (no guess after small) */
      {3, 40000, false},  {3, 50000, false}, /* shorter: read into next */
      {4, 100000, true},                     /* header grew to 12 bytes */
      {5, 100000, false},                    /* and shrank back to 4 */
      {6, 120000, false},                    /* longer: guess holds */
      {7, 120000, false},                    /* equal: guess holds */
      {8, 50000, false},                     /* shorter, alone: holds */
  };
  enum { NFRAMES = sizeof frames / sizeof frames[0], NPHASES = 9 };
  frames_blob phases[NPHASES];
  memset(phases, 0, sizeof phases);
  for (size_t i = 0; i < NFRAMES; i++)
    add_frame(&phases[frames[i].phase], frames[i].len, frames[i].large_form,
              (uint32_t)i + 70);
  for (int form = 0; form < 3; form++) {
    int peer;
    pc_conn *c = wrap_socket(&peer);
    phased ph;
    phased_start(&ph, peer, phases, NPHASES);
    size_t i = 0;
    for (int p = 0; p < NPHASES; p++) {
      phased_next(&ph);
      for (; i < NFRAMES && frames[i].phase == p; i++)
        expect_frame(c, form, (int)i, frames[i].len, (uint32_t)i + 70);
    }
    phased_stop(&ph);
    close(peer);
    void *buf;
    size_t n;
    assert_rc(PC_EOF, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
    pc_close(c);
  }
  for (int p = 0; p < NPHASES; p++)
    free(phases[p].data);
}

/* A guess that holds for a payload shorter than the last one, of which only
 * a little has arrived: the rest must be read up to the payload's end and
 * not into the next frame, although the block from the guess is larger. A
 * tiny send buffer on the writer keeps only a few KiB in flight, so every
 * guess sees just a part. */
static void *tiny_writer_main(void *arg) {
  blob_writer *w = arg;
  return write_fully(w->fd, w->b->data, w->b->len) ? arg : NULL;
}

static void test_guess_larger_than_payload_stops_at_its_end(void **state) {
  (void)state;
  static const size_t lens[] = {100000, 50000, 100000, 40000, 90000, 90000};
  enum { N = sizeof lens / sizeof lens[0] };
  frames_blob b = {NULL, 0};
  for (size_t i = 0; i < N; i++)
    add_frame(&b, lens[i], false, (uint32_t)i + 90);
  for (int form = 0; form < 3; form++) {
    int peer;
    pc_conn *c = wrap_socket(&peer);
    int tiny = 1; /* the kernel raises it to its minimum */
    assert_int_equal(
        setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &tiny, sizeof tiny), 0);
    blob_writer w = {&b, peer};
    watchdog dog = {peer, {-1, -1}};
    pc_test_sync_init(&dog.done);
    pthread_t t, wd;
    assert_int_equal(pthread_create(&t, NULL, tiny_writer_main, &w), 0);
    assert_int_equal(pthread_create(&wd, NULL, watchdog_main, &dog), 0);
    for (size_t i = 0; i < N; i++)
      expect_frame(c, form, (int)i, lens[i], (uint32_t)i + 90);
    pc_test_sync_post(&dog.done);
    pthread_join(wd, NULL);
    void *ok;
    pthread_join(t, &ok);
    assert_non_null(ok);
    pc_test_sync_close(&dog.done);
    close(peer);
    pc_close(c);
  }
  free(b.data);
}

/* A guess written into the caller's buffer for a message that turns out
 * too long for it: PC_ETOOSHORT, and the message is still whole. The first
 * frame is larger than the read-ahead buffer, so none of the next one is in
 * the connection when the second receive guesses. */
static void test_guess_then_too_short_keeps_the_message(void **state) {
  (void)state;
  frames_blob phases[2] = {{NULL, 0}, {NULL, 0}};
  add_frame(&phases[0], 200000, false, 50);
  add_frame(&phases[1], 150000, false, 51);
  add_frame(&phases[1], 150000, false, 52);
  int peer;
  pc_conn *c = wrap_socket(&peer);
  phased ph;
  phased_start(&ph, peer, phases, 2);
  unsigned char *into = malloc(200000);
  void *buf = NULL;
  size_t n = 0;
  phased_next(&ph);
  assert_int_equal(pc_recv_bytes_into(c, into, 200000), 200000);
  assert_true(pc_test_pattern_ok(into, 200000, 50));
  phased_next(&ph);
  assert_rc(PC_ETOOSHORT, pc_recv_bytes_into(c, into, 100000));
  assert_int_equal(pc_next_size(c), 150000);
  assert_rc(0, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_int_equal(n, 150000);
  assert_true(pc_test_pattern_ok(buf, n, 51));
  free(buf);
  /* And a guess for a message over maxlength: PC_ETOOBIG, as always. */
  assert_rc(PC_ETOOBIG, pc_recv_bytes(c, &buf, &n, 120000));
  assert_false(pc_readable(c));
  phased_stop(&ph);
  free(into);
  close(peer);
  pc_close(c);
  free(phases[0].data);
  free(phases[1].data);
}

/* A guessed read that brings a bad header, or the end of the stream in
 * the middle of a payload, reports it as any read does. */
static void test_guess_then_bad_header_or_truncation(void **state) {
  (void)state;
  for (int form = 0; form < 2; form++) {
    frames_blob b = {NULL, 0};
    add_frame(&b, 100000, false, 60);
    size_t at = b.len;
    add_frame(&b, 100000, false, 61);
    pc__put_be32(b.data + at, (uint32_t)-5); /* negative, not -1 */
    pid_t pid;
    pc_conn *c = conn_fed_by(&b, &pid);
    expect_frame(c, form, form, 100000, 60);
    void *buf;
    size_t n;
    unsigned char *into = malloc(200000);
    assert_rc(PC_EPROTO, form == 0 ? pc_recv_bytes(c, &buf, &n, PC_NOLIMIT)
                                   : pc_recv_bytes_into(c, into, 200000));
    pc_test_wait_ok(pid, 30);
    pc_close(c);

    /* The second frame cut after half of its payload. */
    pc__put_be32(b.data + at, 100000);
    b.len = at + 4 + 50000;
    c = conn_fed_by(&b, &pid);
    expect_frame(c, form, form, 100000, 60);
    assert_rc(PC_ETRUNCATED, form == 0 ? pc_recv_bytes(c, &buf, &n, PC_NOLIMIT)
                                       : pc_recv_bytes_into(c, into, 200000));
    pc_test_wait_ok(pid, 30);
    pc_close(c);
    free(into);
    free(b.data);
  }
}

/* ------------------------------------------------------------ end of stream */

static void test_buffered_messages_delivered_then_sticky_eof(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (int k = 0; k < 2; k++) {
    pc_conn *r, *w;
    void *buf;
    size_t n;
    assert_rc(0, pc_pipe(&r, &w, kinds[k]));
    assert_rc(0, pc_send_bytes(w, "a", 1));
    assert_rc(0, pc_send_bytes(w, "", 0));
    assert_rc(0, pc_send_bytes(w, "ccc", 3));
    pc_close(w);
    expect_message(r, "a", 1);
    expect_message(r, "", 0);
    assert_int_equal(pc_poll(r, -1), 1);
    expect_message(r, "ccc", 3);
    assert_int_equal(pc_poll(r, -1), 1); /* end of stream counts */
    assert_rc(PC_EOF, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
    assert_rc(PC_EOF, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
    assert_rc(PC_EOF, pc_recv_bytes_into(r, NULL, 0));
    assert_rc(PC_EOF, pc_next_size(r));
    assert_int_equal(pc_poll(r, 0), 1);
    /* The end stays open and readable, as in Python. */
    assert_true(pc_readable(r));
    assert_false(pc_closed(r));
    pc_close(r);
  }
}

static void test_close_inside_header_or_payload_is_truncation(void **state) {
  (void)state;
  const char *partial[] = {"\0\0", "\xff\xff\xff\xff\0\0\0",
                           "\0\0\0\x05"
                           "ab",
                           "\0\0\x80\0"
                           "xyz"};
  const size_t lens[] = {2, 7, 6, 7};
  for (int i = 0; i < 4; i++) {
    int peer;
    pc_conn *c = wrap_socket(&peer);
    void *buf;
    size_t n;
    raw_write(peer, partial[i], lens[i]);
    close(peer);
    assert_rc(PC_ETRUNCATED, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
    assert_rc(PC_ETRUNCATED, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
    assert_int_equal(pc_poll(c, 0), 1);
    pc_close(c);
  }
}

/* ------------------------------------------------------------ SIGPIPE */

static int epipe_child(void *arg) {
  int kind = *(int *)arg;
  struct sigaction before, after;
  sigset_t pending;
  /* SIGPIPE at its default action: raising it would kill this process. */
  signal(SIGPIPE, SIG_DFL);
  sigaction(SIGPIPE, NULL, &before);
  pc_conn *r, *w;
  if (pc_pipe(&r, &w, kind) != 0)
    return 30;
  pc_close(r);
  int rc = pc_send_bytes(w, "lost", 4);
  if (rc != -EPIPE)
    return 31;
  rc = pc_send_bytes(w, "again", 5);
  if (rc != -EPIPE)
    return 32;
  sigpending(&pending);
  if (sigismember(&pending, SIGPIPE))
    return 33;
  sigaction(SIGPIPE, NULL, &after);
  if (after.sa_handler != before.sa_handler)
    return 34;
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, NULL, &mask);
  if (sigismember(&mask, SIGPIPE))
    return 35; /* the mask is restored */
  pc_close(w);
  return 0;
}

static void test_send_to_gone_peer_is_epipe_without_sigpipe(void **state) {
  (void)state;
  int kinds[] = {0, PC_SIMPLEX};
  for (int k = 0; k < 2; k++)
    pc_test_wait_ok(pc_test_fork(epipe_child, &kinds[k]), 30);
}

static int pending_sigpipe_child(void *arg) {
  (void)arg;
  signal(SIGPIPE, SIG_DFL);
  sigset_t set, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  raise(SIGPIPE); /* somebody else's, pending before the send */
  pc_conn *r, *w;
  if (pc_pipe(&r, &w, PC_SIMPLEX) != 0)
    return 40;
  pc_close(r);
  if (pc_send_bytes(w, "x", 1) != -EPIPE)
    return 41;
  sigpending(&pending);
  if (!sigismember(&pending, SIGPIPE))
    return 42; /* the earlier signal was kept */
  int sig;
  sigwait(&set, &sig); /* consume it, and check no second one exists */
  sigpending(&pending);
  if (sigismember(&pending, SIGPIPE))
    return 43;
  pc_close(w);
  return 0;
}

static void test_pending_sigpipe_of_the_caller_is_kept(void **state) {
  (void)state;
  pc_test_wait_ok(pc_test_fork(pending_sigpipe_child, NULL), 30);
}

/* ------------------------------------------------------------ maxlength */

static void test_too_big_duplex_end_stays_writable(void **state) {
  (void)state;
  pc_conn *a, *b;
  void *buf = NULL;
  size_t n;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_send_bytes(b, "0123456789", 10));
  assert_rc(PC_ETOOBIG, pc_recv_bytes(a, &buf, &n, 3));
  assert_null(buf);
  assert_false(pc_readable(a));
  assert_true(pc_writable(a));
  assert_false(pc_closed(a));
  assert_rc(PC_EWRITEONLY, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
  assert_rc(0, pc_send_bytes(a, "still", 5));
  expect_message(b, "still", 5);
  pc_close(a);
  pc_close(b);
}

static void test_too_big_read_only_end_is_closed(void **state) {
  (void)state;
  pc_conn *r, *w;
  void *buf;
  size_t n;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX));
  assert_rc(0, pc_send_bytes(w, "0123456789", 10));
  assert_rc(PC_ETOOBIG, pc_recv_bytes(r, &buf, &n, 9));
  assert_true(pc_closed(r));
  assert_rc(PC_ECLOSED, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  assert_rc(PC_ECLOSED, pc_poll(r, 0));
  assert_rc(PC_ECLOSED, pc_fileno(r));
  assert_rc(PC_ECLOSED, pc_send_bytes(r, "x", 1));
  assert_rc(PC_ECLOSED, pc_set_timeout(r, 5));
  assert_rc(PC_ECLOSED, pc_flush(r));
  assert_rc(0, pc_close(r));
  /* The reader is gone for real. */
  assert_rc(-EPIPE, pc_send_bytes(w, "x", 1));
  pc_close(w);
}

static void test_maxlength_zero_accepts_empty_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  void *buf = NULL;
  size_t n = 9;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_send_bytes(b, "", 0));
  assert_rc(0, pc_recv_bytes(a, &buf, &n, 0));
  assert_non_null(buf);
  assert_int_equal(n, 0);
  free(buf);
  pc_close(a);
  pc_close(b);
}

/* ------------------------------------------------------------ recv_bytes_into */

static void test_recv_into_too_short_keeps_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  char small[4] = "zzzz", big[64];
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_send_bytes(b, "0123456789", 10));
  assert_rc(0, pc_send_bytes(b, "next", 4));
  assert_rc(PC_ETOOSHORT, pc_recv_bytes_into(a, small, sizeof small));
  assert_memory_equal(small, "zzzz", 4); /* untouched */
  assert_int_equal(pc_next_size(a), 10);
  assert_int_equal(pc_next_size(a), 10); /* does not consume */
  assert_int_equal(pc_recv_bytes_into(a, big, sizeof big), 10);
  assert_memory_equal(big, "0123456789", 10);
  assert_int_equal(pc_recv_bytes_into(a, small, sizeof small), 4);
  assert_memory_equal(small, "next", 4);
  pc_close(a);
  pc_close(b);
}

static void test_recv_into_rejects_null_buffer_with_capacity(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(-EINVAL, pc_recv_bytes_into(a, NULL, 5));
  void *p;
  assert_rc(-EINVAL, pc_recv_bytes(a, NULL, NULL, 1));
  assert_rc(-EINVAL, pc_recv_bytes(a, &p, NULL, 1));
  assert_rc(-EINVAL, pc_send_bytes(a, NULL, 3));
  assert_rc(0, pc_send_bytes(b, NULL, 0));
  assert_int_equal(pc_recv_bytes_into(a, NULL, 0), 0);
  pc_close(a);
  pc_close(b);
}

/* ------------------------------------------------------------ scatter/batch */

static void test_send_bytesv_makes_one_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  struct iovec v[3] = {{PC_TEST_STR("head"), 4},
                       {PC_TEST_STR(""), 0},
                       {PC_TEST_STR("-body"), 5}};
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_send_bytesv(a, v, 3));
  assert_rc(0, pc_send_bytesv(a, NULL, 0));
  expect_message(b, "head-body", 9);
  expect_message(b, "", 0);
  assert_rc(-EINVAL, pc_send_bytesv(a, v, -1));
  pc_close(a);
  pc_close(b);
}

static int batch_reader(pc_conn *c) {
  for (uint32_t i = 0; i < 3000; i++) {
    void *buf;
    size_t n;
    if (pc_recv_bytes(c, &buf, &n, PC_NOLIMIT) != 0)
      return 50;
    if (n != (i * 37u) % 2000u || !pc_test_pattern_ok(buf, n, i))
      return 51;
    free(buf);
  }
  void *buf;
  size_t n;
  return pc_recv_bytes(c, &buf, &n, PC_NOLIMIT) == PC_EOF ? 0 : 52;
}

static void test_send_batch_delivers_separate_messages_in_order(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pid_t pid = fork_end(batch_reader, b, a);
  pc_close(b);
  struct iovec *msgs = calloc(3000, sizeof *msgs);
  for (uint32_t i = 0; i < 3000; i++) {
    msgs[i].iov_len = (i * 37u) % 2000u;
    msgs[i].iov_base = malloc(msgs[i].iov_len + 1);
    pc_test_pattern(msgs[i].iov_base, msgs[i].iov_len, i);
  }
  assert_int_equal(pc_send_batch(a, msgs, 1000), 1000);
  assert_int_equal(pc_send_batch(a, msgs + 1000, 2000), 2000);
  assert_int_equal(pc_send_batch(a, msgs, 0), 0);
  pc_close(a);
  pc_test_wait_ok(pid, 60);
  for (int i = 0; i < 3000; i++)
    free(msgs[i].iov_base);
  free(msgs);
}

static void test_send_batch_short_count_on_timeout(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_set_timeout(a, 0));
  static unsigned char blob[4096];
  struct iovec msgs[2000];
  for (uint32_t i = 0; i < 2000; i++) {
    msgs[i].iov_base = blob;
    msgs[i].iov_len = sizeof blob;
  }
  pc_test_pattern(blob, sizeof blob, 7);
  /* Far more than the socket holds: some go, the rest is reported. */
  ssize_t sent = pc_send_batch(a, msgs, 2000);
  assert_true(sent > 0 && sent < 2000);
  assert_rc(0, pc_set_timeout(b, 0));
  for (ssize_t i = 0; i < sent; i++) {
    /* The cut frame is completed from the library's hold as we read. */
    unsigned char got[4096];
    ssize_t n;
    while ((n = pc_recv_bytes_into(b, got, sizeof got)) == -EAGAIN)
      assert_true(pc_flush(a) == 0 || pc_flush(a) == -EAGAIN);
    assert_int_equal(n, 4096);
    assert_true(pc_test_pattern_ok(got, 4096, 7));
  }
  assert_rc(0, pc_flush(a));
  assert_int_equal(pc_poll(b, 0), 0); /* nothing beyond the count */
  pc_close(a);
  pc_close(b);
}

/* ------------------------------------------------------------ timeouts */

static void test_set_timeout_validates(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(-EINVAL, pc_set_timeout(a, -2));
  assert_rc(-EINVAL, pc_set_timeout(NULL, 1));
  assert_rc(-EINVAL, pc_poll(a, -5));
  assert_rc(0, pc_set_timeout(a, 0));
  assert_rc(0, pc_set_timeout(a, -1));
  pc_close(a);
  pc_close(b);
}

static void test_receive_times_out_with_nothing(void **state) {
  (void)state;
  pc_conn *a, *b;
  void *buf;
  size_t n;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_int_equal(pc_poll(a, 0), 0);
  assert_int_equal(pc_poll(a, 20), 0);
  assert_rc(0, pc_set_timeout(a, 0));
  assert_rc(-EAGAIN, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
  assert_rc(0, pc_set_timeout(a, 20));
  assert_rc(-ETIMEDOUT, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
  assert_rc(-ETIMEDOUT, pc_next_size(a));
  pc_close(a);
  pc_close(b);
}

static void test_receive_resumes_partial_message_after_timeout(void **state) {
  (void)state;
  const size_t lens[] = {10, 100000, 3u << 20};
  for (int i = 0; i < 3; i++) {
    int peer;
    pc_conn *c = wrap_socket(&peer);
    size_t len = lens[i];
    unsigned char *msg = malloc(len + 4);
    pc_test_pattern(msg + 4, len, 3);
    msg[0] = (unsigned char)(len >> 24);
    msg[1] = (unsigned char)(len >> 16);
    msg[2] = (unsigned char)(len >> 8);
    msg[3] = (unsigned char)len;
    /* The writer sends the header and half the payload, waits for the
     * parent's go, then sends the rest. */
    pc_test_sync go;
    pc_test_sync_init(&go);
    size_t half = 4 + len / 2;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      size_t off = 0;
      ssize_t k;
      while (off < half && (k = write(peer, msg + off, half - off)) > 0)
        off += (size_t)k;
      if (pc_test_sync_wait(&go, 30000) != 0)
        _exit(60);
      while (off < len + 4 && (k = write(peer, msg + off, len + 4 - off)) > 0)
        off += (size_t)k;
      _exit(off == len + 4 ? 0 : 61);
    }
    void *buf;
    size_t n;
    assert_int_equal(pc_next_size(c), (ssize_t)len); /* header is there */
    assert_rc(0, pc_set_timeout(c, 10));
    assert_rc(-ETIMEDOUT, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
    assert_int_equal(pc_poll(c, 0), 0); /* a partial message is not ready */
    assert_rc(-ETIMEDOUT, pc_recv_bytes_into(c, msg, len + 4));
    assert_int_equal(pc_next_size(c), (ssize_t)len);
    pc_test_sync_post(&go);
    assert_rc(0, pc_set_timeout(c, -1));
    if (i % 2 == 0) {
      assert_rc(0, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
      assert_int_equal(n, len);
      assert_true(pc_test_pattern_ok(buf, n, 3));
      free(buf);
    } else {
      unsigned char *into = malloc(len);
      assert_int_equal(pc_recv_bytes_into(c, into, len), (ssize_t)len);
      assert_true(pc_test_pattern_ok(into, len, 3));
      free(into);
    }
    pc_test_wait_ok(pid, 30);
    pc_test_sync_close(&go);
    free(msg);
    pc_close(c);
    close(peer);
  }
}

static void test_send_timeout_sends_nothing_of_that_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  static unsigned char blob[1000];
  int ok = 0, rc;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_set_timeout(a, 0));
  pc_test_pattern(blob, sizeof blob, 9);
  /* Small messages until the socket is full: the failing one sent nothing. */
  while ((rc = pc_send_bytes(a, blob, sizeof blob)) == 0)
    ok++;
  assert_rc(-EAGAIN, rc);
  assert_rc(0, pc_set_timeout(a, 30));
  /* If the failing send had held a remainder, flush would still owe it. */
  assert_rc(0, pc_flush(a));
  assert_rc(-ETIMEDOUT, pc_send_bytes(a, blob, sizeof blob));
  assert_rc(0, pc_set_timeout(b, 0));
  for (int i = 0; i < ok; i++) {
    unsigned char got[1000];
    assert_int_equal(pc_recv_bytes_into(b, got, sizeof got), 1000);
    assert_true(pc_test_pattern_ok(got, sizeof got, 9));
  }
  assert_rc(-EAGAIN, pc_recv_bytes_into(b, NULL, 0));
  pc_close(a);
  pc_close(b);
}

static void *drain_one(void *arg) {
  pc_conn *c = arg;
  void *buf = NULL;
  size_t n = 0;
  intptr_t ok = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT) == 0 &&
                n == (4u << 20) && pc_test_pattern_ok(buf, n, 11);
  free(buf);
  void *b2;
  ok = ok && pc_recv_bytes(c, &b2, &n, PC_NOLIMIT) == 0 && n == 2 &&
       memcmp(b2, "ok", 2) == 0;
  if (ok)
    free(b2);
  return (void *)ok;
}

/* A duplex pipe whose end *a holds the tail of a 4 MiB frame (pattern
 * seed): part of the frame fits in the socket, so the non-blocking send
 * succeeds and the library keeps the rest. The caller's buffer is wiped and
 * freed at once: the library kept its own copy. */
static void hold_a_tail(pc_conn **a, pc_conn **b, uint32_t seed) {
  size_t len = 4u << 20;
  unsigned char *big = malloc(len);
  assert_non_null(big);
  pc_test_pattern(big, len, seed);
  assert_rc(0, pc_pipe(a, b, 0));
  assert_rc(0, pc_set_timeout(*a, 0));
  assert_rc(0, pc_send_bytes(*a, big, len));
  memset(big, 0, len);
  free(big);
}

static void
test_send_timeout_mid_frame_keeps_rest_and_flush_finishes(void **state) {
  (void)state;
  pc_conn *a, *b;
  hold_a_tail(&a, &b, 11);
  assert_rc(-EAGAIN, pc_flush(a));
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, drain_one, b), 0);
  assert_rc(0, pc_set_timeout(a, -1));
  assert_rc(0, pc_flush(a));
  assert_rc(0, pc_send_bytes(a, "ok", 2)); /* after the held frame */
  void *ok;
  pthread_join(t, &ok);
  assert_true(ok != NULL);
  pc_close(a);
  pc_close(b);
}

/* A blocking send on a socket end takes a short path; with a tail held
 * from a cut frame it must still send that tail first, or "ok" would land
 * in the middle of the big frame. */
static void test_blocking_send_after_held_rest_sends_rest_first(void **state) {
  (void)state;
  pc_conn *a, *b;
  hold_a_tail(&a, &b, 11);
  assert_rc(-EAGAIN, pc_flush(a));        /* a tail is held */
  assert_rc(0, pc_set_timeout(b, 10000)); /* a broken stream fails, not hangs */
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, drain_one, b), 0);
  assert_rc(0, pc_set_timeout(a, -1));
  assert_rc(0, pc_send_bytes(a, "ok", 2));
  void *ok;
  pthread_join(t, &ok);
  assert_true(ok != NULL);
  pc_close(a);
  pc_close(b);
}

static void *drain_then_eof(void *arg) {
  pc_conn *c = arg;
  void *buf = NULL;
  size_t n = 0;
  intptr_t ok = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT) == 0 &&
                n == (4u << 20) && pc_test_pattern_ok(buf, n, 12);
  free(buf);
  ok = ok && pc_recv_bytes(c, &buf, &n, PC_NOLIMIT) == PC_EOF;
  return (void *)ok;
}

static void test_close_sends_held_remainder(void **state) {
  (void)state;
  pc_conn *a, *b;
  hold_a_tail(&a, &b, 12);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, drain_then_eof, b), 0);
  assert_rc(0, pc_set_timeout(a, -1));
  assert_rc(0, pc_close(a));
  void *ok;
  pthread_join(t, &ok);
  assert_true(ok != NULL);
  pc_close(b);
}

static void test_close_reports_undeliverable_remainder(void **state) {
  (void)state;
  pc_conn *a, *b;
  size_t len = 4u << 20;
  unsigned char *big = calloc(1, len);
  void *buf;
  size_t n;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_set_timeout(a, 0));
  assert_rc(0, pc_send_bytes(a, big, len));
  free(big);
  assert_rc(-EAGAIN, pc_close(a)); /* released anyway */
  assert_rc(PC_ETRUNCATED, pc_recv_bytes(b, &buf, &n, PC_NOLIMIT));
  pc_close(b);
}

/* ------------------------------------------------------------ memory */

static void test_lying_length_does_not_allocate_up_front(void **state) {
  (void)state;
  int peer;
  pc_conn *c = wrap_socket(&peer);
  void *buf;
  size_t n;
  /* 2^62 bytes announced, 5 sent. */
  raw_write(peer,
            "\xff\xff\xff\xff\x40\0\0\0\0\0\0\0"
            "abcde",
            17);
  assert_rc(0, pc_set_timeout(c, 20));
  assert_rc(-ETIMEDOUT, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_next_size(c), (ssize_t)(1ull << 62));
  close(peer);
  assert_rc(PC_ETRUNCATED, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  pc_close(c);

  /* The largest small header, a few bytes: waits, no -ENOMEM. */
  c = wrap_socket(&peer);
  raw_write(peer,
            "\x7f\xff\xff\xff"
            "abc",
            7);
  assert_rc(0, pc_set_timeout(c, 20));
  assert_rc(-ETIMEDOUT, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_poll(c, 0), 0);
  pc_close(c);
  close(peer);
}

/* Resident memory of this process, in bytes. */
static size_t resident_bytes(void) {
  unsigned long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  assert_non_null(f);
  assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
  fclose(f);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Populating a payload's pages ahead of the reads stays within a window:
 * a header announcing 60 MiB followed by a few bytes touches a few MiB. */
static void test_lying_length_populates_little_memory(void **state) {
  (void)state;
  if (pc_test_valgrind()) {
    print_message("skipped: valgrind's own memory hides the process's RSS\n");
    skip();
  }
  int peer;
  pc_conn *c = wrap_socket(&peer);
  void *buf;
  size_t n;
  raw_write(peer,
            "\x03\xc0\0\0" /* 60 MiB */
            "abcde",
            9);
  size_t before = resident_bytes();
  assert_rc(0, pc_set_timeout(c, 20));
  assert_rc(-ETIMEDOUT, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  size_t grew = resident_bytes() - before;
  assert_true(grew < (8u << 20));
  pc_close(c);
  close(peer);
}

/* pc__io_prefault populates the whole pages of a fresh range in one call,
 * says so, and leaves a resident range alone. */
static void test_prefault_populates_fresh_pages_only(void **state) {
  (void)state;
  size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 64 * page;
  unsigned char vec[64];
  unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  assert_int_equal(mincore(p, len, vec), 0);
  for (size_t i = 0; i < 64; i++)
    assert_int_equal(vec[i] & 1, 0);
  if (!pc__io_prefault(p + 1, len - 2)) {
    munmap(p, len);
    print_message("skipped: this kernel has no MADV_POPULATE_WRITE "
                  "(Linux < 5.14); reads fault pages in one by one\n");
    skip();
  }
  assert_int_equal(mincore(p, len, vec), 0);
  /* The partial first and last pages are left to the read. */
  assert_int_equal(vec[0] & 1, 0);
  assert_int_equal(vec[63] & 1, 0);
  for (size_t i = 1; i < 63; i++)
    assert_int_equal(vec[i] & 1, 1);
  assert_false(pc__io_prefault(p + 1, len - 2));
  munmap(p, len);
}

/* Writes two frames of `len` pattern bytes in uneven pieces, so that reads
 * end anywhere relative to the populated windows. */
static int uneven_writer(void *arg) {
  int fd = *(int *)arg;
  size_t len = (5u << 20) + 3;
  unsigned char *msg = malloc(4 + len);
  if (msg == NULL)
    return 1;
  pc__put_be32(msg, (uint32_t)len);
  pc_test_pattern(msg + 4, len, 21);
  for (int k = 0; k < 2; k++) {
    for (size_t off = 0; off < 4 + len;) {
      size_t piece = 4 + len - off < 77777 ? 4 + len - off : 77777;
      ssize_t w = write(fd, msg + off, piece);
      if (w < 0 && errno != EINTR)
        return 2;
      off += w > 0 ? (size_t)w : 0;
    }
  }
  free(msg);
  return 0;
}

/* Large payloads read into fresh memory (populated a window at a time)
 * arrive whole, into the caller's buffer at an odd address and into a
 * malloc'd one. */
static void test_large_payload_into_fresh_memory_arrives_whole(void **state) {
  (void)state;
  int peer;
  size_t len = (5u << 20) + 3, map = len + 2 * 4096;
  pc_conn *c = wrap_socket(&peer);
  pid_t pid = pc_test_fork(uneven_writer, &peer);
  close(peer);
  unsigned char *fresh = mmap(NULL, map, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(fresh != MAP_FAILED);
  assert_int_equal(pc_recv_bytes_into(c, fresh + 1, len), (ssize_t)len);
  assert_true(pc_test_pattern_ok(fresh + 1, len, 21));
  munmap(fresh, map);
  void *buf = NULL;
  size_t n = 0;
  assert_rc(0, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  assert_int_equal(n, len);
  assert_true(pc_test_pattern_ok(buf, n, 21));
  free(buf);
  pc_test_wait_ok(pid, 60);
  assert_rc(PC_EOF, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  pc_close(c);
}

/* Whether the mapping that holds address a carries the huge-page advice
 * (VmFlags "hg" in /proc/self/smaps). */
static bool advised_huge(uintptr_t a) {
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  bool inside = false, hg = false;
  assert_non_null(f);
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
      inside = a >= lo && a < hi;
    else if (inside && strncmp(line, "VmFlags:", 8) == 0)
      hg = strstr(line, " hg") != NULL;
  }
  fclose(f);
  return hg;
}

#define HUGE_MSG ((8u << 20) + 5)

/* The child: sends three messages on ends[1], after closing its copy of
 * ends[0], so that it stops (EPIPE) should the parent stop reading. */
static int send_three_huge(void *arg) {
  pc_conn **ends = arg;
  pc_conn *c = ends[1];
  int rc = 0;
  pc_close(ends[0]);
  unsigned char *msg = malloc(HUGE_MSG);
  if (msg == NULL)
    return 1;
  pc_test_pattern(msg, HUGE_MSG, 33);
  for (int k = 0; k < 3 && rc == 0; k++)
    rc = pc_send_bytes(c, msg, HUGE_MSG) == 0 ? 0 : 2;
  free(msg);
  return rc;
}

/* Blocks of 4 MiB and more that the library allocates for a payload (the
 * first large message, and the next one read into a guessed block) are
 * offered transparent huge pages; a caller's buffer never is. */
static void test_large_received_blocks_are_offered_huge_pages(void **state) {
  (void)state;
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
    skip(); /* no THP in this kernel: the hint has nothing to act on */
  pc_conn *ends[2];
  assert_rc(0, pc_pipe(&ends[0], &ends[1], 0));
  pc_conn *a = ends[0];
  pid_t pid = pc_test_fork(send_three_huge, ends);
  pc_close(ends[1]);
  const uintptr_t huge = (uintptr_t)2 << 20;
  for (int k = 0; k < 2; k++) {
    void *buf = NULL;
    size_t n = 0;
    assert_rc(0, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
    assert_int_equal(n, HUGE_MSG);
    assert_true(pc_test_pattern_ok(buf, n, 33));
    assert_true(advised_huge(((uintptr_t)buf + huge - 1) & ~(huge - 1)));
    free(buf);
  }
  size_t map = HUGE_MSG + huge;
  unsigned char *mine = mmap(NULL, map, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(mine != MAP_FAILED);
  assert_int_equal(pc_recv_bytes_into(a, mine, HUGE_MSG), (ssize_t)HUGE_MSG);
  assert_true(pc_test_pattern_ok(mine, HUGE_MSG, 33));
  assert_false(advised_huge(((uintptr_t)mine + huge - 1) & ~(huge - 1)));
  munmap(mine, map);
  pc_test_wait_ok(pid, 60);
  pc_close(a);
}

static void
test_length_beyond_address_space_is_too_big_for_next_size(void **state) {
  (void)state;
  int peer;
  pc_conn *c = wrap_socket(&peer);
  void *buf;
  size_t n;
  raw_write(peer,
            "\xff\xff\xff\xff\xff\0\0\0\0\0\0\0"
            "abcde",
            17);
  assert_rc(PC_ETOOBIG, pc_next_size(c));
  assert_rc(-ENOMEM, pc_recv_bytes(c, &buf, &n, PC_NOLIMIT));
  pc_close(c);
  close(peer);
}

/* ------------------------------------------------------------ poll */

static void test_poll_is_idempotent_and_keeps_boundaries(void **state) {
  (void)state;
  pc_conn *a, *b;
  char buf[8];
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_int_equal(pc_poll(a, 0), 0);
  assert_rc(0, pc_send_bytes(b, "", 0));
  assert_int_equal(pc_poll(a, 0), 1);
  assert_int_equal(pc_poll(a, 0), 1);
  assert_int_equal(pc_recv_bytes_into(a, buf, sizeof buf), 0);
  assert_int_equal(pc_poll(a, 0), 0);
  assert_rc(0, pc_send_bytes(b, "a", 1));
  assert_rc(0, pc_send_bytes(b, "b", 1));
  assert_rc(0, pc_send_bytes(b, "cd", 2));
  assert_int_equal(pc_poll(a, -1), 1);
  assert_int_equal(pc_recv_bytes_into(a, buf, sizeof buf), 1);
  assert_int_equal(buf[0], 'a');
  assert_int_equal(pc_poll(a, 0), 1);
  assert_int_equal(pc_poll(a, 0), 1);
  assert_int_equal(pc_recv_bytes_into(a, buf, sizeof buf), 1);
  assert_int_equal(buf[0], 'b');
  assert_int_equal(pc_poll(a, 0), 1);
  assert_int_equal(pc_recv_bytes_into(a, buf, sizeof buf), 2);
  assert_memory_equal(buf, "cd", 2);
  assert_int_equal(pc_poll(a, 0), 0);
  pc_close(a);
  pc_close(b);
}

static void test_poll_ignores_partial_frame_unlike_python(void **state) {
  (void)state;
  int peer;
  pc_conn *c = wrap_socket(&peer);
  raw_write(peer,
            "\0\0\0\x04"
            "ab",
            6);
  assert_int_equal(pc_poll(c, 0), 0);
  assert_int_equal(pc_poll(c, 10), 0);
  raw_write(peer, "cd", 2);
  assert_int_equal(pc_poll(c, 0), 1);
  expect_message(c, "abcd", 4);
  pc_close(c);
  close(peer);
}

static int late_sender(void *arg) {
  pc_test_sync *s = arg;
  /* Wait until the parent is about to block, then send. */
  if (pc_test_sync_wait(s, 10000) != 0)
    return 70;
  return 0;
}

static void test_poll_forever_wakes_on_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  pc_test_sync s;
  pc_test_sync_init(&s);
  assert_rc(0, pc_pipe(&a, &b, 0));
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int rc = late_sender(&s);
    if (rc == 0)
      rc = pc_send_bytes(b, "wake", 4) == 0 ? 0 : 71;
    _exit(rc);
  }
  pc_test_sync_post(&s);
  assert_int_equal(pc_poll(a, -1), 1);
  expect_message(a, "wake", 4);
  pc_test_wait_ok(pid, 30);
  pc_test_sync_close(&s);
  pc_close(a);
  pc_close(b);
}

/* ------------------------------------------------------------ signals */

static atomic_int signals_seen;
static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&signals_seen, 1);
}

typedef struct sig_args {
  pthread_t target;
  atomic_bool stop;
} sig_args;

static void *signal_storm(void *arg) {
  sig_args *s = arg;
  while (!atomic_load(&s->stop)) {
    pthread_kill(s->target, SIGUSR1);
    sched_yield();
  }
  return NULL;
}

static int big_sender(pc_conn *c) {
  unsigned char *buf = malloc(256 * 1024);
  for (uint32_t i = 0; i < 64; i++) {
    size_t len = 1000 + i * 4000;
    pc_test_pattern(buf, len, i);
    if (pc_send_bytes(c, buf, len) != 0)
      return 80;
  }
  free(buf);
  return 0;
}

static void test_eintr_never_breaks_a_message(void **state) {
  (void)state;
  /* A handler without SA_RESTART: every blocked read/write gets EINTR. */
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGUSR1, &sa, &old);
  atomic_store(&signals_seen, 0);
  for (int dir = 0; dir < 2; dir++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, 0));
    sig_args s;
    s.target = pthread_self();
    atomic_init(&s.stop, false);
    pthread_t storm;
    pid_t pid;
    if (dir == 0) {
      /* Receiving here, under signals. */
      pid = fork_end(big_sender, b, a);
      assert_int_equal(pthread_create(&storm, NULL, signal_storm, &s), 0);
      for (uint32_t i = 0; i < 64; i++) {
        void *buf;
        size_t n;
        assert_rc(0, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
        assert_int_equal(n, 1000 + i * 4000);
        assert_true(pc_test_pattern_ok(buf, n, i));
        free(buf);
      }
    } else {
      /* Sending here, under signals, to a slow reader. */
      pid = fork_end(echo_child, b, a);
      assert_int_equal(pthread_create(&storm, NULL, signal_storm, &s), 0);
      unsigned char *big = malloc(8u << 20);
      pc_test_pattern(big, 8u << 20, 5);
      assert_rc(0, pc_send_bytes(a, big, 8u << 20));
      void *buf;
      size_t n;
      assert_rc(0, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
      assert_int_equal(n, 8u << 20);
      assert_memory_equal(buf, big, n);
      free(buf);
      free(big);
    }
    atomic_store(&s.stop, true);
    pthread_join(storm, NULL);
    pc_close(a);
    pc_close(b);
    pc_test_wait_ok(pid, 60);
  }
  sigaction(SIGUSR1, &old, NULL);
  assert_true(atomic_load(&signals_seen) > 0);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 4
#define PER_THREAD 400

typedef struct thr_arg {
  pc_conn *c;
  uint32_t id;
} thr_arg;

static size_t thr_len(uint32_t id, uint32_t seq) {
  return 8 + (id * 7919u + seq * 104729u) % 70000u;
}

static void *thr_sender(void *p) {
  thr_arg *a = p;
  unsigned char *buf = malloc(80000);
  intptr_t ok = 1;
  for (uint32_t s = 0; s < PER_THREAD && ok; s++) {
    size_t len = thr_len(a->id, s);
    pc_test_pattern(buf + 8, len - 8, a->id * 100000 + s);
    memcpy(buf, &a->id, 4);
    memcpy(buf + 4, &s, 4);
    ok = pc_send_bytes(a->c, buf, len) == 0;
  }
  free(buf);
  return (void *)ok;
}

static void test_concurrent_senders_never_interleave_frames(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pthread_t t[NTHREADS];
  thr_arg args[NTHREADS];
  for (uint32_t i = 0; i < NTHREADS; i++) {
    args[i].c = a;
    args[i].id = i;
    assert_int_equal(pthread_create(&t[i], NULL, thr_sender, &args[i]), 0);
  }
  uint32_t next[NTHREADS] = {0};
  for (int k = 0; k < NTHREADS * PER_THREAD; k++) {
    void *buf;
    size_t n;
    uint32_t id, seq;
    assert_rc(0, pc_recv_bytes(b, &buf, &n, PC_NOLIMIT));
    memcpy(&id, buf, 4);
    memcpy(&seq, (char *)buf + 4, 4);
    assert_true(id < NTHREADS);
    assert_int_equal(seq, next[id]); /* each sender's order is kept */
    next[id]++;
    assert_int_equal(n, thr_len(id, seq));
    assert_true(pc_test_pattern_ok((char *)buf + 8, n - 8, id * 100000 + seq));
    free(buf);
  }
  for (int i = 0; i < NTHREADS; i++) {
    void *ok;
    pthread_join(t[i], &ok);
    assert_true(ok != NULL);
  }
  pc_close(a);
  pc_close(b);
}

typedef struct rcv_arg {
  pc_conn *c;
  atomic_int *seen; /* count per message index */
  intptr_t got;
} rcv_arg;

static void *thr_receiver(void *p) {
  rcv_arg *r = p;
  for (;;) {
    void *buf;
    size_t n;
    int rc = pc_recv_bytes(r->c, &buf, &n, PC_NOLIMIT);
    if (rc == PC_EOF)
      break;
    if (rc != 0 || n < 4) {
      r->got = -1;
      break;
    }
    uint32_t idx;
    memcpy(&idx, buf, 4);
    if (idx >= NTHREADS * PER_THREAD || n != thr_len(0, idx) ||
        !pc_test_pattern_ok((char *)buf + 8, n - 8, idx)) {
      r->got = -1;
      free(buf);
      break;
    }
    atomic_fetch_add(&r->seen[idx], 1);
    r->got++;
    free(buf);
  }
  return NULL;
}

static int idx_sender(pc_conn *c) {
  unsigned char *buf = malloc(80000);
  for (uint32_t s = 0; s < NTHREADS * PER_THREAD; s++) {
    size_t len = thr_len(0, s);
    memcpy(buf, &s, 4);
    memset(buf + 4, 0, 4); /* sent too: initialised (valgrind) */
    pc_test_pattern(buf + 8, len - 8, s);
    if (pc_send_bytes(c, buf, len) != 0)
      return 90;
  }
  free(buf);
  return 0;
}

static void test_concurrent_receivers_never_split_a_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pid_t pid = fork_end(idx_sender, b, a);
  pc_close(b);
  static atomic_int seen[NTHREADS * PER_THREAD];
  for (int i = 0; i < NTHREADS * PER_THREAD; i++)
    atomic_init(&seen[i], 0);
  pthread_t t[NTHREADS];
  rcv_arg r[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    r[i].c = a;
    r[i].seen = seen;
    r[i].got = 0;
    assert_int_equal(pthread_create(&t[i], NULL, thr_receiver, &r[i]), 0);
  }
  intptr_t total = 0;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(t[i], NULL);
    assert_true(r[i].got >= 0);
    total += r[i].got;
  }
  assert_int_equal(total, NTHREADS * PER_THREAD);
  for (int i = 0; i < NTHREADS * PER_THREAD; i++)
    assert_int_equal(atomic_load(&seen[i]), 1);
  pc_test_wait_ok(pid, 60);
  pc_close(a);
}

static void *blocked_receiver(void *p) {
  pc_conn *c = p;
  void *buf;
  size_t n;
  intptr_t rc = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT);
  if (rc == 0)
    free(buf);
  return (void *)rc;
}

static void test_sender_and_receiver_on_one_end_do_not_wait(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, blocked_receiver, a), 0);
  /* Whether or not the receiver already blocks, this send must complete,
   * and the peer sees it within the bound. */
  for (int i = 0; i < 100; i++)
    assert_rc(0, pc_send_bytes(a, "ping", 4));
  assert_rc(0, pc_set_timeout(b, 10000));
  for (int i = 0; i < 100; i++)
    expect_message(b, "ping", 4);
  assert_rc(0, pc_send_bytes(b, "unblock", 7));
  void *rc;
  pthread_join(t, &rc);
  assert_int_equal((intptr_t)rc, 0);
  pc_close(a);
  pc_close(b);
}

/* ------------------------------------------------------------ closing */

typedef struct blocked_call {
  pc_conn *c;
  int op; /* 0 receive, 1 send a big message, 2 poll forever */
  atomic_int tid;
  intptr_t rc;
} blocked_call;

static void *blocked_call_main(void *p) {
  blocked_call *b = p;
  atomic_store(&b->tid, (int)gettid());
  if (b->op == 0) {
    void *buf;
    size_t n;
    b->rc = pc_recv_bytes(b->c, &buf, &n, PC_NOLIMIT);
    if (b->rc == 0)
      free(buf);
  } else if (b->op == 1) {
    size_t len = 8u << 20;
    unsigned char *big = calloc(1, len);
    b->rc = pc_send_bytes(b->c, big, len);
    free(big);
  } else {
    b->rc = pc_poll(b->c, -1);
  }
  return NULL;
}

/* Waits (bounded) until the thread sleeps in the kernel (state S in
 * /proc/self/task/TID/stat), so pc_close really has to wake it. */
static void wait_until_blocked(blocked_call *b) {
  bool asleep = false;
  for (int i = 0; i < 200000 && !asleep; i++) {
    int tid = atomic_load(&b->tid);
    if (tid != 0) {
      char path[64], stat[256] = {0};
      snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
      FILE *f = fopen(path, "r");
      if (f != NULL) {
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        const char *close_paren = n > 0 ? strrchr(stat, ')') : NULL;
        asleep = close_paren != NULL && close_paren[1] == ' ' &&
                 close_paren[2] == 'S';
      }
    }
    if (!asleep)
      sched_yield();
  }
  assert_true(asleep);
}

static void test_close_from_another_thread_wakes_blocked_calls(void **state) {
  (void)state;
  const struct {
    int flags;
    int op;
    int timeout;
  } cases[] = {{0, 0, -1},         {PC_SIMPLEX, 0, -1},
               {0, 0, 60000},      {PC_SIMPLEX, 0, 60000},
               {0, 1, -1},         {PC_SIMPLEX, 1, -1},
               {0, 2, -1},         {PC_SIMPLEX, 2, -1},
               {PC_SHARED, 0, -1}, {PC_SHARED | PC_SIMPLEX, 0, -1}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, cases[k].flags));
    /* Receive on the read end (a); send on the write end (b). */
    pc_conn *victim = cases[k].op == 1 ? b : a;
    pc_conn *other = victim == a ? b : a;
    assert_rc(0, pc_set_timeout(victim, cases[k].timeout));
    blocked_call bc = {victim, cases[k].op, 0, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_call_main, &bc), 0);
    wait_until_blocked(&bc);
    int64_t t0 = pc__now_ns();
    pc_close(victim); /* its own result does not matter here */
    pthread_join(t, NULL);
    int64_t ms = (pc__now_ns() - t0) / 1000000;
    /* Whether it was already asleep or just about to be, it is out now, and
     * says why. */
    assert_rc(PC_ECLOSED, bc.rc);
    assert_true(ms < 5000);
    pc_close(other);
  }
}

/* ------------------------------------------------------------ spinning */

static void test_set_spin_validates(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(-EINVAL, pc_set_spin(a, -1));
  assert_rc(-EINVAL, pc_set_spin(a, PC_SPIN_MAX + 1));
  assert_rc(-EINVAL, pc_set_spin(NULL, 0));
  assert_rc(0, pc_set_spin(a, 0));
  assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
  assert_rc(0, pc_set_spin(a, PC_SPIN_DEFAULT));
  pc_close(a);
  pc_close(b);
}

/* A receive that finds nothing keeps trying, and takes a message that
 * arrives while it does on the very next try: the hook sends it on the third
 * round, so exactly three rounds run. The spin (1 s) cannot end first. Both
 * kinds of descriptor, and pc_poll too. */
static void
test_receive_spins_and_takes_message_arriving_meanwhile(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (size_t k = 0; k < 2; k++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
    pc_test_spin_watch(b, 3, NULL);
    expect_message(a, "late", 4);
    assert_int_equal(pc_test_spin_rounds(), 3);
    pc_test_spin_unwatch();
    pc_test_spin_watch(b, 3, NULL);
    assert_int_equal(pc_poll(a, -1), 1);
    assert_int_equal(pc_test_spin_rounds(), 3);
    expect_message(a, "late", 4);
    pc_test_spin_unwatch();
    pc_close(a);
    pc_close(b);
  }
}

/* No spin when it is off, when the timeout is 0, or when data is there. */
static void test_receive_does_not_spin_when_it_need_not(void **state) {
  (void)state;
  pc_conn *a, *b;
  void *buf;
  size_t n;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_test_spin_watch(NULL, 0, NULL);
  assert_rc(0, pc_set_spin(a, 0));
  assert_rc(0, pc_set_timeout(a, 20));
  assert_rc(-ETIMEDOUT, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_poll(a, 20), 0);
  assert_int_equal(pc_test_spin_rounds(), 0);
  assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
  assert_rc(0, pc_set_timeout(a, 0));
  assert_rc(-EAGAIN, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
  assert_int_equal(pc_poll(a, 0), 0);
  assert_int_equal(pc_test_spin_rounds(), 0);
  assert_rc(0, pc_set_timeout(a, -1));
  assert_rc(0, pc_send_bytes(b, "here", 4));
  expect_message(a, "here", 4);
  assert_int_equal(pc_test_spin_rounds(), 0);
  pc_test_spin_unwatch();
  pc_close(a);
  pc_close(b);
}

/* The connection's timeout bounds the spin: a 1 s spin under a 30 ms
 * timeout gives -ETIMEDOUT long before the second is up. */
static void test_spin_never_outlasts_the_timeout(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (size_t k = 0; k < 2; k++) {
    pc_conn *a, *b;
    void *buf;
    size_t n;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
    assert_rc(0, pc_set_timeout(a, 30));
    pc_test_spin_watch(NULL, 0, NULL);
    int64_t t0 = pc__now_ns();
    assert_rc(-ETIMEDOUT, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
    int64_t ms = (pc__now_ns() - t0) / 1000000;
    assert_true(pc_test_spin_rounds() > 0);
    assert_true(ms >= 30 && ms < 900);
    pc_test_spin_unwatch();
    pc_close(a);
    pc_close(b);
  }
}

/* Someone (another process sharing the open file) sets O_NONBLOCK: a
 * receive without timeout, its spin over, still sleeps until the message
 * comes -- in poll, not in a loop of reads that say EAGAIN. */
static void
test_receive_sleeps_when_the_file_is_made_nonblocking(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (size_t k = 0; k < 2; k++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    int fd = pc_fileno(a);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    blocked_call bc = {a, 0, 0, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_call_main, &bc), 0);
    wait_until_blocked(&bc);
    assert_rc(0, pc_send_bytes(b, "wake", 4));
    pthread_join(t, NULL);
    assert_rc(0, bc.rc);
    pc_close(a);
    pc_close(b);
  }
}

/* pc_close from another thread ends a spin at once, on a socket (shut
 * down) and on a pipe (its eventfd), although the spin could last 1 s. */
static void test_close_from_another_thread_ends_a_spin(void **state) {
  (void)state;
  const int kinds[] = {0, PC_SIMPLEX};
  for (size_t k = 0; k < 2; k++) {
    pc_conn *a, *b;
    assert_rc(0, pc_pipe(&a, &b, kinds[k]));
    assert_rc(0, pc_set_spin(a, PC_SPIN_MAX));
    pc_test_sync started;
    pc_test_sync_init(&started);
    pc_test_spin_watch(NULL, 0, &started);
    blocked_call bc = {a, 0, 0, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_call_main, &bc), 0);
    assert_int_equal(pc_test_sync_wait(&started, 10000), 0);
    int64_t t0 = pc__now_ns();
    pc_close(a);
    pthread_join(t, NULL);
    int64_t ms = (pc__now_ns() - t0) / 1000000;
    assert_rc(PC_ECLOSED, bc.rc);
    assert_true(ms < 900);
    pc_test_spin_unwatch();
    pc_test_sync_close(&started);
    pc_close(b);
  }
}

/* ------------------------------------------------------------ buffered */

static void test_buffered_sends_wait_for_flush(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_set_buffered(a, 4096));
  for (uint32_t i = 0; i < 10; i++)
    assert_rc(0, pc_send_bytes(a, &i, 4));
  assert_int_equal(pc_poll(b, 0), 0); /* nothing written yet */
  assert_rc(0, pc_flush(a));
  for (uint32_t i = 0; i < 10; i++)
    expect_message(b, &i, 4);
  assert_int_equal(pc_poll(b, 0), 0);
  pc_close(a);
  pc_close(b);
}

static void test_buffered_writes_when_full_in_order(void **state) {
  (void)state;
  pc_conn *a, *b;
  unsigned char m[40];
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_set_buffered(a, 100)); /* two 44-byte frames fit */
  for (unsigned char i = 0; i < 3; i++) {
    memset(m, i, sizeof m);
    assert_rc(0, pc_send_bytes(a, m, sizeof m));
  }
  /* The third did not fit: the first two went out, the third waits. */
  memset(m, 0, sizeof m);
  expect_message(b, m, sizeof m);
  memset(m, 1, sizeof m);
  expect_message(b, m, sizeof m);
  assert_int_equal(pc_poll(b, 0), 0);
  /* A message larger than the buffer goes after what is buffered. */
  unsigned char big[500];
  memset(big, 9, sizeof big);
  assert_rc(0, pc_send_bytes(a, big, sizeof big));
  memset(m, 2, sizeof m);
  expect_message(b, m, sizeof m);
  expect_message(b, big, sizeof big);
  pc_close(a);
  pc_close(b);
}

static int upper_echo(pc_conn *c) {
  char buf[64];
  ssize_t n;
  while ((n = pc_recv_bytes_into(c, buf, sizeof buf)) >= 0) {
    buf[0] = 'R';
    if (pc_send_bytes(c, buf, (size_t)n) != 0)
      return 60;
  }
  return n == PC_EOF ? 0 : 61;
}

static void test_buffered_receive_first_sends_the_request(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pid_t pid = fork_end(upper_echo, b, a);
  pc_close(b);
  assert_rc(0, pc_set_buffered(a, 1 << 16));
  /* Without the flush before receiving, both sides would wait forever;
   * the timeout turns that into a failure instead of a hang. */
  assert_rc(0, pc_set_timeout(a, 10000));
  for (int i = 0; i < 100; i++) {
    assert_rc(0, pc_send_bytes(a, "q1", 2));
    expect_message(a, "R1", 2);
    assert_rc(0, pc_send_bytes(a, "qA", 2));
    assert_int_equal(pc_poll(a, 10000), 1); /* poll flushes too */
    expect_message(a, "RA", 2);
  }
  pc_close(a);
  pc_test_wait_ok(pid, 30);
}

static void test_buffered_close_writes_what_waits(void **state) {
  (void)state;
  pc_conn *a, *b;
  void *buf;
  size_t n;
  assert_rc(0, pc_pipe(&a, &b, PC_SIMPLEX));
  assert_rc(0, pc_set_buffered(b, 1000));
  assert_rc(0, pc_send_bytes(b, "one", 3));
  assert_rc(0, pc_send_bytes(b, "two", 3));
  assert_rc(0, pc_close(b));
  expect_message(a, "one", 3);
  expect_message(a, "two", 3);
  assert_rc(PC_EOF, pc_recv_bytes(a, &buf, &n, PC_NOLIMIT));
  pc_close(a);
}

static void test_buffered_full_and_blocked_takes_nothing(void **state) {
  (void)state;
  pc_conn *a, *b;
  static unsigned char blob[1000];
  uint32_t ok = 0;
  int rc;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_set_buffered(a, 8192));
  assert_rc(0, pc_set_timeout(a, 0));
  for (;;) {
    memcpy(blob, &ok, 4);
    rc = pc_send_bytes(a, blob, sizeof blob);
    if (rc != 0)
      break;
    ok++;
  }
  assert_rc(-EAGAIN, rc);
  /* Everything accepted arrives, in order, the refused one does not. */
  assert_rc(0, pc_set_timeout(b, 0));
  for (uint32_t i = 0; i < ok; i++) {
    unsigned char got[1000];
    ssize_t n;
    while ((n = pc_recv_bytes_into(b, got, sizeof got)) == -EAGAIN)
      assert_true(pc_flush(a) == 0 || pc_flush(a) == -EAGAIN);
    assert_int_equal(n, 1000);
    uint32_t seq;
    memcpy(&seq, got, 4);
    assert_int_equal(seq, i);
  }
  assert_rc(0, pc_flush(a));
  assert_int_equal(pc_poll(b, 0), 0);
  pc_close(a);
  pc_close(b);
}

static void test_set_buffered_rules(void **state) {
  (void)state;
  pc_conn *r, *w, *s1, *s2;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX));
  assert_rc(PC_EREADONLY, pc_set_buffered(r, 100));
  assert_rc(-EINVAL, pc_set_buffered(NULL, 100));
  assert_rc(0, pc_set_buffered(w, 100));
  assert_rc(0, pc_send_bytes(w, "held", 4));
  assert_int_equal(pc_poll(r, 0), 0);
  assert_rc(0, pc_set_buffered(w, 0)); /* turning it off writes it */
  expect_message(r, "held", 4);
  assert_rc(0, pc_send_bytes(w, "now", 3)); /* unbuffered again */
  expect_message(r, "now", 3);
  assert_rc(0, pc_pipe(&s1, &s2, PC_SHARED));
  assert_rc(-ENOTSUP, pc_set_buffered(s1, 100));
  pc_close(s1);
  pc_close(s2);
  pc_close(r);
  pc_close(w);
}

static void test_close_null_is_accepted(void **state) {
  (void)state;
  assert_rc(0, pc_close(NULL));
  assert_true(pc_closed(NULL));
  assert_false(pc_readable(NULL));
  assert_false(pc_writable(NULL));
  assert_rc(-EINVAL, pc_fileno(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipe_duplex_both_ends_send_and_receive),
      cmocka_unit_test(test_pipe_simplex_c1_reads_c2_writes),
      cmocka_unit_test(test_pipe_rejects_bad_arguments_and_leaves_outputs),
      cmocka_unit_test(test_descriptors_are_cloexec_and_blocking_by_default),
      cmocka_unit_test(test_inherit_flag_clears_cloexec),
      cmocka_unit_test(test_conn_from_fd_validates_and_takes_ownership),
      cmocka_unit_test(test_no_descriptor_leaks_over_many_pipes),
      cmocka_unit_test(test_pipe_reports_emfile_and_leaks_nothing),
      cmocka_unit_test(test_wire_format_is_pythons),
      cmocka_unit_test(test_minus_one_header_accepted_for_small_payload),
      cmocka_unit_test(test_negative_header_is_sticky_protocol_error),
      cmocka_unit_test(test_every_size_round_trips_through_a_child),
      cmocka_unit_test(test_guessed_reads_survive_every_change_of_size),
      cmocka_unit_test(test_each_wrong_guess_at_a_known_moment),
      cmocka_unit_test(test_guess_larger_than_payload_stops_at_its_end),
      cmocka_unit_test(test_guess_then_too_short_keeps_the_message),
      cmocka_unit_test(test_guess_then_bad_header_or_truncation),
      cmocka_unit_test(test_buffered_messages_delivered_then_sticky_eof),
      cmocka_unit_test(test_close_inside_header_or_payload_is_truncation),
      cmocka_unit_test(test_send_to_gone_peer_is_epipe_without_sigpipe),
      cmocka_unit_test(test_pending_sigpipe_of_the_caller_is_kept),
      cmocka_unit_test(test_too_big_duplex_end_stays_writable),
      cmocka_unit_test(test_too_big_read_only_end_is_closed),
      cmocka_unit_test(test_maxlength_zero_accepts_empty_message),
      cmocka_unit_test(test_recv_into_too_short_keeps_message),
      cmocka_unit_test(test_recv_into_rejects_null_buffer_with_capacity),
      cmocka_unit_test(test_send_bytesv_makes_one_message),
      cmocka_unit_test(test_send_batch_delivers_separate_messages_in_order),
      cmocka_unit_test(test_send_batch_short_count_on_timeout),
      cmocka_unit_test(test_set_timeout_validates),
      cmocka_unit_test(test_receive_times_out_with_nothing),
      cmocka_unit_test(test_receive_resumes_partial_message_after_timeout),
      cmocka_unit_test(test_send_timeout_sends_nothing_of_that_message),
      cmocka_unit_test(
          test_send_timeout_mid_frame_keeps_rest_and_flush_finishes),
      cmocka_unit_test(test_blocking_send_after_held_rest_sends_rest_first),
      cmocka_unit_test(test_close_sends_held_remainder),
      cmocka_unit_test(test_close_reports_undeliverable_remainder),
      cmocka_unit_test(test_lying_length_does_not_allocate_up_front),
      cmocka_unit_test(test_lying_length_populates_little_memory),
      cmocka_unit_test(test_prefault_populates_fresh_pages_only),
      cmocka_unit_test(test_large_payload_into_fresh_memory_arrives_whole),
      cmocka_unit_test(test_large_received_blocks_are_offered_huge_pages),
      cmocka_unit_test(
          test_length_beyond_address_space_is_too_big_for_next_size),
      cmocka_unit_test(test_poll_is_idempotent_and_keeps_boundaries),
      cmocka_unit_test(test_poll_ignores_partial_frame_unlike_python),
      cmocka_unit_test(test_poll_forever_wakes_on_message),
      cmocka_unit_test(test_eintr_never_breaks_a_message),
      cmocka_unit_test(test_concurrent_senders_never_interleave_frames),
      cmocka_unit_test(test_concurrent_receivers_never_split_a_message),
      cmocka_unit_test(test_sender_and_receiver_on_one_end_do_not_wait),
      cmocka_unit_test(test_close_from_another_thread_wakes_blocked_calls),
      cmocka_unit_test(test_set_spin_validates),
      cmocka_unit_test(test_receive_spins_and_takes_message_arriving_meanwhile),
      cmocka_unit_test(test_receive_does_not_spin_when_it_need_not),
      cmocka_unit_test(test_spin_never_outlasts_the_timeout),
      cmocka_unit_test(test_close_from_another_thread_ends_a_spin),
      cmocka_unit_test(test_receive_sleeps_when_the_file_is_made_nonblocking),
      cmocka_unit_test(test_buffered_sends_wait_for_flush),
      cmocka_unit_test(test_buffered_writes_when_full_in_order),
      cmocka_unit_test(test_buffered_receive_first_sends_the_request),
      cmocka_unit_test(test_buffered_close_writes_what_waits),
      cmocka_unit_test(test_buffered_full_and_blocked_takes_nothing),
      cmocka_unit_test(test_set_buffered_rules),
      cmocka_unit_test(test_close_null_is_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
