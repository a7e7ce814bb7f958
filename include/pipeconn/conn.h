/* SPDX-License-Identifier: MIT */
#ifndef PIPECONN_CONN_H
#define PIPECONN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Connection                                                                */
/* ------------------------------------------------------------------------ */
/*
 * A pc_conn is one end of a pipe carrying whole messages, the equivalent of
 * Python's multiprocessing.connection.Connection.
 *
 * Wire format (exactly Python's): a 4-byte big-endian signed length, then the
 * payload. A payload longer than 0x7fffffff bytes is announced by the header
 * -1 followed by an 8-byte big-endian unsigned length. The -1 form is
 * accepted for any length, as Python does. Any other negative header is a
 * protocol error (PC_EPROTO) -- Python silently returns an empty message.
 *
 * Threads: every function may be called from several threads on the same
 * connection at once. Concurrent senders never interleave frames, concurrent
 * receivers never split one, and a sender and a receiver on the same duplex
 * end do not wait for each other (each direction has its own lock).
 * pc_close() may be called while other threads are inside calls on the
 * same handle: they return PC_ECLOSED promptly, and pc_close() waits for
 * them to leave before it releases the handle. No call may start after
 * pc_close() has returned (the handle is gone).
 *
 * Processes: without PC_SHARED, one end belongs to one process. After fork()
 * exactly one process may use each end (close the copy you do not use, as in
 * Python); two processes receiving on one end steal each other's bytes. With
 * PC_SHARED, any number of processes forked after pc_pipe() (and their
 * threads) may send and receive on the same end; see PC_SHARED.
 *
 * Signals: EINTR is retried everywhere (a timeout keeps its deadline) and
 * short reads and writes are completed, so a signal never breaks a message.
 * A send to a peer that is gone returns -EPIPE and never raises SIGPIPE, on
 * socket and pipe ends alike, without touching the process's signal
 * dispositions or leaving a SIGPIPE pending.
 *
 * Descriptors: every descriptor the library creates is close-on-exec unless
 * PC_INHERIT is given. No error path leaks a descriptor.
 */
typedef struct pc_conn pc_conn;

/* Flags for pc_pipe() and pc_conn_from_fd(). */
enum pc_conn_flags {
  /* pc_pipe: a one-way pipe(2); c1 is the read end, c2 the write end
   * (Python's Pipe(duplex=False)). Without it, a duplex AF_UNIX socketpair. */
  PC_SIMPLEX = 1 << 0,
  /* pc_pipe: the descriptors survive exec (default: close-on-exec). */
  PC_INHERIT = 1 << 1,
  /* pc_pipe: both ends may be shared by any number of processes forked after
   * the call (and by their threads). Each message goes to exactly one
   * receiver, whole, and frames of concurrent senders never interleave, at
   * any size. The locks live in a shared anonymous mapping, are
   * process-shared and robust: a process killed while holding one does not
   * hang the others (see pc_pipe for what they observe). Costs one mapping
   * per pipe and no read-ahead on receive. */
  PC_SHARED = 1 << 2,
  /* pc_conn_from_fd: the end may receive. */
  PC_READABLE = 1 << 3,
  /* pc_conn_from_fd: the end may send. */
  PC_WRITABLE = 1 << 4,
};

/* No maximum message length for pc_recv_bytes(). */
#define PC_NOLIMIT SIZE_MAX

/* Largest payload a 4-byte header can announce; larger payloads use the
 * -1 + 8-byte form. */
#define PC_SMALL_FRAME_MAX 0x7fffffffu

