/* SPDX-License-Identifier: MIT */
/* The pickle codec as a pc_serializer: what pc_send/pc_recv use by default. */
#include "internal.h"

static int encode(void *ctx, const void *obj, pc_buffer *out) {
  const pc_pickle_options *opt = ctx;
  int protocol = opt != NULL ? opt->protocol : PC_PICKLE_DEFAULT_PROTOCOL;
  return pc_pickle_dumps(obj, protocol, out);
}

static int decode(void *ctx, const void *data, size_t len, void **obj) {
  pc_value *v = NULL;
  int rc = pc_pickle_loads(data, len, &v, NULL);
  (void)ctx;
  if (rc == 0)
    *obj = v;
  return rc;
}

static void release(void *ctx, void *obj) {
  (void)ctx;
  pc_value_free(obj);
}

static const pc_serializer pickle_serializer = {"pickle", encode, decode,
                                                release};

const pc_serializer *pc_pickle_serializer(void) { return &pickle_serializer; }
