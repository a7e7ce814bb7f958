/* SPDX-License-Identifier: MIT */
/* Hostile peers: a raw peer writes bytes into a socketpair or a pipe read by
 * a pc_conn -- lying lengths, negative lengths, truncated headers and
 * payloads, headers dribbled out byte by byte, garbage pickles and megabytes
 * of random bytes. For each: the exact error code, no crash, bounded memory,
 * and the state of the end afterwards (sticky or not, still sending or not). */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ utilities */

/* One end under test: `c` wraps the library side, `fd` is the raw peer. */
typedef struct hostile {
  pc_conn *c;
  int fd;
  bool pipe; /* c is the read end of a pipe(2): it cannot send */
} hostile;

static void open_socket(hostile *h) {
  int fds[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  assert_rc(0, pc_conn_from_fd(fds[0], PC_READABLE | PC_WRITABLE, &h->c));
  h->fd = fds[1];
  h->pipe = false;
}

static void open_pipe(hostile *h) {
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  assert_rc(0, pc_conn_from_fd(fds[0], PC_READABLE, &h->c));
  h->fd = fds[1];
  h->pipe = true;
}

static void open_kind(hostile *h, int kind) {
  if (kind == 0)
    open_socket(h);
  else
    open_pipe(h);
}

/* The peer stops writing: end of stream for c. A socket peer only shuts
 * down its write side, so it can still read what c sends afterwards. */
static void peer_stop_writing(hostile *h) {
  if (h->pipe) {
    close(h->fd);
    h->fd = -1;
  } else {
    assert_int_equal(shutdown(h->fd, SHUT_WR), 0);
  }
}

static void close_hostile(hostile *h) {
  assert_rc(0, pc_close(h->c));
  if (h->fd >= 0)
    close(h->fd);
  h->c = NULL;
  h->fd = -1;
}

static void raw_write(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t k = write(fd, b, n);
    assert_true(k > 0 || errno == EINTR);
    if (k > 0) {
      b += k;
      n -= (size_t)k;
    }
  }
}

/* Plain version for forked children (no cmocka): 0 or -1. Never raises
 * SIGPIPE on sockets; pipe writers ignore SIGPIPE in their own process. */
static int child_write(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
    if (k < 0 && errno == ENOTSOCK)
      k = write(fd, b, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    b += k;
    n -= (size_t)k;
  }
  return 0;
}

static void put_be32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void put_be64(unsigned char *p, uint64_t v) {
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
}

/* A header as a hostile peer writes it: the 4-byte form with any 32-bit
 * value, or -1 followed by any 64-bit length. Returns its size. */
static size_t small_header(unsigned char *hdr, uint32_t v) {
  put_be32(hdr, v);
  return 4;
}