/* pc_pipe creates a connected pair of connections.
 *
 * flags: 0 (duplex socketpair, both ends read and write: Python's Pipe()),
 * PC_SIMPLEX (pipe2: *c1 read-only, *c2 write-only: Pipe(duplex=False)),
 * PC_INHERIT (descriptors survive exec) and PC_SHARED (ends shareable by
 * processes forked afterwards), combined with |.
 *
 * PC_SHARED ends differ from private ones in these ways:
 *  - Timeouts bound the wait for the shared lock and for the first byte of a
 *    frame; once a frame has started it is finished (another process may be
 *    waiting for the boundary), so no send holds a remainder and pc_flush
 *    has nothing to do.
 *  - No read-ahead: the bytes after a frame belong to whoever takes the
 *    next message. pc_poll reports readability of the descriptor, as
 *    Python's poll does (another process may take the message first).
 *  - PC_ETOOBIG and PC_ETOOSHORT leave the message in place for the next
 *    receive, in this process or another; the end stays readable.
 *  - -ENOMEM before any byte of a payload was read keeps the message; a
 *    payload over 64 MiB whose buffer cannot grow after its first 64 MiB
 *    arrived is lost (skipped to its end), and the next receive gets the
 *    next message.
 *  - A process killed while it holds a lock never hangs the others:
 *    a receiver killed mid-message costs exactly that message (the next
 *    receiver skips its rest); a sender killed mid-frame makes the next
 *    sender complete the frame with padding and whoever receives it gets
 *    PC_EPEERDIED instead of a corrupt message; a receiver waiting for the
 *    rest of a frame whose sender died gets PC_EPEERDIED within about
 *    100 ms. The stream stays in sync in all these cases. Only a process
 *    killed inside the one non-blocking read or write system call that
 *    moves the bytes leaves the stream position unknown: that direction is
 *    then broken, and every later send, receive (and pc_poll: 1) reports
 *    PC_EPEERDIED.
 *
 * Returns 0 and sets *c1 and *c2, or: -EINVAL (NULL pointer or unknown flag),
 * -EMFILE/-ENFILE (out of descriptors), -ENOMEM. On failure nothing is
 * created and *c1, *c2 are untouched. */
PC_API int pc_pipe(pc_conn **c1, pc_conn **c2, int flags);

/* pc_conn_from_fd wraps a descriptor this process already holds (inherited
 * across exec, passed by a Python parent with pass_fds, ...) and takes
 * ownership of it: pc_close() closes it, and so does a failing call.
 * flags: PC_READABLE and/or PC_WRITABLE (at least one). The descriptor may be
 * a socket or a pipe; its close-on-exec and blocking flags are not changed.
 * Returns 0 and sets *out, or -EINVAL (fd < 0, no direction, unknown flag),
 * -EBADF (fd is not open), -ENOMEM. Python: Connection(fd, readable,
 * writable). */
PC_API int pc_conn_from_fd(int fd, int flags, pc_conn **out);

/* pc_send_bytes sends buf[0..len) as one message. Python: send_bytes().
 *
 * Blocks until the whole frame is handed to the kernel, bounded by the
 * connection's timeout (pc_set_timeout). Header and payload go out in one
 * system call. Returns 0, or:
 *  -ETIMEDOUT / -EAGAIN (timeout > 0 / timeout 0): nothing of this message
 *     was sent; retrying it is safe. (Once part of a frame has gone out the
 *     send does not fail: the library keeps the rest, see pc_flush.)
 *  -EPIPE: the peer is gone (no SIGPIPE is raised);
 *  PC_EREADONLY, PC_ECLOSED, -EINVAL (buf NULL with len > 0), -ENOMEM,
 *  or another -errno from the system. */
PC_API int pc_send_bytes(pc_conn *c, const void *buf, size_t len);

/* pc_send_bytesv sends the concatenation of iov[0..iovcnt) as ONE message
 * (scatter-gather: no need to assemble a header and a body into one buffer).
 * Same returns and timeout rules as pc_send_bytes; iovcnt may be 0 (empty
 * message) and is limited to IOV_MAX - 1 (-EINVAL beyond). */
PC_API int pc_send_bytesv(pc_conn *c, const struct iovec *iov, int iovcnt);

