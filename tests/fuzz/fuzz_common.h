/* SPDX-License-Identifier: MIT */
/* What the fuzz targets share: the libFuzzer entry point, a check that
 * aborts with a message (so libFuzzer and the replay driver both stop on it),
 * and raw descriptor helpers for the hostile peer. */
#ifndef PC_FUZZ_COMMON_H
#define PC_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pipeconn.h"

/* The libFuzzer entry point every target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FZ_CHECK(cond, fmt, ...): when cond is false, prints where and why and
 * aborts. A message is required (C11 has no empty __VA_ARGS__). */
#define FZ_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond))                                                               \
      fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
  } while (0)

_Noreturn void fz_fail(const char *file, int line, const char *expr,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* fz_name is pc_errname for negative codes and "ok" otherwise. */
const char *fz_name(long rc);

/* fz_write_raw writes p[0..n) to fd once, as a hostile peer would: without
 * the library. Sockets use MSG_NOSIGNAL; on a pipe SIGPIPE is blocked
 * around the write and consumed if the write raised it, so a gone reader
 * never kills the harness. nonblock: MSG_DONTWAIT on sockets (a pipe
 * descriptor must have been made O_NONBLOCK by the caller). Returns the
 * bytes written, or -errno. */
ssize_t fz_write_raw(int fd, bool is_socket, const void *p, size_t n,
                     bool nonblock);

/* fz_fd_is_closed tells whether fd is no longer open in this process. */
bool fz_fd_is_closed(int fd);

/* fz_count_fds counts this process's open descriptors (/proc/self/fd), so
 * a target can check that an input leaves none behind, including ones the
 * library made for itself. */
int fz_count_fds(void);

/* fz_trap_sigpipe makes a SIGPIPE that reaches this process abort with a
 * message (once installed, idempotent). The library promises never to let
 * one through; with the default disposition it would kill the process
 * silently, and the fuzzer would lose the input that caused it. */
void fz_trap_sigpipe(void);

/* A small deterministic generator (xorshift32), seeded from the input. */
uint32_t fz_rand(uint32_t *state);

#endif
