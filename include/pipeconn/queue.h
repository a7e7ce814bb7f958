/* SPDX-License-Identifier: MIT */
#ifndef PIPECONN_QUEUE_H
#define PIPECONN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "serializer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Queue                                                                     */
/* ------------------------------------------------------------------------ */
/*
 * A pc_queue is the equivalent of multiprocessing.Queue and JoinableQueue
 * (every queue is joinable): create it before fork(), then any number of
 * producer and consumer processes, and their threads, use it.
 *
 * Where items live: in one shared anonymous mapping made by pc_queue_new
 * (a header, then a byte ring of records). A put copies the item into the
 * ring and returns; there is no feeder thread and nothing is buffered in
 * the producer, so a producer may exit, be killed after its put returned,
 * or be waited for at any time, and what it put stays in the queue for the
 * others. The items survive as long as any process still has the queue
 * (until the last one calls pc_queue_free or exits).
 *
 * Memory: the ring's size (the byte capacity, 64 MiB by default, see
 * pc_queue_options) bounds the bytes in the queue at any time: each item
 * takes its length plus 8 to 15 bytes. Pages are allocated when first
 * touched, not at creation. The ring restarts at its beginning whenever the
 * queue becomes empty, and the pages of an item of 1 MiB or more are given
 * back when it is taken out, so resident memory follows the largest backlog,
 * never more than the capacity. An item that can never fit is refused with
 * PC_ETOOBIG; maxsize separately bounds the number of items.
 *
 * Order: items put by one thread arrive in the order it put them (FIFO
 * overall: the ring is one sequence). qsize is exact.
 *
 * Processes killed at any point (SIGKILL included). The shared state is
 * guarded by a robust process-shared mutex and changed by a commit that the
 * next process to take the lock completes or discards, so a dying process
 * never leaves the queue locked or inconsistent. Exactly:
 *  - a producer killed inside pc_queue_put either put the item (the put
 *    had reached its commit point) or did not put it at all; never a
 *    partial item, never twice;
 *  - a consumer killed inside pc_queue_get before the commit point leaves
 *    the item in the queue for the next consumer; after it, the item is
 *    taken: it is lost with the process, since nobody else can have it.
 * So no item is ever duplicated and at most the item that process was
 * handling is lost; everything else is intact. A consumer that dies between
 * a successful get and its pc_queue_task_done leaves the unfinished count
 * one too high, so pc_queue_join with that item outstanding only returns on
 * its timeout. A process killed while it waits (for the lock, an item or
 * room) leaves nothing behind. The one window that delays the others is a
 * process killed between publishing an item (or room) and waking the
 * sleepers: blocked waiters re-check at least once a second (and lock
 * waiters every 100 ms), so no wake-up is ever lost for good.
 *
 * Threads: every function except pc_queue_free may be called from any
 * number of threads at once.
 *
 * fork and exec: pc_queue_new must be called before the fork() that
 * creates the processes sharing it; a process forked afterwards uses the
 * same pc_queue pointer. The queue is memory, not a descriptor: nothing is
 * inherited across exec (there is nothing to close-on-exec), and an exec'd
 * program cannot reach the queue. Each process calls pc_queue_free when it
 * is done (exiting does the same).
 */
typedef struct pc_queue pc_queue;

/* Default byte capacity of the ring: 64 MiB of address space (not memory:
 * see "Memory" above). The largest item it takes is a little under 64 MiB. */
#define PC_QUEUE_DEFAULT_CAPACITY ((size_t)64 << 20)

/* Options for pc_queue_new_ex. Zero-initialise, then set what you need:
 * every zero field means its default. */
typedef struct pc_queue_options {
  /* Most items the queue holds at once; 0: no limit (only bytes). */
  size_t maxsize;
  /* Size of the ring in bytes (rounded up to a multiple of the page size);
   * 0: PC_QUEUE_DEFAULT_CAPACITY. An item of n bytes needs n + 15 bytes at
   * most. */
  size_t capacity;
  /* Serializer for pc_queue_put/pc_queue_get and its user data (both must
   * outlive the queue in every process). NULL: the default pickle codec
   * over pc_value (pc_pickle_serializer(), ctx NULL). */
  const pc_serializer *serializer;
  void *serializer_ctx;
} pc_queue_options;

/* pc_queue_new creates a queue holding at most maxsize items (0: no limit
 * on the count) in a ring of PC_QUEUE_DEFAULT_CAPACITY bytes, with the
 * default serializer. Python: multiprocessing.Queue(maxsize) /
 * JoinableQueue(maxsize).
 * Returns 0 and sets *q (new: release with pc_queue_free in every process),
 * or -EINVAL (q NULL), -ENOMEM. On failure *q is untouched. */
PC_API int pc_queue_new(pc_queue **q, size_t maxsize);

/* pc_queue_new_ex is pc_queue_new with options (NULL: all defaults).
 * Returns 0 and sets *q, or -EINVAL (q NULL; a serializer lacking a
 * function; a capacity too small for one empty item or too large to map),
 * -ENOMEM. */
PC_API int pc_queue_new_ex(pc_queue **q, const pc_queue_options *opts);