/* pc_send_batch sends msgs[0..n) as n separate messages, each iovec being
 * one whole message, in as few system calls as possible (up to 512
 * messages per writev): the fast way to stream many small messages. The
 * receiver sees n ordinary messages, in order.
 * Returns the number of messages handed over: n, or fewer when the
 * connection's timeout struck part-way, like a short write(2) -- messages
 * [0, ret) are sent (the last of them possibly completed later from the
 * library's hold, see pc_flush) and [ret, n) not at all, so resend those.
 * -ETIMEDOUT / -EAGAIN when none went out; otherwise errors as
 * pc_send_bytes. */
PC_API ssize_t pc_send_batch(pc_conn *c, const struct iovec *msgs, size_t n);

/* pc_flush writes what the library still holds for c: the remainder of a
 * frame whose send hit the timeout after part of it was written, and, in
 * buffered mode, the buffered messages. Bounded by the connection's timeout.
 * Returns 0 when nothing is held any more, -ETIMEDOUT / -EAGAIN if some is
 * still held (call again), -EPIPE if the peer is gone (what was held is
 * dropped: nobody can read it), PC_EREADONLY, PC_ECLOSED. Unbuffered sends
 * finish a held remainder first, so there it is only needed to know that
 * everything left. Python has no equivalent (its sends never return early). */
PC_API int pc_flush(pc_conn *c);

/* pc_set_buffered gives c a send buffer of `size` bytes, like a stdio stream
 * (0, the default: none). Sends then append whole messages to the buffer
 * without a system call, and the buffer is written when a message does not
 * fit, on pc_flush, in pc_close, and before a receive or pc_poll on c (so a
 * request never waits in the buffer for its own reply; skipped if another
 * thread is sending). A message larger than the buffer is written directly,
 * after what is buffered. This turns a stream of small messages into a few
 * large writes: the way to send many small objects with pc_send.
 * Error reporting moves accordingly: a send that finds the buffer full and
 * cannot write it within the timeout returns -ETIMEDOUT / -EAGAIN with the
 * new message not taken; -EPIPE for buffered messages is reported by the
 * send or flush that writes them. Changing the size, or 0, first writes
 * what no longer fits (within the timeout, whose code is returned).
 * Returns 0, -ENOTSUP for PC_SHARED ends (their frames go out whole under
 * the shared lock), PC_EREADONLY, PC_ECLOSED, -EINVAL. */
PC_API int pc_set_buffered(pc_conn *c, size_t size);

/* pc_recv_bytes receives one whole message into a new buffer. Python:
 * recv_bytes(maxlength).
 *
 * On success returns 0, *buf points to the payload allocated with malloc
 * (release with free(); never NULL, even for an empty message) and *len is
 * its length. maxlength bounds the payload (PC_NOLIMIT: none).
 * Blocks until a whole message is there, bounded by the connection's timeout.
 * Errors (*buf and *len untouched):
 *  PC_EOF: the peer closed at a message boundary; every later call returns
 *     it again. Messages sent before the close are delivered first.
 *  PC_ETRUNCATED: the peer closed in the middle of a message (sticky).
 *  -ETIMEDOUT / -EAGAIN: no whole message in time. Nothing is lost: bytes
 *     already read are kept and the next receive resumes the message.
 *  PC_ETOOBIG: the message is longer than maxlength. As in Python the end
 *     can no longer receive: a duplex end stays writable (pc_readable()
 *     becomes false, later receives give PC_EWRITEONLY); a read-only end is
 *     closed (later calls give PC_ECLOSED). Use pc_next_size() first to
 *     decide without losing the connection.
 *  PC_EPROTO: a negative header other than -1 (sticky: no further bytes are
 *     read as frames).
 *  -ENOMEM: the payload could not be held. Memory follows data: a header
 *     announcing a huge length allocates only as bytes arrive (up to 64 MiB
 *     of address space at once, of which at most 2 MiB beyond the bytes
 *     received is touched).
 *  PC_EWRITEONLY, PC_ECLOSED, -EINVAL, or another -errno.
 * A large payload's fresh pages are populated a 2 MiB window at a time
 * (madvise MADV_POPULATE_WRITE, Linux 5.14+) instead of faulting one page at
 * a time during the copy; where page faults are dear (virtual machines) that
 * halves the cost of a message landing in fresh memory. A block of 4 MiB or
 * more is also offered transparent huge pages (madvise MADV_HUGEPAGE on its
 * whole 2 MiB pages, where the kernel has THP): on the project's VM that
 * took the 16 MiB stream from 0.90 to 0.98-1.00 of a raw socketpair. The
 * block stays ordinary malloc memory, released with free. Nothing is ever
 * advised about a caller's buffer (pc_recv_bytes_into). */
