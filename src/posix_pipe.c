/* SPDX-License-Identifier: MIT */
/* Creating connections: descriptors from socketpair(2) / pipe2(2), or
 * adopted from the caller. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int pc_pipe(pc_conn **c1, pc_conn **c2, int flags) {
  int rc = 0;
  int fds[2] = {-1, -1};
  pc_conn *a = NULL, *b = NULL;
  const int known = PC_SIMPLEX | PC_INHERIT | PC_SHARED;

  if (c1 == NULL || c2 == NULL || (flags & ~known) != 0) {
    rc = -EINVAL;
    goto out;
  }
  /* Close-on-exec is set atomically at creation: no window in which a
   * concurrent fork+exec in another thread could inherit the descriptors. */
  int cloexec = (flags & PC_INHERIT) ? 0 : 1;
  if (flags & PC_SIMPLEX) {
    if (pipe2(fds, cloexec ? O_CLOEXEC : 0) != 0) {
      rc = pc__errno_neg();
      goto out;
    }
    rc = pc__conn_new(fds[0], PC_READABLE | PC_SIMPLEX, &a);
    if (rc == 0)
      rc = pc__conn_new(fds[1], PC_WRITABLE | PC_SIMPLEX, &b);
  } else {
    if (socketpair(AF_UNIX, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0,
                   fds) != 0) {
      rc = pc__errno_neg();
      goto out;
    }
    rc = pc__conn_new(fds[0], PC_READABLE | PC_WRITABLE, &a);
    if (rc == 0)
      rc = pc__conn_new(fds[1], PC_READABLE | PC_WRITABLE, &b);
  }
  if (rc == 0 && (flags & PC_SHARED))
    rc = pc__shared_attach(a, b, (flags & PC_SIMPLEX) != 0);
  if (rc != 0)
    goto fail;
  *c1 = a;
  *c2 = b;
  goto out;

fail:
  /* pc_close closes a connection's descriptor; close the ones not yet
   * adopted by hand. */
  if (a != NULL)
    pc_close(a);
  else if (fds[0] >= 0)
    close(fds[0]);
  if (b != NULL)
    pc_close(b);
  else if (fds[1] >= 0)
    close(fds[1]);
out:
  return rc;
}

int pc_conn_from_fd(int fd, int flags, pc_conn **out) {
  int rc = 0;
  const int known = PC_READABLE | PC_WRITABLE;
  if (fd < 0) {
    rc = -EINVAL;
  } else if (fcntl(fd, F_GETFD) < 0) {
    rc = pc__errno_neg();
  } else if (out == NULL || (flags & ~known) != 0 || (flags & known) == 0) {
    rc = -EINVAL;
    close(fd);
  } else {
    /* A pipe end that only reads behaves like Python's simplex reader. */
    int f = flags;
    if (pc__io_fdkind(fd) == PC__FD_PIPE && flags == PC_READABLE)
      f |= PC_SIMPLEX;
    rc = pc__conn_new(fd, f, out);
    if (rc != 0)
      close(fd);
  }
  return rc;
}
