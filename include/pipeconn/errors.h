/* SPDX-License-Identifier: MIT */
#ifndef PIPECONN_ERRORS_H
#define PIPECONN_ERRORS_H

#include "version.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */
/*
 * Every fallible function returns a negative int on failure:
 *  - an operating-system failure is the negated errno: -EPIPE, -ENOMEM,
 *    -EINVAL (a caller's mistake), -ETIMEDOUT, -EAGAIN, -EMFILE, ...;
 *  - a library condition is one of the PC_E* constants below. They lie far
 *    below -4095 (the lowest negated errno Linux can produce), so they never
 *    collide with an errno value.
 * pc_strerror() and pc_errname() accept both kinds.
 *
 * The list is an X-macro so that the constants, pc_strerror() and
 * pc_errname() cannot drift apart: XX(NAME, value offset, description).
 */
#define PC_ERROR_MAP(XX)                                                       \
  XX(EOF, 1, "end of stream: the peer closed the connection")                  \
  XX(ETRUNCATED, 2,                                                            \
     "the peer closed the connection in the middle of a message")              \
  XX(ETOOBIG, 3, "message longer than the allowed maximum length")             \
  XX(ETOOSHORT, 4, "buffer too short for the message")                         \
  XX(ECLOSED, 5, "connection is closed")                                       \
  XX(EREADONLY, 6, "connection is read-only")                                  \
  XX(EWRITEONLY, 7, "connection is write-only")                                \
  XX(EPROTO, 8, "protocol error: malformed data from the peer")                \
  XX(EUNSAFE, 9,                                                               \
     "pickle opcode outside the data subset (would import or call code)")      \
  XX(EENCODE, 10, "object cannot be represented by the serializer")            \
  XX(ELIMIT, 11, "decoder limit exceeded (depth, length or memo size)")        \
  XX(EFULL, 12, "queue is full")                                               \
  XX(EEMPTY, 13, "queue is empty")                                             \
  XX(EPEERDIED, 14,                                                            \
     "a process sharing this end died in the middle of a message")             \
  XX(ETASKDONE, 15, "task_done() called more times than items were put")

#define PC__ERROR_BASE (-30000)

enum pc_error {
#define PC__ERR_ENUM(name, n, text) PC_##name = PC__ERROR_BASE - (n),
  PC_ERROR_MAP(PC__ERR_ENUM)
#undef PC__ERR_ENUM
};

#ifdef __cplusplus
extern "C" {
#endif

/* pc_strerror describes any return code of this library: a PC_E* constant,
 * a negated errno (-EPIPE) or 0. Never returns NULL; the string is static and
 * constant, so it is safe to call from any thread. Unknown codes give
 * "unknown error". */
PC_API const char *pc_strerror(int err);

/* pc_errname returns the symbolic name of a code: "PC_EOF", "EPIPE", "0".
 * Never returns NULL; unknown codes give "UNKNOWN". */
PC_API const char *pc_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