PC_API int pc_recv_bytes(pc_conn *c, void **buf, size_t *len, size_t maxlength);

/* pc_recv_bytes_into receives one whole message into buf[0..cap) and returns
 * its length. Python: recv_bytes_into().
 * If the message is longer than cap it returns PC_ETOOSHORT and the message
 * stays: pc_next_size() tells its length, and the next receive returns it.
 * buf's contents are then unspecified: after a large message (over 32 KiB)
 * the next one's header and the start of its payload are read in one
 * system call, the payload straight into buf on the guess that it fits.
 * Other errors as pc_recv_bytes. A large payload goes straight from the
 * kernel into buf, whose fresh pages are populated ahead of it as in
 * pc_recv_bytes. */
PC_API ssize_t pc_recv_bytes_into(pc_conn *c, void *buf, size_t cap);

/* pc_next_size waits (bounded by the connection's timeout) until the header
 * of the next message has arrived and returns its payload length, without
 * consuming the message. Errors as pc_recv_bytes; PC_ETOOBIG if the length
 * does not fit in ssize_t. */
PC_API ssize_t pc_next_size(pc_conn *c);

/* pc_poll waits until a receive would not block. Python: poll().
 * timeout_ms: 0 returns at once, -1 waits forever, > 0 bounds the wait.
 * Returns 1 when a whole message is ready or the stream has ended (end of
 * stream, truncation or protocol error: the next receive reports it), 0 on
 * timeout, or PC_EWRITEONLY, PC_ECLOSED, -EINVAL, -ENOMEM, another -errno.
 * Better than Python: a partly arrived message does not count, so after a 1
 * the next receive never blocks (Python reports True as soon as any byte is
 * there). pc_poll reads what is available into the connection, so it does
 * not touch the descriptor's readiness as seen by others. It never consumes
 * a message: repeated polls are idempotent. */
PC_API int pc_poll(pc_conn *c, int timeout_ms);

/* pc_set_timeout bounds every blocking send and receive on c (including the
 * wait for the connection's own lock): -1 (the default) waits forever, 0
 * never blocks (reporting -EAGAIN), > 0 milliseconds (reporting -ETIMEDOUT).
 * A timeout covers the whole call, not each system call. Returns 0, or
 * -EINVAL for values below -1, PC_ECLOSED. Python has no equivalent. */
PC_API int pc_set_timeout(pc_conn *c, int timeout_ms);

/* pc_set_spin sets how long, in microseconds, a receive (and pc_poll, and
 * pc_wait over c) keeps trying before it puts the thread to sleep when
 * nothing has arrived: 0 sleeps at once, as a plain read(2) does; the
 * default is PC_SPIN_DEFAULT; at most PC_SPIN_MAX.
 *
 * Why: a thread that sleeps must be woken by the peer's write, and waking a
 * thread on another CPU costs an inter-processor interrupt -- on a virtual
 * machine more than the whole exchange. A reader still awake when the
 * answer comes saves that. Measured on a 2-CPU VM (bench/run_bench.py,
 * README): a 64 B round trip between two CPUs takes 11 us with the default
 * spin against 34 us for a raw socketpair that sleeps, and half the CPU time
 * (the sleep and the wake-up cost more than the tries that replace them).
 *
 * What it costs: up to spin_us of CPU time per receive that finds nothing
 * and has to wait longer than that, in vain; no system call is added when
 * data is already there. Between tries the thread yields the CPU
 * (sched_yield), so a peer or any other thread runnable on the same CPU
 * runs first. The spin never outlasts the connection's timeout (timeout 0
 * never spins) and stops when pc_close is called from another thread. Sends
 * never spin, and neither do PC_SHARED ends (their waits happen under a
 * shared lock).
 * Set 0 where CPU time matters more than latency (many idle connections, a
 * battery, a receiver that always waits long). Returns 0, or -EINVAL for a
 * value outside [0, PC_SPIN_MAX], PC_ECLOSED. Python has no equivalent (its
 * reads always sleep at once). */