static size_t large_header(unsigned char *hdr, uint64_t len) {
  put_be32(hdr, UINT32_MAX);
  put_be64(hdr + 4, len);
  return 12;
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

/* The peer reads one whole frame sent by c and checks it. */
static void peer_expects_frame(int fd, const void *data, size_t len) {
  unsigned char got[64];
  assert_true(len + 4 <= sizeof got);
  size_t have = 0;
  while (have < len + 4) {
    ssize_t k = read(fd, got + have, len + 4 - have);
    assert_true(k > 0 || (k < 0 && errno == EINTR));
    if (k > 0)
      have += (size_t)k;
  }
  unsigned char hdr[4];
  put_be32(hdr, (uint32_t)len);
  assert_memory_equal(got, hdr, 4);
  assert_memory_equal(got + 4, data, len);
}

/* After a receive failed with `code`, checks the end's state: the receive
 * reports the same code again (sticky), pc_poll says a receive would not
 * block, the end stays open and readable, and a duplex end still sends (the
 * peer reads the frame intact) while a pipe's read end refuses to. When no
 * header is pending (the stream ended between or inside headers), every
 * receive form agrees: pc_recv_bytes_into and pc_next_size report the code
 * too. (With a header pending they answer from the header: see
 * test_truncated_message_is_sticky_for_every_receive_form.) */
static void expect_sticky(hostile *h, int code, bool header_pending) {
  void *buf = NULL;
  size_t n = 0;
  unsigned char small[16];
  for (int i = 0; i < 2; i++) {
    assert_rc(code, pc_recv_bytes(h->c, &buf, &n, PC_NOLIMIT));
    if (!header_pending) {
      assert_rc(code, pc_recv_bytes_into(h->c, small, sizeof small));
      assert_rc(code, pc_next_size(h->c));
    }
    assert_int_equal(pc_poll(h->c, 0), 1);
  }
  assert_null(buf);
  assert_true(pc_readable(h->c));
  assert_false(pc_closed(h->c));
  if (h->pipe) {
    assert_rc(PC_EREADONLY, pc_send_bytes(h->c, "still", 5));
  } else {
    assert_rc(0, pc_send_bytes(h->c, "still", 5));
    peer_expects_frame(h->fd, "still", 5);
  }
}

static const char *kind_name(int kind) { return kind == 0 ? "socket" : "pipe"; }

/* ------------------------------------------------------------ lying lengths */

/* The largest 4-byte length with a few bytes of payload: the receiver waits
 * (memory follows data), times out without losing anything, and reports
 * PC_ETRUNCATED, sticky, once the peer stops. */
static void
test_length_2_31_minus_1_with_few_bytes_waits_then_truncates(void **state) {
  (void)state;
  for (int kind = 0; kind < 2; kind++) {
    hostile h;
    unsigned char hdr[12];
    void *buf = NULL;
    size_t n = 0;
    open_kind(&h, kind);
    raw_write(h.fd, hdr, small_header(hdr, 0x7fffffffu));
    raw_write(h.fd, "abcdef", 6);
    assert_rc(0, pc_set_timeout(h.c, 20));
    assert_rc(-ETIMEDOUT, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    assert_int_equal(pc_poll(h.c, 0), 0);
    assert_int_equal(pc_next_size(h.c), 0x7fffffff);
    /* The end is not broken by a wait: a smaller limit still applies. */
    assert_rc(PC_ETOOSHORT, pc_recv_bytes_into(h.c, hdr, sizeof hdr));
    peer_stop_writing(&h);
    assert_rc(PC_ETRUNCATED, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    expect_sticky(&h, PC_ETRUNCATED, true);
    close_hostile(&h);
    print_message("%s: 2^31-1 announced, 6 bytes sent: -ETIMEDOUT, then "
                  "PC_ETRUNCATED\n",
                  kind_name(kind));
  }
}

/* -1 then 2^63 (and 2^64-1): a length no process can hold. Every receive
 * reports -ENOMEM at once, without reading or allocating the payload; the
 * header stays parsed, so the code is sticky even after end of stream;
 * pc_next_size says PC_ETOOBIG (it does not fit in ssize_t); a duplex end
 * still sends. */
static void test_length_2_63_is_enomem_at_once_and_sticky(void **state) {
  (void)state;
  const uint64_t lens[] = {UINT64_C(1) << 63, UINT64_MAX};
  for (int kind = 0; kind < 2; kind++) {
    for (int i = 0; i < 2; i++) {
      hostile h;
      unsigned char hdr[12];
      void *buf = NULL;
      size_t n = 0;
      open_kind(&h, kind);
      raw_write(h.fd, hdr, large_header(hdr, lens[i]));
      raw_write(h.fd, "xyz", 3);
      /* No timeout: the answer must not depend on waiting for data. */
      assert_rc(-ENOMEM, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
      assert_rc(PC_ETOOBIG, pc_next_size(h.c));
      assert_rc(-ENOMEM, pc_poll(h.c, 0));
      peer_stop_writing(&h);
      assert_rc(-ENOMEM, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
      assert_rc(PC_ETOOSHORT, pc_recv_bytes_into(h.c, hdr, sizeof hdr));
      assert_null(buf);
      assert_true(pc_readable(h.c));
      if (!h.pipe) {
        assert_rc(0, pc_send_bytes(h.c, "still", 5));
        peer_expects_frame(h.fd, "still", 5);
      }
      close_hostile(&h);
    }
  }
}

/* -1 then 2^62 that never arrive: waits (timeout), memory follows data, and
 * the peer's close gives PC_ETRUNCATED, sticky. */
static void
test_length_2_62_never_arriving_times_out_then_truncates(void **state) {
  (void)state;
  for (int kind = 0; kind < 2; kind++) {
    hostile h;
    unsigned char hdr[12];
    void *buf = NULL;
    size_t n = 0;
    open_kind(&h, kind);
    raw_write(h.fd, hdr, large_header(hdr, UINT64_C(1) << 62));
    assert_rc(0, pc_set_timeout(h.c, 10));
    assert_rc(-ETIMEDOUT, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    assert_int_equal(pc_next_size(h.c), (ssize_t)(UINT64_C(1) << 62));
    assert_int_equal(pc_poll(h.c, 5), 0);
    /* Some bytes arrive, not all: still waiting, nothing lost. */
    unsigned char chunk[4096];
    memset(chunk, 0x5a, sizeof chunk);
    raw_write(h.fd, chunk, sizeof chunk);
    assert_rc(-ETIMEDOUT, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    assert_rc(0, pc_set_timeout(h.c, 0));
    assert_rc(-EAGAIN, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    assert_rc(0, pc_set_timeout(h.c, -1));
    peer_stop_writing(&h);
    assert_rc(PC_ETRUNCATED, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    expect_sticky(&h, PC_ETRUNCATED, true);
    close_hostile(&h);
  }
}

/* A lying length against a maxlength: PC_ETOOBIG at once, and Python's rule
 * for the end: a duplex end can no longer receive but still sends, a pipe's
 * read end is closed. */
static void test_lying_length_over_maxlength_is_too_big(void **state) {
  (void)state;
  const uint64_t lens[] = {0x7fffffffu, UINT64_C(1) << 62, UINT64_C(1) << 63};
  for (int kind = 0; kind < 2; kind++) {
    for (int i = 0; i < 3; i++) {
      hostile h;
      unsigned char hdr[12];
      void *buf = NULL;
      size_t n = 0, hl;
      open_kind(&h, kind);
      hl = lens[i] <= 0x7fffffffu ? small_header(hdr, (uint32_t)lens[i])
                                  : large_header(hdr, lens[i]);
      raw_write(h.fd, hdr, hl);
      assert_rc(PC_ETOOBIG, pc_recv_bytes(h.c, &buf, &n, 1u << 20));
      assert_false(pc_readable(h.c));
      if (h.pipe) {
        assert_true(pc_closed(h.c));
        assert_rc(PC_ECLOSED, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
        assert_rc(PC_ECLOSED, pc_poll(h.c, 0));
      } else {
        assert_false(pc_closed(h.c));
        assert_rc(PC_EWRITEONLY, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
        assert_rc(PC_EWRITEONLY, pc_poll(h.c, 0));
        assert_rc(0, pc_send_bytes(h.c, "still", 5));
        peer_expects_frame(h.fd, "still", 5);
      }
      close_hostile(&h);
    }
  }
}

/* ------------------------------------------------------------ negative lengths */

/* Every negative 4-byte header other than -1 is PC_EPROTO, sticky: the bytes
 * after it are never read as frames, even valid ones; a duplex end still
 * sends. A valid message before it is delivered first. */
static void test_negative_lengths_are_sticky_protocol_errors(void **state) {
  (void)state;
  const uint32_t negs[] = {0x80000000u, 0x80000001u, 0xfffffffeu, 0xc0000000u,
                           0xffffff00u};
  for (int kind = 0; kind < 2; kind++) {
    for (size_t i = 0; i < sizeof negs / sizeof negs[0]; i++) {
      hostile h;
      unsigned char hdr[12];
      open_kind(&h, kind);
      raw_write(h.fd, "\0\0\0\x02ok", 6);
      raw_write(h.fd, hdr, small_header(hdr, negs[i]));
      raw_write(h.fd, "\0\0\0\x02no", 6); /* a valid frame after it */
      expect_message(h.c, "ok", 2);
      assert_rc(PC_EPROTO, pc_next_size(h.c));
      expect_sticky(&h, PC_EPROTO, false);
      peer_stop_writing(&h);
      /* Still PC_EPROTO, not PC_EOF: the stream is not read any more. */
      expect_sticky(&h, PC_EPROTO, false);
      close_hostile(&h);
    }
  }
}

/* ------------------------------------------------------------ truncation */

/* The peer stops inside a header: after 0 bytes it is a clean PC_EOF, after
 * 1..3 bytes of a 4-byte header or 1..11 bytes of the -1 form it is
 * PC_ETRUNCATED; both sticky, and pc_next_size agrees. */
static void test_truncated_headers(void **state) {
  (void)state;
  unsigned char hdr[12];
  for (int kind = 0; kind < 2; kind++) {
    for (size_t cut = 0; cut < 12; cut++) {
      hostile h;
      open_kind(&h, kind);
      if (cut < 4)
        small_header(hdr, 7);
      else
        large_header(hdr, 7);
      raw_write(h.fd, "\0\0\0\x01z", 5);
      raw_write(h.fd, hdr, cut);
      peer_stop_writing(&h);
      expect_message(h.c, "z", 1);
      int code = cut == 0 ? PC_EOF : PC_ETRUNCATED;
      assert_rc(code, pc_next_size(h.c));
      expect_sticky(&h, code, false);
      close_hostile(&h);
    }
  }
}

/* The peer stops inside a payload, small (through the read-ahead buffer),
 * large (read into its own block) and large into the caller's buffer (read
 * there directly): PC_ETRUNCATED, sticky, whatever the receive form. */
static void test_truncated_payloads(void **state) {
  (void)state;
  const size_t lens[] = {1, 100, 40000, 1u << 20, 3u << 20};
  unsigned char *data = malloc(3u << 20);
  unsigned char *into = malloc(3u << 20);
  assert_non_null(data);
  assert_non_null(into);
  pc_test_pattern(data, 3u << 20, 77);
  for (int kind = 0; kind < 2; kind++) {
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
      for (int form = 0; form < 3; form++) {
        hostile h;
        unsigned char hdr[12];
        void *buf = NULL;
        size_t n = 0;
        open_kind(&h, kind);
        /* A writer child: the payload can exceed the descriptor's buffer. */
        size_t len = lens[i], sent = len - 1 - (len / 3);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
          signal(SIGPIPE, SIG_IGN);
          pc_close(h.c);
          int rc = child_write(h.fd, hdr, small_header(hdr, (uint32_t)len));
          if (rc == 0)
            rc = child_write(h.fd, data, sent);
          _exit(rc == 0 ? 0 : 1);
        }
        close(h.fd); /* the child holds the only write end */
        h.fd = -1;
        ssize_t r;
        if (form == 0) {
          r = pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT);
        } else if (form == 1) {
          r = pc_recv_bytes_into(h.c, into, 3u << 20);
        } else {
          assert_rc(0, pc_set_timeout(h.c, 10000));
          r = pc_recv_bytes_into(h.c, into, 3u << 20);
        }
        assert_rc(PC_ETRUNCATED, r);
        assert_null(buf);
        pc_test_wait_ok(pid, 30);
        for (int again = 0; again < 2; again++) {
          assert_rc(PC_ETRUNCATED, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
          assert_rc(PC_ETRUNCATED, pc_recv_bytes_into(h.c, into, 3u << 20));
          assert_int_equal(pc_poll(h.c, 0), 1);
        }
        close_hostile(&h);
      }
    }
  }
  free(data);
  free(into);
}

/* Once the peer has closed in the middle of a payload the message can never
 * arrive, and PC_ETRUNCATED is sticky: every receive form must report it.
 * Today only pc_recv_bytes without a limit does; the others still answer
 * from the header of the dead message: pc_next_size returns its announced
 * length, pc_recv_bytes_into with a smaller buffer says PC_ETOOSHORT ("the
 * message stays for the next receive": it never comes), and pc_recv_bytes
 * with a smaller maxlength says PC_ETOOBIG and takes the end's readability
 * away (a pipe's read end is even closed). */
static void
test_truncated_message_is_sticky_for_every_receive_form(void **state) {
  (void)state;
  for (int kind = 0; kind < 2; kind++) {
    hostile h;
    unsigned char small[4];
    void *buf = NULL;
    size_t n = 0;
    open_kind(&h, kind);
    raw_write(h.fd,
              "\0\0\0\x0a"
              "abc",
              7);
    peer_stop_writing(&h);
    assert_rc(PC_ETRUNCATED, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    assert_rc(PC_ETRUNCATED, pc_next_size(h.c));
    assert_rc(PC_ETRUNCATED, pc_recv_bytes_into(h.c, small, sizeof small));
    assert_rc(PC_ETRUNCATED, pc_recv_bytes(h.c, &buf, &n, 4));
    assert_true(pc_readable(h.c));
    close_hostile(&h);
  }
}

/* ------------------------------------------------------------ slow peers */

/* A writer child dribbles `bytes` out in pieces of `piece` bytes, 1 ms
 * apart (the delay belongs to the writer; the reader never sleeps). */
typedef struct dribble {
  int fd;
  pc_conn *drop;
  const unsigned char *bytes;
  size_t len, piece;
} dribble;

static int dribble_main(void *arg) {
  dribble *d = arg;
  struct timespec ms = {0, 1000000};
  signal(SIGPIPE, SIG_IGN);
  pc_close(d->drop);
  for (size_t off = 0; off < d->len; off += d->piece) {
    size_t k = d->len - off < d->piece ? d->len - off : d->piece;
    if (child_write(d->fd, d->bytes + off, k) != 0)
      return 1;
    nanosleep(&ms, NULL);
  }
  close(d->fd);
  return 0;
}

/* Three frames (4-byte header, -1 form, empty) written one byte at a time,
 * 1 ms apart. */
static size_t dribble_frames(unsigned char *out, unsigned char *payload,
                             size_t plen) {
  size_t pos = 0;
  pc_test_pattern(payload, plen, 5);
  pos += small_header(out + pos, (uint32_t)plen);
  memcpy(out + pos, payload, plen);
  pos += plen;
  pos += large_header(out + pos, plen);
  memcpy(out + pos, payload, plen);
  pos += plen;
  pos += small_header(out + pos, 0);
  return pos;
}

static pid_t start_dribble(hostile *h, dribble *d, const unsigned char *bytes,
                           size_t len, size_t piece) {
  d->fd = h->fd;
  d->drop = h->c;
  d->bytes = bytes;
  d->len = len;
  d->piece = piece;
  pid_t pid = pc_test_fork(dribble_main, d);
  close(h->fd);
  h->fd = -1;
  return pid;
}

static void expect_dribbled(pc_conn *c, const unsigned char *payload,
                            size_t plen) {
  expect_message(c, payload, plen);
  expect_message(c, payload, plen);
  expect_message(c, "", 0);
}

/* Blocking receives simply wait for the whole frame. */
static void test_header_split_into_tiny_writes_blocking(void **state) {
  (void)state;
  unsigned char payload[40], frames[128];
  size_t len = dribble_frames(frames, payload, sizeof payload);
  for (int kind = 0; kind < 2; kind++) {
    hostile h;
    dribble d;
    open_kind(&h, kind);
    pid_t pid = start_dribble(&h, &d, frames, len, 1);
    expect_dribbled(h.c, payload, sizeof payload);
    void *buf = NULL;
    size_t n = 0;
    assert_rc(PC_EOF, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    pc_test_wait_ok(pid, 30);
    close_hostile(&h);
  }
}

/* Receives with a 1 ms timeout time out again and again while the frame
 * dribbles in, and each resumes where the last stopped: every message
 * arrives whole, none twice. */
static void test_header_split_into_tiny_writes_with_timeouts(void **state) {
  (void)state;
  unsigned char payload[40], frames[128];
  size_t len = dribble_frames(frames, payload, sizeof payload);
  for (int kind = 0; kind < 2; kind++) {
    for (int form = 0; form < 2; form++) {
      hostile h;
      dribble d;
      open_kind(&h, kind);
      assert_rc(0, pc_set_timeout(h.c, 1));
      pid_t pid = start_dribble(&h, &d, frames, len, 1);
      int timeouts = 0, got = 0;
      const size_t want[] = {sizeof payload, sizeof payload, 0};
      /* Bounded: the writer needs about len ms; allow 100x that. */
      for (int i = 0; i < 100 * (int)len && got < 3; i++) {
        unsigned char into[64];
        void *buf = NULL;
        size_t n = 0;
        ssize_t r;
        if (form == 0) {
          r = pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT);
          if (r == 0)
            r = (ssize_t)n;
        } else {
          r = pc_recv_bytes_into(h.c, into, sizeof into);
          buf = into;
        }
        if (r == -ETIMEDOUT) {
          timeouts++;
          continue;
        }
        assert_int_equal(r, want[got]);
        if (r > 0)
          assert_memory_equal(buf, payload, (size_t)r);
        if (form == 0)
          free(buf);
        got++;
      }
      assert_int_equal(got, 3);
      assert_true(timeouts > 0);
      assert_rc(0, pc_set_timeout(h.c, -1));
      void *buf = NULL;
      size_t n = 0;
      assert_rc(PC_EOF, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
      pc_test_wait_ok(pid, 30);
      close_hostile(&h);
      print_message("%s, %s: %d timeouts while %zu bytes dribbled in\n",
                    kind_name(kind), form ? "recv_bytes_into" : "recv_bytes",
                    timeouts, len);
    }
  }
}

/* pc_poll returns 0 while only part of a frame is there, and after it
 * returns 1 a non-blocking receive always succeeds. */
static void test_header_split_into_tiny_writes_poll(void **state) {
  (void)state;
  unsigned char payload[40], frames[128];
  size_t len = dribble_frames(frames, payload, sizeof payload);
  for (int kind = 0; kind < 2; kind++) {
    hostile h;
    dribble d;
    open_kind(&h, kind);
    assert_rc(0, pc_set_timeout(h.c, 0));
    pid_t pid = start_dribble(&h, &d, frames, len, 1);
    int zeros = 0, got = 0;
    const size_t want[] = {sizeof payload, sizeof payload, 0};
    while (got < 3) {
      int p = pc_poll(h.c, 10000);
      assert_true(p == 0 || p == 1);
      if (p == 0) {
        zeros++;
        assert_true(zeros < 10); /* 10 s each: the writer is long done */
        continue;
      }
      void *buf = NULL;
      size_t n = 0;
      assert_rc(0, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
      assert_int_equal(n, want[got]);
      if (n > 0)
        assert_memory_equal(buf, payload, n);
      free(buf);
      got++;
    }
    assert_int_equal(pc_poll(h.c, 10000), 1);
    void *buf = NULL;
    size_t n = 0;
    assert_rc(PC_EOF, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT));
    pc_test_wait_ok(pid, 30);
    close_hostile(&h);
  }
}

/* A 2 MiB message dribbled in 4 KiB pieces, received with a small timeout:
 * the large-payload path resumes too. */
static void test_large_payload_dribbled_with_timeouts(void **state) {
  (void)state;
  size_t plen = 2u << 20;
  unsigned char *frame = malloc(plen + 4);
  assert_non_null(frame);
  small_header(frame, (uint32_t)plen);
  pc_test_pattern(frame + 4, plen, 9);
  hostile h;
  dribble d;
  open_socket(&h);
  assert_rc(0, pc_set_timeout(h.c, 2));
  pid_t pid = start_dribble(&h, &d, frame, plen + 4, 64u << 10);
  int timeouts = 0;
  ssize_t r = -ETIMEDOUT;
  void *buf = NULL;
  size_t n = 0;
  for (int i = 0; i < 100000 && r == -ETIMEDOUT; i++) {
    r = pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT);
    if (r == -ETIMEDOUT)
      timeouts++;
  }
  assert_rc(0, r);
  assert_int_equal(n, plen);
  assert_true(pc_test_pattern_ok(buf, n, 9));
  assert_true(timeouts > 0);
  free(buf);
  pc_test_wait_ok(pid, 30);
  close_hostile(&h);
  free(frame);
}

/* ------------------------------------------------------------ garbage pickles */

typedef struct garbage {
  const char *name;
  const char *bytes;
  size_t len;
  int code;
} garbage;

#define G(name, lit, code)                                                     \
  { name, lit, sizeof(lit) - 1, code }

static const garbage garbage_pickles[] = {
    G("empty payload", "", PC_EPROTO),
    G("PROTO without STOP", "\x80\x04", PC_EPROTO),
    G("unsupported protocol", "\x80\x09K\x01.", PC_EPROTO),
    G("STOP on an empty stack", ".", PC_EPROTO),
    G("two values at STOP", "NN.", PC_EPROTO),
    G("invalid opcode", "\xff", PC_EPROTO),
    G("bytes after STOP", "K\x01.junk", PC_EPROTO),
    G("GLOBAL os.system", "cos\nsystem\n(S'ls'\ntR.", PC_EUNSAFE),
    G("STACK_GLOBAL", "\x80\x04\x8c\x02os\x8c\x06system\x93.", PC_EUNSAFE),
    G("REDUCE", "\x80\x04N)R.", PC_EUNSAFE),
    G("PERSID", "Pid\n.", PC_EUNSAFE),
    G("BINUNICODE longer than the data",
      "X\xff\xff\xff\x7f"
      "abc.",
      PC_EPROTO),
    G("BINBYTES8 announcing 2^63", "\x80\x04\x8e\0\0\0\0\0\0\0\x80.",
      PC_EPROTO),
    G("FRAME announcing 2^62", "\x80\x04\x95\0\0\0\0\0\0\0\x40N.", PC_EPROTO),
    G("invalid UTF-8", "X\x02\0\0\0\xc3\x28.", PC_EPROTO),
    G("BINGET of a missing memo entry", "h\x05.", PC_EPROTO),
    G("LONG_BINGET of a missing entry", "j\xff\xff\xff\x7f.", PC_EPROTO),
    G("LONG_BINPUT far beyond the input", "Nr\xff\xff\xff\x7f.", PC_ELIMIT),
    G("self-referencing list", "]\x94h\0a.", PC_EPROTO),
    G("unhashable dict key", "}(]Nu.", PC_EPROTO),
    G("APPEND to an int", "K\x01K\x02a.", PC_EPROTO),
    G("SETITEMS without MARK", "}K\x01K\x02u.", PC_EPROTO),
};

static void send_int_pickle(int fd, uint8_t i) {
  unsigned char frame[9] = {0, 0, 0, 5, 0x80, 4, 'K', i, '.'};
  raw_write(fd, frame, sizeof frame);
}

static void expect_int(pc_conn *c, int64_t want) {
  void *obj = NULL;
  int64_t got = -1;
  assert_rc(0, pc_recv(c, &obj));
  assert_rc(0, pc_value_get_int(obj, &got));
  assert_int_equal(got, want);
  pc_value_free(obj);
}

/* Each garbage pickle, framed correctly, gives its exact decoder code;
 * exactly that message is consumed and the next pc_recv decodes the next
 * message: not sticky. */
static void test_garbage_pickles_fail_one_message_each(void **state) {
  (void)state;
  size_t ng = sizeof garbage_pickles / sizeof garbage_pickles[0];
  for (int kind = 0; kind < 2; kind++) {
    hostile h;
    open_kind(&h, kind);
    for (size_t i = 0; i < ng; i++) {
      const garbage *g = &garbage_pickles[i];
      unsigned char hdr[4];
      raw_write(h.fd, hdr, small_header(hdr, (uint32_t)g->len));
      raw_write(h.fd, g->bytes, g->len);
      send_int_pickle(h.fd, (uint8_t)i);
      void *obj = NULL;
      int rc = pc_recv(h.c, &obj);
      if (rc != g->code)
        print_error("garbage pickle '%s'\n", g->name);
      assert_rc(g->code, rc);
      assert_null(obj);
      expect_int(h.c, (int64_t)i);
    }
    /* Deep nesting: 5000 MARKs then 5000 LISTs (protocol 0). */
    size_t depth = 5000, len = 2 * depth + 1;
    unsigned char *deep = malloc(len + 4);
    assert_non_null(deep);
    small_header(deep, (uint32_t)len);
    memset(deep + 4, '(', depth);
    memset(deep + 4 + depth, 'l', depth);
    deep[4 + len - 1] = '.';
    raw_write(h.fd, deep, len + 4);
    send_int_pickle(h.fd, 200);
    void *obj = NULL;
    assert_rc(PC_ELIMIT, pc_recv(h.c, &obj));
    expect_int(h.c, 200);
    free(deep);
    assert_true(pc_readable(h.c));
    close_hostile(&h);
  }
}

/* A value with every kind of container and scalar, pickled by the library
 * with protocols 2 (GLOBAL/REDUCE forms for bytes and frozenset) and 4. */
static pc_value *rich_value(void) {
  pc_value *d = pc_value_dict();
  pc_value *l = pc_value_list();
  pc_value *fs = pc_value_frozenset();
  pc_value *nested = pc_value_list();
  pc_value *inner = pc_value_list();
  assert_rc(0, pc_value_list_append_steal(l, pc_value_int(1)));
  assert_rc(0, pc_value_list_append_steal(l, pc_value_float(2.5)));
  assert_rc(0, pc_value_list_append_steal(l, pc_value_none()));
  assert_rc(0, pc_value_list_append_steal(l, pc_value_bool(true)));
  assert_rc(0, pc_value_list_append_steal(l, pc_value_bytes("xy", 2)));
  pc_value *e_acute = pc_value_str("\xc3\xa9");
  /* tuple_pack borrows its items: the str keeps its own reference. */
  assert_rc(0, pc_value_list_append_steal(
                   l, pc_value_tuple_pack(2, pc_value_int(3), e_acute)));
  pc_value_free(e_acute);
  assert_rc(0, pc_value_list_append_steal(
                   l, pc_value_int_parse("1180591620717411303424", 22)));
  assert_rc(0, pc_value_set_add_steal(fs, pc_value_int(1)));
  assert_rc(0, pc_value_set_add_steal(fs, pc_value_int(2)));
  assert_rc(0, pc_value_list_append_steal(inner, pc_value_list()));
  assert_rc(0, pc_value_list_append_steal(nested, inner));
  assert_rc(0, pc_value_list_append_steal(nested, pc_value_dict()));
  assert_rc(0, pc_value_dict_set_str_steal(d, "name", pc_value_str("bob")));
  assert_rc(0, pc_value_dict_set_str_steal(d, "spam", l));
  assert_rc(0, pc_value_dict_set_str_steal(d, "set", fs));
  assert_rc(0, pc_value_dict_set_str_steal(d, "nested", nested));
  return d;
}

static uint32_t next_rand(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* Mutates p[0..len) in place (room for 2 * len + 8 bytes) and returns the
 * new length: byte flips, truncation, deletion, insertion, duplication. */
static size_t mutate(unsigned char *p, size_t len, uint32_t *rs) {
  int ops = 1 + (int)(next_rand(rs) % 4);
  for (int i = 0; i < ops && len > 0; i++) {
    size_t at = next_rand(rs) % len;
    switch (next_rand(rs) % 5) {
    case 0:
      p[at] = (unsigned char)next_rand(rs);
      break;
    case 1:
      len = at;
      break;
    case 2:
      memmove(p + at, p + at + 1, len - at - 1);
      len--;
      break;
    case 3:
      memmove(p + at + 1, p + at, len - at);
      p[at] = (unsigned char)next_rand(rs);
      len++;
      break;
    default: {
      size_t k = next_rand(rs) % (len - at) + 1;
      if (len + k <= 2 * len + 8) {
        memmove(p + at + k, p + at, len - at);
        len += k;
      }
    }
    }
  }
  return len;
}

/* Mutated and random pickles in valid frames through pc_recv: each is
 * decoded (and then has a repr) or refused with one of the decoder's codes,
 * and the connection stays in step: a marker message after each one is
 * received intact. */
static void test_mutated_pickles_never_desynchronise(void **state) {
  (void)state;
  hostile h;
  open_socket(&h);
  pc_value *v = rich_value();
  pc_buffer pk[2] = {PC_BUFFER_INIT, PC_BUFFER_INIT};
  assert_rc(0, pc_pickle_dumps(v, 2, &pk[0]));
  assert_rc(0, pc_pickle_dumps(v, 4, &pk[1]));
  uint32_t rs = 12345;
  unsigned char payload[1024];
  int decoded = 0, refused[3] = {0};
  long count = (long)pc_test_scaled_min(6000, 300);
  for (int i = 0; i < count; i++) {
    size_t plen;
    if (i % 4 == 3) {
      plen = next_rand(&rs) % 200;
      pc_test_pattern(payload, plen, (uint32_t)i);
    } else {
      const pc_buffer *src = &pk[i % 2];
      memcpy(payload, src->data, src->len);
      plen = mutate(payload, src->len, &rs);
    }
    unsigned char hdr[4];
    raw_write(h.fd, hdr, small_header(hdr, (uint32_t)plen));
    raw_write(h.fd, payload, plen);
    send_int_pickle(h.fd, (uint8_t)(i & 0x7f));
    void *obj = NULL;
    int rc = pc_recv(h.c, &obj);
    if (rc == 0) {
      decoded++;
      char *r = pc_value_repr(obj);
      assert_non_null(r);
      free(r);
      pc_value_free(obj);
    } else {
      assert_true(rc == PC_EPROTO || rc == PC_EUNSAFE || rc == PC_ELIMIT);
      refused[rc == PC_EPROTO ? 0 : rc == PC_EUNSAFE ? 1 : 2]++;
    }
    expect_int(h.c, (int64_t)(i & 0x7f));
  }
  print_message("%ld mutated or random pickles: %d decoded, %d PC_EPROTO, "
                "%d PC_EUNSAFE, %d PC_ELIMIT\n",
                count, decoded, refused[0], refused[1], refused[2]);
  assert_true(decoded > 0);
  pc_buffer_release(&pk[0]);
  pc_buffer_release(&pk[1]);
  pc_value_free(v);
  close_hostile(&h);
}

/* ------------------------------------------------------------ random bytes */

#define RANDOM_BYTES (10u * 1000u * 1000u)

typedef struct random_writer {
  int fd;
  pc_conn *drop;
  uint32_t seed;
} random_writer;

static int random_writer_main(void *arg) {
  random_writer *w = arg;
  signal(SIGPIPE, SIG_IGN);
  pc_close(w->drop);
  unsigned char *p = malloc(RANDOM_BYTES);
  if (p == NULL)
    return 2;
  pc_test_pattern(p, RANDOM_BYTES, w->seed);
  if (w->seed % 2 == 0) {
    /* Mostly zero bytes: headers then announce small lengths, so many
     * frames go through before a negative one or the end. */
    uint32_t rs = w->seed;
    for (size_t i = 0; i < RANDOM_BYTES; i++)
      if (next_rand(&rs) % 16 != 0)
        p[i] = 0;
  }
  /* The receiver may stop early (a protocol error): EPIPE is fine. Then
   * end of stream, even while the parent still holds the other socket
   * (a pipe's write end is closed by exiting). */
  (void)child_write(w->fd, p, RANDOM_BYTES);
  shutdown(w->fd, SHUT_WR);
  free(p);
  return 0;
}

/* Receives until the stream ends one way or another. Returns the final
 * (sticky) code and counts the messages. */
static int drain_random(pc_conn *c, int form, int *messages) {
  int rc = 0;
  *messages = 0;
  unsigned char *into = form == 1 ? malloc(1u << 20) : NULL;
  for (int i = 0; i < 100000; i++) {
    void *buf = NULL, *obj = NULL;
    size_t n = 0;
    if (form == 0) {
      rc = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT);
      free(buf);
    } else if (form == 1) {
      ssize_t r = pc_recv_bytes_into(c, into, 1u << 20);
      if (r == PC_ETOOSHORT) {
        /* Learn the size, then take it whole. */
        r = pc_next_size(c);
        if (r >= 0 || r == PC_ETOOBIG) { /* ETOOBIG: beyond ssize_t */
          r = pc_recv_bytes(c, &buf, &n, PC_NOLIMIT);
          free(buf);
        }
      }
      rc = r >= 0 ? 0 : (int)r;
    } else {
      rc = pc_recv(c, &obj);
      pc_value_free(obj);
      if (rc == PC_EUNSAFE || rc == PC_ELIMIT) {
        rc = 0; /* a refused pickle, not the end of the stream */
      } else if (rc == PC_EPROTO) {
        /* A refused pickle or a broken frame: the next header tells. */
        ssize_t next = pc_next_size(c);
        rc = next >= 0 || next == PC_ETOOBIG ? 0 : (int)next;
      }
    }
    if (rc != 0)
      break;
    (*messages)++;
  }
  free(into);
  return rc;
}

/* 10 MB of random bytes from the peer, through each receive form: the
 * receiver ends with PC_EPROTO (a negative header), PC_ETRUNCATED (a length
 * longer than what follows), PC_EOF (by luck, at a boundary) or -ENOMEM (a
 * -1 header with a length beyond the address space), and every code is
 * sticky; a duplex end still sends. */
static void test_ten_megabytes_of_random_bytes(void **state) {
  (void)state;
  int seen[4] = {0};
  uint32_t seeds = (uint32_t)pc_test_scaled_min(12, 4);
  for (uint32_t seed = 1; seed <= seeds; seed++) {
    int kind = (int)((seed / 2) % 2);
    int form = (int)((seed / 4) % 3);
    hostile h;
    random_writer w;
    open_kind(&h, kind);
    w.fd = h.fd;
    w.drop = h.c;
    w.seed = seed;
    pid_t pid = pc_test_fork(random_writer_main, &w);
    int fd = h.fd;
    if (h.pipe) {
      close(h.fd);
      h.fd = -1;
    }
    int messages = 0;
    int rc = drain_random(h.c, form, &messages);
    assert_true(rc == PC_EPROTO || rc == PC_ETRUNCATED || rc == PC_EOF ||
                rc == -ENOMEM);
    seen[rc == PC_EPROTO       ? 0
         : rc == PC_ETRUNCATED ? 1
         : rc == PC_EOF        ? 2
                               : 3]++;
    print_message("seed %u (%s, form %d): %d messages, then %s\n", seed,
                  kind_name(kind), form, messages, pc_errname(rc));
    if (!h.pipe) {
      /* The writer may still be writing: stop it by closing our reading
       * side only after checking that sends still work. */
      assert_rc(0, pc_send_bytes(h.c, "still", 5));
    }
    void *buf = NULL;
    size_t n = 0;
    assert_rc(rc, pc_recv_bytes(h.c, &buf, &n, PC_NOLIMIT)); /* sticky */
    assert_rc(0, pc_close(h.c));
    pc_test_wait_ok(pid, 60);
    if (!h.pipe)
      close(fd);
  }
  print_message("endings: %d PC_EPROTO, %d PC_ETRUNCATED, %d PC_EOF, %d "
                "-ENOMEM\n",
                seen[0], seen[1], seen[2], seen[3]);
}

/* ------------------------------------------------------------ shared ends */

/* A PC_SHARED end has a receive path of its own (no read-ahead, robust
 * locks in shared memory). A raw peer writes into its pipe directly. */
static void open_shared(int flags, pc_conn **r, pc_conn **w, int *fd) {
  assert_rc(0, pc_pipe(r, w, flags));
  *fd = pc_fileno(*w);
  assert_true(*fd >= 0);
}

/* Every receive form on r reports `code`; pc_poll says ready. */
static void expect_shared_code(pc_conn *r, int code) {
  void *buf = NULL;
  size_t n = 0;
  unsigned char small[4];
  assert_rc(code, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
  assert_rc(code, pc_recv_bytes_into(r, small, sizeof small));
  assert_rc(code, pc_next_size(r));
  assert_int_equal(pc_poll(r, 0), 1);
  assert_null(buf);
}

/* Negative header, lengths beyond the address space, truncated headers and
 * payloads on shared ends (duplex and simplex): exact codes, sticky, and no
 * frame is read after a protocol error: PC_EPROTO stays, as on a private
 * end (the direction is broken for every process sharing it). */
static void test_shared_end_hostile_bytes(void **state) {
  (void)state;
  const int kinds[] = {PC_SHARED | PC_SIMPLEX, PC_SHARED};
  for (int k = 0; k < 2; k++) {
    pc_conn *r, *w;
    int fd;
    void *buf = NULL;
    size_t n = 0;
    unsigned char hdr[12];

    open_shared(kinds[k], &r, &w, &fd);
    raw_write(fd, hdr, small_header(hdr, 0x80000000u));
    raw_write(fd, "\0\0\0\x02no", 6); /* a valid frame after it */
    assert_rc(PC_EPROTO, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
    expect_shared_code(r, PC_EPROTO);
    expect_shared_code(r, PC_EPROTO);
    pc_close(r);
    pc_close(w);

    open_shared(kinds[k], &r, &w, &fd);
    raw_write(fd, hdr, large_header(hdr, UINT64_C(1) << 63));
    raw_write(fd, "abc", 3);
    assert_rc(-ENOMEM, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
    assert_rc(-ENOMEM, pc_recv_bytes(r, &buf, &n, PC_NOLIMIT));
    assert_rc(PC_ETOOBIG, pc_next_size(r));
    assert_int_equal(pc_poll(r, 0), 1);
    pc_close(r);
    pc_close(w);

    for (size_t cut = 1; cut < 12; cut += 5) {
      open_shared(kinds[k], &r, &w, &fd);
      large_header(hdr, 7);
      raw_write(fd, hdr, cut);
      pc_close(w); /* the only write end: end of stream */
      expect_shared_code(r, PC_ETRUNCATED);
      expect_shared_code(r, PC_ETRUNCATED);
      pc_close(r);
    }

    open_shared(kinds[k], &r, &w, &fd);
    raw_write(fd,
              "\0\0\0\x0a"
              "abc",
              7);
    pc_close(w);
    expect_shared_code(r, PC_ETRUNCATED);
    expect_shared_code(r, PC_ETRUNCATED);
    pc_close(r);
  }
}

/* A length beyond the address space against a limit: a private end says
 * PC_ETOOBIG to pc_recv_bytes with a maxlength and PC_ETOOSHORT to
 * pc_recv_bytes_into (the message is longer than allowed, whatever its
 * size), and so must a shared end, whose doc promises that both leave the
 * message in place and the end readable. Today a shared end checks
 * "beyond SSIZE_MAX" first and answers -ENOMEM to both. */
static void test_shared_end_limit_applies_to_huge_lengths(void **state) {
  (void)state;
  pc_conn *r, *w;
  int fd;
  void *buf = NULL;
  size_t n = 0;
  unsigned char hdr[12];
  open_shared(PC_SHARED | PC_SIMPLEX, &r, &w, &fd);
  raw_write(fd, hdr, large_header(hdr, UINT64_C(1) << 63));
  assert_rc(PC_ETOOBIG, pc_recv_bytes(r, &buf, &n, 1u << 20));
  assert_rc(PC_ETOOSHORT, pc_recv_bytes_into(r, hdr, sizeof hdr));
  assert_true(pc_readable(r));
  pc_close(r);
  pc_close(w);
}

/* A live peer that stops in the middle of a frame on a shared end: the
 * receive keeps waiting (a shared end's timeout bounds only the wait for
 * the first byte of a frame, as documented for PC_SHARED), and pc_close
 * from another thread frees it with PC_ECLOSED. Run in a child, so that a
 * receive nobody can free would fail the test instead of hanging it. */
typedef struct stalled_rx {
  pc_conn *c;
  atomic_int done;
  atomic_int rc;
} stalled_rx;

static void *stalled_rx_main(void *arg) {
  stalled_rx *s = arg;
  void *buf = NULL;
  size_t n = 0;
  atomic_store(&s->rc, pc_recv_bytes(s->c, &buf, &n, PC_NOLIMIT));
  free(buf);
  atomic_store(&s->done, 1);
  return NULL;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stalled_child(void *arg) {
  int *report = arg;
  pc_conn *r, *w;
  if (pc_pipe(&r, &w, PC_SHARED | PC_SIMPLEX) != 0)
    return 10;
  if (child_write(pc_fileno(w),
                  "\0\0\0\x0a"
                  "abc",
                  7) != 0)
    return 11;
  pc_set_timeout(r, 50);
  stalled_rx s;
  s.c = r;
  atomic_init(&s.done, 0);
  atomic_init(&s.rc, 0);
  pthread_t th;
  if (pthread_create(&th, NULL, stalled_rx_main, &s) != 0)
    return 12;
  /* Give the 50 ms timeout six times its length to strike. */
  int64_t end = mono_ms() + 300;
  while (!atomic_load(&s.done) && mono_ms() < end)
    sched_yield();
  int timed_out = atomic_load(&s.done);
  int crc = pc_close(r);
  end = mono_ms() + 2000;
  while (!atomic_load(&s.done) && mono_ms() < end)
    sched_yield();
  if (!atomic_load(&s.done))
    _exit(13); /* still stuck after pc_close: leave without touching it */
  pthread_join(th, NULL);
  pc_close(w);
  int rc = atomic_load(&s.rc);
  if (write(*report, &timed_out, sizeof timed_out) != sizeof timed_out)
    return 14;
  if (crc != 0)
    return 15;
  return rc == (timed_out ? -ETIMEDOUT : PC_ECLOSED) ? 0 : 16;
}

static void test_shared_end_stalled_frame_is_freed_by_close(void **state) {
  (void)state;
  int rep[2];
  assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
  pc_test_wait_ok(pc_test_fork(stalled_child, &rep[1]), 30);
  int timed_out = -1;
  assert_int_equal(read(rep[0], &timed_out, sizeof timed_out),
                   (ssize_t)sizeof timed_out);
  close(rep[0]);
  close(rep[1]);
  print_message("shared end, peer stalled mid-frame, 50 ms timeout: %s\n",
                timed_out ? "-ETIMEDOUT"
                          : "still waiting after 300 ms; pc_close freed it "
                            "with PC_ECLOSED");
}

/* ------------------------------------------------------------ peak memory */

/* The receiving child: one connection per lying header, each fed by the
 * parent. It reports its peak RSS growth (KiB) through `report`. */
enum { RSS_CASES = 8 };

typedef struct rss_case {
  unsigned char hdr[12];
  size_t hdr_len;
  size_t data;    /* payload bytes the parent sends after the header */
  int timeout_ms; /* receiver's timeout; -1: wait for the end */
  int code;       /* expected result */
  bool shared;    /* a PC_SHARED pipe instead of a socketpair */
} rss_case;

typedef struct rss_args {
  rss_case cases[RSS_CASES];
  pc_conn *ends[RSS_CASES];
  int peers[RSS_CASES];
  pc_conn *shared_w[RSS_CASES]; /* a shared pipe's write end, or NULL */
  int report;
} rss_args;

/* Peak RSS says nothing about the library under ThreadSanitizer (shadow
 * memory) or valgrind (its own allocator): there the workloads still run,
 * but the bound is not checked. */
static bool rss_is_meaningful(void) {
  bool ok = getenv("PC_TEST_VALGRIND") == NULL;
#if defined(__SANITIZE_THREAD__)
  ok = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  ok = false;
#endif
#endif
  return ok;
}

static long maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static int rss_child(void *arg) {
  rss_args *a = arg;
  for (int i = 0; i < RSS_CASES; i++) {
    if (a->shared_w[i] != NULL)
      pc_close(a->shared_w[i]);
    else
      close(a->peers[i]);
  }
  long base = maxrss_kib();
  int rc = 0;
  for (int i = 0; i < RSS_CASES && rc == 0; i++) {
    void *buf = NULL;
    size_t n = 0;
    pc_set_timeout(a->ends[i], a->cases[i].timeout_ms);
    int r = pc_recv_bytes(a->ends[i], &buf, &n, PC_NOLIMIT);
    if (r != a->cases[i].code)
      rc = 10 + i;
    free(buf);
    pc_close(a->ends[i]);
  }
  long grew = maxrss_kib() - base;
  if (write(a->report, &grew, sizeof grew) != (ssize_t)sizeof grew)
    rc = 30;
  return rc;
}

static void rss_set(rss_case *c, uint64_t len, size_t data, int timeout_ms,
                    int code, bool shared) {
  c->hdr_len = len <= 0x7fffffffu ? small_header(c->hdr, (uint32_t)len)
                                  : large_header(c->hdr, len);
  c->data = data;
  c->timeout_ms = timeout_ms;
  c->code = code;
  c->shared = shared;
}

/* Peak RSS of a process that only receives, under lying headers followed
 * by up to 8 MiB of data, on private ends and on PC_SHARED ends: memory
 * follows the bytes that arrive, never the announced length. Bound: 64 MiB
 * above the baseline. */
static void test_peak_rss_under_lying_headers(void **state) {
  (void)state;
  rss_args a;
  memset(&a, 0, sizeof a);
  const size_t mib = 1u << 20;
  const uint64_t two62 = UINT64_C(1) << 62;
  rss_set(&a.cases[0], 0x7fffffffu, 4 * mib, -1, PC_ETRUNCATED, false);
  rss_set(&a.cases[1], two62, 8 * mib, -1, PC_ETRUNCATED, false);
  rss_set(&a.cases[2], UINT64_C(1) << 63, 64 * 1024, -1, -ENOMEM, false);
  rss_set(&a.cases[3], UINT64_MAX, 64 * 1024, -1, -ENOMEM, false);
  rss_set(&a.cases[4], two62, 0, 50, -ETIMEDOUT, false);
  rss_set(&a.cases[5], 0x7fffffffu, 0, 50, -ETIMEDOUT, false);
  rss_set(&a.cases[6], two62, 8 * mib, -1, PC_ETRUNCATED, true);
  rss_set(&a.cases[7], 0x7fffffffu, 4 * mib, -1, PC_ETRUNCATED, true);
  for (int i = 0; i < RSS_CASES; i++) {
    if (a.cases[i].shared) {
      assert_rc(0, pc_pipe(&a.ends[i], &a.shared_w[i], PC_SHARED | PC_SIMPLEX));
      a.peers[i] = pc_fileno(a.shared_w[i]);
    } else {
      hostile h;
      open_socket(&h);
      a.ends[i] = h.c;
      a.peers[i] = h.fd;
    }
    /* Every header is there before the receiver starts (the buffers hold
     * them), so the timeout cases wait with a header pending. */
    raw_write(a.peers[i], a.cases[i].hdr, a.cases[i].hdr_len);
  }
  int rep[2];
  assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
  a.report = rep[1];
  pid_t pid = pc_test_fork(rss_child, &a);
  close(rep[1]);
  for (int i = 0; i < RSS_CASES; i++)
    pc_close(a.ends[i]);
  unsigned char *data = calloc(1, 8 * mib);
  assert_non_null(data);
  for (int i = 0; i < RSS_CASES; i++) {
    /* The child may stop reading early (-ENOMEM): a failed write ends the
     * case (sockets report EPIPE without a signal; the shared pipe's reader
     * stays open until the child has read what it wants). */
    size_t off = 0;
    while (off < a.cases[i].data) {
      ssize_t k = a.cases[i].shared
                      ? write(a.peers[i], data + off, a.cases[i].data - off)
                      : send(a.peers[i], data + off, a.cases[i].data - off,
                             MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        break;
      off += (size_t)k;
    }
    if (a.cases[i].shared) {
      pc_close(a.shared_w[i]);
      a.shared_w[i] = NULL;
    } else if (a.cases[i].timeout_ms < 0) {
      shutdown(a.peers[i], SHUT_WR);
    }
  }
  free(data);
  pc_test_wait_ok(pid, 60);
  long grew = -1;
  assert_int_equal(read(rep[0], &grew, sizeof grew), (ssize_t)sizeof grew);
  close(rep[0]);
  for (int i = 0; i < RSS_CASES; i++)
    if (!a.cases[i].shared)
      close(a.peers[i]);
  print_message("receiver peak RSS growth under lying headers (2^31-1 + 4 "
                "MiB, 2^62 + 8 MiB, 2^63, 2^64-1, 2^62 and 2^31-1 waiting; "
                "shared ends: 2^62 + 8 MiB, 2^31-1 + 4 MiB): %ld KiB\n",
                grew);
  assert_true(grew >= 0);
  if (rss_is_meaningful())
    assert_true(grew < 64 * 1024);
  else
    print_message("(bound not checked under ThreadSanitizer or valgrind)\n");
}

/* The same for 10 MB of random bytes. */
static int rss_random_child(void *arg) {
  rss_args *a = arg;
  close(a->peers[0]);
  long base = maxrss_kib();
  int messages = 0;
  int rc = drain_random(a->ends[0], 0, &messages);
  pc_close(a->ends[0]);
  long grew = maxrss_kib() - base;
  if (write(a->report, &grew, sizeof grew) != (ssize_t)sizeof grew)
    return 30;
  return rc == PC_EPROTO || rc == PC_ETRUNCATED || rc == PC_EOF || rc == -ENOMEM
             ? 0
             : 31;
}

static void test_peak_rss_under_random_bytes(void **state) {
  (void)state;
  rss_args a;
  memset(&a, 0, sizeof a);
  long worst = 0;
  for (uint32_t seed = 100; seed < 104; seed++) { /* even: zero-heavy */
    hostile h;
    open_socket(&h);
    a.ends[0] = h.c;
    a.peers[0] = h.fd;
    int rep[2];
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    a.report = rep[1];
    pid_t pid = pc_test_fork(rss_random_child, &a);
    close(rep[1]);
    pc_close(h.c);
    random_writer w = {h.fd, NULL, seed};
    pid_t wpid = pc_test_fork(random_writer_main, &w);
    close(h.fd);
    pc_test_wait_ok(pid, 60);
    pc_test_wait_ok(wpid, 60);
    long grew = -1;
    assert_int_equal(read(rep[0], &grew, sizeof grew), (ssize_t)sizeof grew);
    close(rep[0]);
    if (grew > worst)
      worst = grew;
  }
  print_message("receiver peak RSS growth under 10 MB of random bytes "
                "(worst of 4 seeds): %ld KiB\n",
                worst);
  if (rss_is_meaningful())
    assert_true(worst < 64 * 1024);
  else
    print_message("(bound not checked under ThreadSanitizer or valgrind)\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_length_2_31_minus_1_with_few_bytes_waits_then_truncates),
      cmocka_unit_test(test_length_2_63_is_enomem_at_once_and_sticky),
      cmocka_unit_test(
          test_length_2_62_never_arriving_times_out_then_truncates),
      cmocka_unit_test(test_lying_length_over_maxlength_is_too_big),
      cmocka_unit_test(test_negative_lengths_are_sticky_protocol_errors),
      cmocka_unit_test(test_truncated_headers),
      cmocka_unit_test(test_truncated_payloads),
      cmocka_unit_test(test_truncated_message_is_sticky_for_every_receive_form),
      cmocka_unit_test(test_header_split_into_tiny_writes_blocking),
      cmocka_unit_test(test_header_split_into_tiny_writes_with_timeouts),
      cmocka_unit_test(test_header_split_into_tiny_writes_poll),
      cmocka_unit_test(test_large_payload_dribbled_with_timeouts),
      cmocka_unit_test(test_garbage_pickles_fail_one_message_each),
      cmocka_unit_test(test_mutated_pickles_never_desynchronise),
      cmocka_unit_test(test_ten_megabytes_of_random_bytes),
      cmocka_unit_test(test_shared_end_hostile_bytes),
      cmocka_unit_test(test_shared_end_limit_applies_to_huge_lengths),
      cmocka_unit_test(test_shared_end_stalled_frame_is_freed_by_close),
      cmocka_unit_test(test_peak_rss_under_lying_headers),
      cmocka_unit_test(test_peak_rss_under_random_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
