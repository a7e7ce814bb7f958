/* SPDX-License-Identifier: MIT */
/*
 * A first program against the installed library, as a user writes it: only
 * <pipeconn.h>, no private header. tests/install/run.sh builds it with the
 * CMake package and with pkg-config, shared and static, and runs it:
 *
 *   ./consumer
 *   pipeconn 0.1.0: received 'hello from an installed libpipeconn' (35 bytes)
 *
 * It exits non-zero (with the library's error text) if anything fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pipeconn.h>

int main(void) {
  static const char msg[] = "hello from an installed libpipeconn";
  pc_conn *left = NULL, *right = NULL;
  void *buf = NULL, *more = NULL;
  size_t len = 0, more_len = 0;
  int rc = 1, err;

  /* The library loaded at run time must be the one the header describes. */
  if (strcmp(pc_version(), PC_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", PC_VERSION_STRING, pc_version());
    goto out;
  }
  err = pc_pipe(&left, &right, 0);
  if (err == 0)
    err = pc_send_bytes(left, msg, strlen(msg));
  if (err == 0)
    err = pc_recv_bytes(right, &buf, &len, PC_NOLIMIT);
  if (err != 0) {
    fprintf(stderr, "%s: %s\n", pc_errname(err), pc_strerror(err));
    goto out;
  }
  if (len != strlen(msg) || memcmp(buf, msg, len) != 0) {
    fprintf(stderr, "received %zu bytes that differ from what was sent\n", len);
    goto out;
  }
  /* After the peer closes, the other end reports end of stream. */
  pc_close(left);
  left = NULL;
  err = pc_recv_bytes(right, &more, &more_len, PC_NOLIMIT);
  if (err != PC_EOF) {
    fprintf(stderr, "expected PC_EOF after close, got %s\n", pc_errname(err));
    goto out;
  }
  printf("pipeconn %s: received '%.*s' (%zu bytes)\n", pc_version(), (int)len,
         (const char *)buf, len);
  rc = 0;
out:
  free(buf);
  free(more);
  pc_close(left);
  pc_close(right);
  return rc;
}
