/* SPDX-License-Identifier: MIT */
/*
 * struct_codec: a serializer of your own, for a plain C struct.
 *
 * pc_send/pc_recv move objects through the connection's serializer (pickle
 * over pc_value by default). Here the parent attaches a tiny binary codec
 * for `struct point` with pc_conn_set_serializer, sends three points to a
 * forked child, and the child sends each back moved by (+1, +1); a payload
 * of the wrong size is refused by decode (PC_EPROTO) without losing the
 * connection.
 *
 * Run:   ./struct_codec          (cmake --build build && build/examples/struct_codec)
 * Prints:
 *   child got point origin (0, 0)
 *   parent got point origin (1, 1)
 *   child got point corner (-7, 2147483647)
 *   parent got point corner (-6, -2147483648)
 *   child got point label-16-chars! (42, -42)
 *   parent got point label-16-chars! (43, -41)
 *   child refused a 3-byte message: PC_EPROTO
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeconn.h"

struct point {
  int32_t x, y;
  char label[16]; /* NUL-padded, not necessarily NUL-terminated */
};

/* Wire form: x and y as 4-byte little-endian two's complement, then the 16
 * label bytes: 24 bytes, the same on every machine. */
#define POINT_WIRE 24u

static void put32(unsigned char *p, int32_t v) {
  uint32_t u = (uint32_t)v;
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(u >> (8 * i));
}

static int32_t get32(const unsigned char *p) {
  uint32_t u = 0;
  for (int i = 0; i < 4; i++)
    u |= (uint32_t)p[i] << (8 * i);
  return (int32_t)u;
}

static int point_encode(void *ctx, const void *obj, pc_buffer *out) {
  const struct point *pt = obj;
  int rc = pc_buffer_reserve(out, POINT_WIRE);
  (void)ctx;
  if (rc == 0) {
    unsigned char *p = out->data + out->len;
    put32(p, pt->x);
    put32(p + 4, pt->y);
    memcpy(p + 8, pt->label, sizeof pt->label);
    out->len += POINT_WIRE;
  }
  return rc;
}

static int point_decode(void *ctx, const void *data, size_t len, void **obj) {
  const unsigned char *p = data;
  struct point *pt = NULL;
  int rc = 0;
  (void)ctx;
  if (len != POINT_WIRE)
    rc = PC_EPROTO; /* not a point: the message is consumed, nothing else */
  else if ((pt = malloc(sizeof *pt)) == NULL)
    rc = -ENOMEM;
  if (rc == 0) {
    pt->x = get32(p);
    pt->y = get32(p + 4);
    memcpy(pt->label, p + 8, sizeof pt->label);
    *obj = pt;
  }
  return rc;
}

static void point_release(void *ctx, void *obj) {
  (void)ctx;
  free(obj);
}

static const pc_serializer point_codec = {"point", point_encode, point_decode,
                                          point_release};

static void show(const char *who, const struct point *pt) {
  printf("%s got point %.16s (%ld, %ld)\n", who, pt->label, (long)pt->x,
         (long)pt->y);
  fflush(stdout);
}

static int child(pc_conn *c) {
  int code = 1, rc;
  void *obj = NULL;
  if (pc_conn_set_serializer(c, &point_codec, NULL) != 0)
    goto out;
  for (int i = 0; i < 3; i++) {
    if (pc_recv(c, &obj) != 0)
      goto out;
    struct point *pt = obj;
    show("child", pt);
    /* Unsigned arithmetic: INT32_MAX + 1 wraps instead of overflowing. */
    pt->x = (int32_t)((uint32_t)pt->x + 1u);
    pt->y = (int32_t)((uint32_t)pt->y + 1u);
    if (pc_send(c, pt) != 0)
      goto out;
    point_release(NULL, obj);
    obj = NULL;
  }
  /* A message that is not a point: decode refuses it, the connection
   * stays usable. */
  rc = pc_recv(c, &obj);
  printf("child refused a 3-byte message: %s\n", pc_errname(rc));
  fflush(stdout);
  code = rc == PC_EPROTO && pc_recv(c, &obj) == PC_EOF ? 0 : 1;
out:
  point_release(NULL, obj);
  return code;
}

int main(void) {
  static const struct point points[] = {
      {0, 0, "origin"},
      {-7, INT32_MAX, "corner"},
      {42, -42, "label-16-chars!"},
  };
  pc_conn *parent_end = NULL, *child_end = NULL;
  int status = 0, rc = 1;
  void *obj = NULL;
  pid_t pid = -1;
  if (pc_pipe(&parent_end, &child_end, 0) != 0)
    goto out;
  fflush(stdout);
  pid = fork();
  if (pid < 0)
    goto out;
  if (pid == 0) {
    pc_close(parent_end);
    int code = child(child_end);
    pc_close(child_end);
    _exit(code);
  }
  pc_close(child_end);
  if (pc_conn_set_serializer(parent_end, &point_codec, NULL) != 0)
    goto out;
  for (size_t i = 0; i < 3; i++) {
    if (pc_send(parent_end, &points[i]) != 0)
      goto out;
    if (pc_recv(parent_end, &obj) != 0)
      goto out;
    show("parent", obj);
    point_release(NULL, obj);
    obj = NULL;
  }
  if (pc_send_bytes(parent_end, "abc", 3) != 0)
    goto out;
  rc = 0;
out:
  pc_close(parent_end); /* the child then sees end of stream */
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    rc = 1;
  return rc;
}