#define PC_SPIN_DEFAULT 10
#define PC_SPIN_MAX 1000000
PC_API int pc_set_spin(pc_conn *c, int spin_us);

/* pc_fileno returns the descriptor (still owned by c), or PC_ECLOSED, or
 * -EINVAL for NULL. Use it to wait with your own poll loop; pc_poll and
 * pc_wait also account for bytes the library has already read ahead. */
PC_API int pc_fileno(const pc_conn *c);

/* pc_readable / pc_writable / pc_closed report the end's state (Python's
 * readable, writable and closed properties). NULL reads as closed. */
PC_API bool pc_readable(const pc_conn *c);
PC_API bool pc_writable(const pc_conn *c);
PC_API bool pc_closed(const pc_conn *c);

/* pc_close first tries to send what pc_flush would (within the connection's
 * timeout; with no timeout it waits for the peer to read), then closes the
 * descriptor and releases the handle. If what is held cannot be sent
 * (timeout, peer gone) it is dropped and the peer sees PC_ETRUNCATED; the
 * return value says so (-ETIMEDOUT, -EAGAIN, -EPIPE) but the handle is
 * released in every case. NULL is accepted (returns 0). Python: close().
 * Calls blocked in other threads on c are woken and return PC_ECLOSED; to
 * wake them a socket end is shut down (shutdown(2), which the peer and any
 * process sharing the socket see as end of stream) and a pipe end signals
 * an eventfd the library creates the first time a thread blocks on it. Only
 * when that eventfd could not be made (out of descriptors) does a thread
 * blocked on a pipe stay blocked until data or end of stream arrives. */
PC_API int pc_close(pc_conn *c);

/* ------------------------------------------------------------------------ */
/* Waiting on many connections                                               */
/* ------------------------------------------------------------------------ */

/* pc_wait waits until at least one of conns[0..n) has a whole message or its
 * stream has ended (what makes pc_poll return 1), and stores every such
 * connection into ready[] (room for n) in input order, *nready their count.
 * Python: multiprocessing.connection.wait(). No connection starves: all
 * ready ones are returned. A message already read ahead into a connection
 * counts even though poll(2) on its descriptor shows nothing. On a PC_SHARED
 * end "ready" means the descriptor is readable: another process may take the
 * message first. timeout_ms as pc_poll; on timeout returns 0 with
 * *nready == 0. Returns the number ready (>= 0), or -EINVAL (NULL, closed or
 * write-only entries, timeout below -1), -ENOMEM, another -errno; on error
 * ready[] and *nready are untouched. Before it sleeps it keeps polling
 * for as long as the largest pc_set_spin among conns (PC_SHARED ends not
 * counted), as a receive does. */
PC_API int pc_wait(pc_conn **conns, size_t n, int timeout_ms, pc_conn **ready,
                   size_t *nready);

/* One entry for pc_wait_items: either a connection (conn != NULL) or a
 * plain descriptor (conn == NULL, fd >= 0) such as a child's pidfd or a
 * socket, which is ready when poll(2) reports it readable or hung up. */
typedef struct pc_wait_item {
  pc_conn *conn;
  int fd;
  bool ready; /* set by pc_wait_items */
} pc_wait_item;

/* pc_wait_items is pc_wait over connections and plain descriptors mixed:
 * it sets items[i].ready and returns the number ready, 0 on timeout, or a
 * negative error as pc_wait. */
PC_API int pc_wait_items(pc_wait_item *items, size_t n, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