/* pc_queue_put_bytes copies buf[0..len) into the queue as one item.
 * Python: put(obj, block, timeout) with bytes.
 *
 * timeout_ms: -1 waits as long as the queue is full; 0 never waits for room
 * (it may wait for the lock, which another process holds only while it
 * copies one item); > 0 bounds the whole call, the wait for the lock
 * included. When the call returns 0 the item is in the queue, visible to
 * every process, and stays there if this process exits.
 * Returns 0, or:
 *  PC_EFULL: still full (maxsize items, or not enough free bytes) at the
 *     deadline (Python: queue.Full); nothing was put;
 *  PC_ECLOSED: the queue was closed (pc_queue_close), before or while
 *     waiting;
 *  PC_ETOOBIG: the item can never fit in the ring's capacity;
 *  -EINVAL (q NULL, or buf NULL with len > 0), -ENOTRECOVERABLE (the lock
 *     was broken), or another -errno.
 * Blocks as described; thread-safe. */
PC_API int pc_queue_put_bytes(pc_queue *q, const void *buf, size_t len,
                              int timeout_ms);

/* pc_queue_get_bytes takes the oldest item out of the queue.
 * Python: get(block, timeout), for an item put as bytes.
 *
 * On success returns 0, *buf points to a copy of the item allocated with
 * malloc (new: release with free(); never NULL, even for an empty item) and
 * *len is its length. timeout_ms as pc_queue_put_bytes, waiting for an item.
 * Returns, with *buf and *len untouched:
 *  PC_EEMPTY: still empty at the deadline (Python: queue.Empty);
 *  PC_ECLOSED: the queue was closed and is empty (items put before the
 *     close are still delivered first);
 *  -ENOMEM: no memory for the copy (the item stays in the queue);
 *  PC_EPROTO: the shared ring is corrupt (overwritten by a stray write);
 *  -EINVAL, -ENOTRECOVERABLE, or another -errno.
 * Blocks as described; thread-safe. */
PC_API int pc_queue_get_bytes(pc_queue *q, void **buf, size_t *len,
                              int timeout_ms);

/* pc_queue_put encodes obj with the queue's serializer (outside the lock)
 * and puts the encoding as one item. Python: put(obj, block, timeout).
 * With the default serializer obj is a `const pc_value *` (borrowed).
 * If encoding fails nothing is put and the encoder's code is returned
 * (PC_EENCODE, -ENOMEM, ...). Otherwise as pc_queue_put_bytes. */
PC_API int pc_queue_put(pc_queue *q, const void *obj, int timeout_ms);

/* pc_queue_get takes the oldest item and decodes it (outside the lock) into
 * *obj, a new object: release it with the serializer's release
 * (pc_value_free for the default). Python: get(block, timeout).
 * A decoding failure returns the decoder's code (PC_EPROTO, PC_EUNSAFE,
 * PC_ELIMIT, -ENOMEM): that item is consumed, the queue stays usable.
 * Otherwise as pc_queue_get_bytes. */
PC_API int pc_queue_get(pc_queue *q, void **obj, int timeout_ms);

/* pc_queue_qsize returns the number of items in the queue (>= 0): exact at
 * the moment it is read (under the lock), though others may change it right
 * after. Python: qsize() (which is approximate there, and raises
 * NotImplementedError on macOS). Returns -EINVAL for NULL, -ENOTRECOVERABLE. Thread-safe. */
PC_API ssize_t pc_queue_qsize(pc_queue *q);

/* pc_queue_empty returns 1 if the queue holds no item, 0 if it holds some,
 * or a negative code as pc_queue_qsize. Python: empty(). */
PC_API int pc_queue_empty(pc_queue *q);

/* pc_queue_full returns 1 if the queue holds maxsize items, 0 otherwise, or
 * a negative code as pc_queue_qsize. An item may still not fit in the
 * ring's bytes when this says 0. Python: full(). */
PC_API int pc_queue_full(pc_queue *q);

/* pc_queue_close shuts the queue for every process sharing it: from then
 * on puts return PC_ECLOSED; gets still deliver the items already in the
 * queue, in order, and return PC_ECLOSED once it is empty, instead of
 * waiting. Blocked waiters are woken: blocked puts return PC_ECLOSED,
 * blocked gets take a remaining item or return PC_ECLOSED. task_done and
 * join keep working (join still waits until every item put was marked
 * done). Use it as the end-of-stream signal once all producers are done;
 * it does not release anything (pc_queue_free does).
 * Python: close() only affects the calling process; this is closer to
 * Python 3.13's queue.Queue.shutdown(immediate=False).
 * Returns 0 (also when already closed), -EINVAL for NULL, -ENOTRECOVERABLE.
 * Thread-safe. */
PC_API int pc_queue_close(pc_queue *q);

/* pc_queue_free releases this process's handle: unmaps the shared memory
 * and frees q. The queue lives on in the other processes that still hold
 * it; items are destroyed when the last process frees it or exits. q NULL
 * is accepted. No other call on q may be running in this process or start
 * afterwards. Python: the queue object being garbage-collected. */
PC_API void pc_queue_free(pc_queue *q);

/* pc_queue_task_done tells the queue that an item taken with a get has
 * been processed. Python: JoinableQueue.task_done().
 * Returns 0, or PC_ETASKDONE when called more times than items were put
 * (Python: ValueError), -EINVAL for NULL, -ENOTRECOVERABLE. Thread-safe;
 * any process may call it. */
PC_API int pc_queue_task_done(pc_queue *q);

/* pc_queue_join waits until every item ever put has been marked done with
 * pc_queue_task_done (by any process). Python: JoinableQueue.join(), with a
 * timeout that Python lacks: -1 waits without bound, 0 only checks, > 0
 * bounds the wait. Returns 0 when no task is outstanding, -ETIMEDOUT
 * (timeout > 0) or -EAGAIN (timeout 0) when some still are, -EINVAL for
 * NULL, -ENOTRECOVERABLE. Thread-safe. */
PC_API int pc_queue_join(pc_queue *q, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
