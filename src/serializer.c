/* SPDX-License-Identifier: MIT */
/* The serializer layer: pc_send / pc_recv over a connection's codec. */
#include <stdlib.h>

#include "internal.h"

int pc_conn_set_serializer(pc_conn *c, const pc_serializer *s, void *ctx) {
  int rc = 0;
  if (c == NULL || (s != NULL && (s->encode == NULL || s->decode == NULL ||
                                  s->release == NULL)))
    rc = -EINVAL;
  else if ((rc = pc__conn_check_open(c)) == 0)
    pc__conn_set_serializer(c, s, ctx);
  return rc;
}

static const pc_serializer *resolve(pc_conn *c, void **ctx) {
  const pc_serializer *s;
  pc__conn_serializer(c, &s, ctx);
  if (s == NULL) {
    s = pc_pickle_serializer();
    *ctx = NULL;
  }
  return s;
}

int pc_send(pc_conn *c, const void *obj) {
  int rc;
  void *ctx;
  pc_buffer b = PC_BUFFER_INIT;
  if (c == NULL)
    return -EINVAL;
  const pc_serializer *s = resolve(c, &ctx);
  /* Encode after room for the header, so the frame leaves in one write
   * without copying the payload. */
  rc = pc_buffer_reserve(&b, PC__SEND_HEADROOM + 256);
  if (rc == 0) {
    b.len = PC__SEND_HEADROOM;
    rc = s->encode(ctx, obj, &b);
  }
  if (rc == 0)
    rc = pc__send_buffer(c, &b, PC__SEND_HEADROOM);
  pc_buffer_release(&b);
  return rc;
}

typedef struct decode_call {
  const pc_serializer *s;
  void *ctx;
  void *obj;
} decode_call;

static int decode_payload(void *arg, const void *data, size_t len) {
  decode_call *d = arg;
  return d->s->decode(d->ctx, data, len, &d->obj);
}

int pc_recv(pc_conn *c, void **obj) {
  int rc;
  decode_call d = {NULL, NULL, NULL};
  if (c == NULL || obj == NULL)
    return -EINVAL;
  d.s = resolve(c, &d.ctx);
  /* Decoding straight from the receive buffer: no copy of the payload.
   * The message is consumed whether or not it decodes. */
  rc = pc__recv_apply(c, PC_NOLIMIT, decode_payload, &d);
  if (rc == 0)
    *obj = d.obj;
  return rc;
}
